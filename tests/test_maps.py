"Tests of sat2cap.maps: AUC scoring, prompt truth and errors, regions, localization, and the two CLIs on a tiny trained run."
import json, os, shutil
from types import SimpleNamespace
import numpy as np, pytest, torch

os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")
import matplotlib; matplotlib.use("Agg")
from sat2cap.core import Sat2CapError
from sat2cap.embed import Region
from sat2cap import maps
from sat2cap.maps import (score_map, localize, box_around, concepts_of, resolve_when, prompt_truth, parse_region,
                          localize_figure, map_cli, score_map_cli)

map_cli, score_map_cli = [getattr(f, "__wrapped__", f) for f in (map_cli, score_map_cli)]


def test_auc_hand_example_and_sklearn():
    from sklearn.metrics import roc_auc_score
    sim, truth = np.array([.9, .8, .4, .5, .3, .1]), np.array([1, 1, 1, 0, 0, 0])
    assert score_map(sim, truth) == pytest.approx(8 / 9)          # 8 of 9 positive/negative pairs ordered right
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=200), rng.random(200) < 0.3
    assert score_map(s, t) == pytest.approx(roc_auc_score(t, s))
    assert score_map(t * 2.0 - 1, t) == 1.0                        # a perfect map
    assert score_map(-s, t) == pytest.approx(1 - roc_auc_score(t, s))
    with pytest.raises(Sat2CapError, match="AUC undefined"): score_map(s, np.zeros(200))
    with pytest.raises(Sat2CapError, match="truth has"): score_map(s, t[:10])


def test_unknown_concept_and_empty_prompt():
    with pytest.raises(Sat2CapError, match="prompt 'a purple elephant' names no SynthWorld concept; known words: .*horses"):
        concepts_of("a purple elephant")
    with pytest.raises(Sat2CapError, match="prompt is empty"): concepts_of("")
    assert concepts_of("sailboat on the sea in winter") == [("activity", "sailing"), ("season", "winter")]


def test_resolve_when():
    assert resolve_when("sailboat on the sea in winter") == "2012-01-15 12:00"
    assert resolve_when("nighttime on the beach") == "2012-07-15 23:00"
    assert resolve_when("people riding horses", "2013-05-20 08:00") == "2013-05-20 08:00"
    with pytest.raises(Sat2CapError, match="not a date"): resolve_when("people riding horses", "not a date")


def test_prompt_truth_rule():
    "Positive where the concept reaches half the region's maximum; several concepts must all hold."
    from sat2cap.synthworld import SynthWorld, region_grid, ACTIVITIES
    w = SynthWorld(0); g = region_grid(2.0)
    p = w.activity_probs(g["lat"], g["lon"], 7 + 14 / 30.4, 10.0)[:, ACTIVITIES.index("horses")]
    np.testing.assert_array_equal(prompt_truth(w, "people riding horses", g["lat"], g["lon"], "2012-07-15 10:00"), p >= 0.5 * p.max())
    both = prompt_truth(w, "people riding horses in the mountains", g["lat"], g["lon"], "2012-07-15 10:00")
    assert both.sum() <= (p >= 0.5 * p.max()).sum()
    with pytest.raises(Sat2CapError, match="false on every tile"):
        prompt_truth(w, "people skiing", g["lat"], g["lon"], "2012-07-15 10:00")


def test_bbox_errors():
    with pytest.raises(Sat2CapError, match="outside the world"): parse_region("2.0,48.5,2.5,49")     # Paris
    with pytest.raises(Sat2CapError, match="outside the world"): parse_region("-130,40,-120,45")     # half in the Pacific
    with pytest.raises(Sat2CapError, match="is empty"): parse_region("-100,41,-101,40")
    with pytest.raises(Sat2CapError, match="is not 'conus'"): parse_region("texas")
    assert parse_region("CONUS") == ("conus", None)


def test_localize_normalization_and_clipping():
    loc = localize([0.2, 0.3, 0.25, 0.28, 0.22])
    np.testing.assert_allclose(loc["norm"], [0, 1, .5, .8, .2])
    np.testing.assert_array_equal(np.isnan(loc["shown"]), [True, False, False, False, True])   # < 0.5 clipped
    assert loc["best"] == 1 and loc["shown"][1] == 1.0
    b = box_around(40.0, -100.0)
    assert (b[3] - b[1]) * 111.32 * (b[2] - b[0]) * 111.32 * np.cos(np.radians(40)) == pytest.approx(24)


def test_localize_figure_red_spot_at_max():
    "The red spot sits on the maximum tile; tiles below 0.5 of the normalized range are not drawn."
    n, D = 5, 4
    lat, lon = np.repeat(np.linspace(40, 40.04, n), n), np.tile(np.linspace(-100, -99.96, n), n)
    t = torch.tensor([1.0, 0, 0, 0])
    emb = np.zeros((n * n, D), np.float32); emb[:, 1] = 1.0
    emb[:, 0] = np.linspace(-1, 1, n * n); emb[17, 0] = 5.0                       # tile 17 is the best match
    run = SimpleNamespace(model=None, clip=None)
    orig = maps.similarity_map
    maps.similarity_map = lambda r, run, prompt, when=None, use_meta=True: (r.emb @ t.numpy()) / np.linalg.norm(r.emb, axis=1)
    try: fig, info = localize_figure(Region.from_arrays(lat, lon, emb), run, "people riding horses", "2012-07-15 10:00", basemap="none")
    finally: maps.similarity_map = orig
    ax = fig.axes[0]
    spot = [l for l in ax.lines if l.get_color() == "red"][0].get_xydata()[0]
    np.testing.assert_allclose(spot, [lon[17], lat[17]])
    assert (info["lat"], info["lon"]) == (round(lat[17], 5), round(lon[17], 5))
    sim = (emb @ t.numpy()) / np.linalg.norm(emb, axis=1)
    assert info["shown"] == int((localize(sim)["norm"] >= 0.5).sum()) < n * n


@pytest.fixture(scope="module")
def tiny_run(tiny_run, tiny_world, tmp_path_factory):
    "The session's tiny world and run as d/data and d/run; the run is a private copy because maps cache regions in it."
    d = tmp_path_factory.mktemp("maps")
    shutil.copytree(tiny_run, d / "run")
    (d / "data").symlink_to(tiny_world)
    return d


def test_score_map_cli(tiny_run, capsys):
    res = score_map_cli(str(tiny_run / "run"), str(tiny_run / "data"), "people riding horses", when="2012-07-15 10:00")
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == res and {"prompt", "when", "auc", "no_meta_auc"} <= set(out)
    assert out["when"] == "2012-07-15 10:00" and out["positives"] > 0
    from sklearn.metrics import roc_auc_score                        # the same AUCs computed by hand from the map values
    from sat2cap.runs import load_run
    from sat2cap.synthworld import SynthWorld
    run, world = load_run(str(tiny_run / "run")), SynthWorld.from_manifest(tiny_run / "data")
    r = maps.dataset_region(run, tiny_run / "data")                   # cached by score_map_cli
    truth = prompt_truth(world, "people riding horses", r.lat, r.lon, out["when"])
    assert out["positives"] == int(truth.sum()) and out["tiles"] == len(r) > out["positives"]
    for key, meta in (("auc", True), ("no_meta_auc", False)):
        sim = maps.similarity_map(r, run, "people riding horses", out["when"], use_meta=meta)
        assert out[key] == pytest.approx(roc_auc_score(truth, sim), abs=1e-4), key


@pytest.mark.parametrize("args,msg", [
    (dict(prompt=""), "prompt is empty"),
    (dict(prompt="a purple elephant"), "names no SynthWorld concept"),
    (dict(when="not a date"), "not a date"),
    (dict(run="/nonexistent/run"), "run folder '/nonexistent/run' does not exist"),
    (dict(data="/nonexistent/data"), "dataset folder '/nonexistent/data' does not exist"),
])
def test_score_map_cli_errors(tiny_run, args, msg):
    kw = dict(run=str(tiny_run / "run"), data=str(tiny_run / "data"), prompt="people riding horses", when=None) | args
    with pytest.raises(Sat2CapError, match=msg): score_map_cli(**kw)


def test_map_cli(tiny_run, tmp_path):
    out = map_cli(str(tiny_run / "run"), "-105.2,39.6,-105.0,39.8", "people skiing on a snowy mountain",
                  when="2012-01-15 10:00", out=str(tmp_path / "m.png"))
    from PIL import Image
    img = np.asarray(Image.open(tmp_path / "m.png").convert("RGB")).astype(int)
    coloured = (np.ptp(img, axis=2) > 30).mean()                  # axes and text alone are grey
    assert min(img.shape[:2]) >= 200 and coloured > 0.01, coloured          # a drawn map, not a blank
    cached = list((tiny_run / "run" / "maps").glob("region-*/region.parquet"))
    assert len(cached) == 1                                            # the rendered box is cached for the next map
    with pytest.raises(Sat2CapError, match="outside the world"):
        map_cli(str(tiny_run / "run"), "10,45,11,46", "people riding horses", out=str(tmp_path / "x.png"))
    with pytest.raises(Sat2CapError, match="not a date"):
        map_cli(str(tiny_run / "run"), "conus", "people riding horses", when="not a date", out=str(tmp_path / "x.png"))
    with pytest.raises(Sat2CapError, match="prompt is empty"):
        map_cli(str(tiny_run / "run"), "conus", " ", out=str(tmp_path / "x.png"))
    with pytest.raises(Sat2CapError, match="does not exist"):
        map_cli(str(tmp_path / "norun"), "conus", "people riding horses", out=str(tmp_path / "x.png"))
