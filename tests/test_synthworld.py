"""SynthWorld as its users meet it: the CLI's shards read by plain webdataset, determinism, splits, and truth
that agrees with what was rendered."""
import io, json, re, shutil, subprocess, sys, tarfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from sat2cap.world import ACTIVITIES, KM_PER_DEG, LANDCOVER, SynthWorld, frac_month
from sat2cap.concepts import prompt_concepts
from sat2cap.synthworld import write_synthworld

SAT2CAP = shutil.which("sat2cap") or str(Path(sys.executable).parent / "sat2cap")
OFFICIAL = {"groundlevel.jpg", "overhead.jpg", "metadata.json"}


def cli(*args):
    "Run `sat2cap synthworld ARGS` with the dashed option spelling of the issue (`--n-samples`)."
    r = subprocess.run([SAT2CAP, "synthworld", *map(str, args)], capture_output=True, text=True, timeout=300)
    return r


def read(folder):
    return list(wds.WebDataset(sorted(str(p) for p in Path(folder).glob("*.tar")), shardshuffle=False))


@pytest.fixture(scope="module")
def cli_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "sw"
    r = cli(out, "--n-samples", 300, "--seed", 11)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    "Two writes of the same small world (different worker counts) and one of another seed."
    d = tmp_path_factory.mktemp("det")
    a = write_synthworld(d / "a", n_samples=150, seed=5, region_step=3.0, workers=2, shard_size=40)
    write_synthworld(d / "b", n_samples=150, seed=5, region_step=3.0, workers=1, shard_size=40)
    write_synthworld(d / "c", n_samples=150, seed=6, region_step=3.0, workers=2, shard_size=40)
    return d, a


def test_cli_shards_read_by_plain_webdataset(cli_out):
    man = json.loads((cli_out / "manifest.json").read_text())
    assert man["seed"] == 11 and man["n_samples"] == 300
    n = 0
    for split in ("train", "val", "test"):
        samples = read(cli_out / split)
        assert len(samples) == man["counts"][split]["samples"] > 0
        for s in samples:
            assert OFFICIAL <= set(s) and "caption.txt" in s and "." not in s["__key__"]
            meta = json.loads(s["metadata.json"])
            assert isinstance(meta["latitude"], float) and 24 < meta["latitude"] < 50
            assert isinstance(meta["longitude"], float) and -126 < meta["longitude"] < -66
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.0", meta["date_taken"])
            datetime.strptime(meta["date_taken"], "%Y-%m-%d %H:%M:%S.0")
            for k in ("groundlevel.jpg", "overhead.jpg"):
                assert Image.open(io.BytesIO(s[k])).size == (64, 64)
            n += 1
    assert n == 300
    region = read(cli_out / "region")
    assert len(region) == man["counts"]["region"]["tiles"] > 1000
    assert {"overhead.jpg", "metadata.json", "truth.json"} <= set(region[0])


def test_bad_cli_input_is_one_line_exit_2(tmp_path):
    (tmp_path / "thesis").mkdir(); (tmp_path / "thesis" / "ch1.tex").write_text("precious")
    for args, msg in [((tmp_path / "x", "--n-samples", 0), "n_samples must be positive"),
                      ((tmp_path / "x", "--n-samples", 10, "--image-size", 5000), "image_size must be between"),
                      ((tmp_path / "thesis", "--n-samples", 10), "is not empty and holds no SynthWorld manifest")]:
        r = cli(*args)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (tmp_path / "thesis" / "ch1.tex").read_text() == "precious"
    assert not (tmp_path / "x").exists()


def test_same_seed_gives_identical_bytes(small):
    d, _ = small
    files = sorted(p.relative_to(d / "a") for p in (d / "a").rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".tar"]) >= 6
    for f in files:
        assert (d / "a" / f).read_bytes() == (d / "b" / f).read_bytes(), f
    assert (d / "a/train/shard-000000.tar").read_bytes() != (d / "c/train/shard-000000.tar").read_bytes()
    with tarfile.open(d / "a/train/shard-000000.tar") as t:
        ms = t.getmembers()
    assert {m.mtime for m in ms} == {0}
    assert not any(m.pax_headers for m in ms)       # one plain header per member: a float mtime would add a pax one


def test_no_tile_in_two_splits(small):
    d, man = small
    tiles = {}
    for split in ("train", "val", "test"):
        tiles[split] = {json.loads(s["metadata.json"])["tile_id"] for s in read(d / "a" / split)}
        assert len(tiles[split]) == man["counts"][split]["tiles"] > 0
    assert not (tiles["train"] & tiles["val"] or tiles["train"] & tiles["test"] or tiles["val"] & tiles["test"])
    region = {json.loads(s["metadata.json"])["tile_id"] for s in read(d / "a" / "region")}
    assert not region & (tiles["train"] | tiles["val"] | tiles["test"])


def test_night_skies_are_darker_than_day_skies(small):
    d, _ = small
    sky = {"night": [], "day": []}
    for split in ("train", "val", "test"):
        for s in read(d / "a" / split):
            phase = json.loads(s["truth.json"])["phase"]
            g = np.asarray(Image.open(io.BytesIO(s["groundlevel.jpg"])).convert("L"), dtype=float)
            if phase in ("night", "morning", "afternoon"): sky["night" if phase == "night" else "day"].append(g[:10].mean())
    assert len(sky["night"]) >= 5 and len(sky["day"]) >= 20
    assert np.quantile(sky["night"], 0.9) < np.quantile(sky["day"], 0.1)
    assert np.mean(sky["night"]) < 0.5 * np.mean(sky["day"])


def test_caption_activity_is_possible_at_its_tile_and_time(small):
    d, _ = small
    world = SynthWorld.from_manifest(d / "a")
    rows = []
    for split in ("train", "val", "test"):
        for s in read(d / "a" / split):
            meta, truth, cap = json.loads(s["metadata.json"]), json.loads(s["truth.json"]), s["caption.txt"].decode()
            t = datetime.strptime(meta["date_taken"], "%Y-%m-%d %H:%M:%S.0")
            rows.append((meta["latitude"], meta["longitude"], frac_month(t.month, t.day), t.hour + t.minute / 60, truth["activity"]))
            named = prompt_concepts(cap)
            if truth["activity"] != "scenery": assert ("activity", truth["activity"]) in named, cap
            for kind, name in named:       # every concept a caption names is true of its photo
                want = {"activity": truth["activity"], "landcover": truth["place"], "time": truth["phase"], "season": truth["season"]}
                assert name == want[kind] if kind != "snow" else truth["snow"] > 0.5, (cap, truth)
    lat, lon, m, h, act = map(np.array, zip(*rows))
    p = world.activity_probs(lat, lon, m, h)
    assert (p[np.arange(len(act)), [ACTIVITIES.index(a) for a in act]] > 0).all()


def test_truth_files_match_the_world(small):
    import pandas as pd
    d, _ = small
    world = SynthWorld.from_manifest(d / "a")
    reg = pd.read_parquet(d / "a/truth/region.parquet")
    np.testing.assert_allclose(reg[LANDCOVER].to_numpy(), world.landcover(reg.lat, reg.lon), atol=1e-9)
    tiles = pd.read_parquet(d / "a/truth/tiles.parquet")
    np.testing.assert_allclose(tiles[LANDCOVER].to_numpy().sum(1), 1, atol=1e-9)
    assert len(pd.read_parquet(d / "a/truth/photos.parquet")) == 150


def test_rewriting_a_synthworld_folder_replaces_it(small, tmp_path):
    out = tmp_path / "sw"
    write_synthworld(out, n_samples=30, seed=1, region_step=5.0, shard_size=10)
    man = write_synthworld(out, n_samples=12, seed=2, region_step=5.0)
    assert sum(len(read(out / s)) for s in ("train", "val", "test")) == 12 == man["n_samples"]
    assert len(list((out / "train").glob("*.tar"))) == 1


def _min_dist_km(a, b):
    "Return, for each (lat, lon) row of `a`, the distance in km to the nearest row of `b` (local equirectangular)."
    lat, lon = a[:, None, 0], a[:, None, 1]
    dy, dx = (lat - b[None, :, 0]) * KM_PER_DEG, (lon - b[None, :, 1]) * KM_PER_DEG * np.cos(np.radians(lat))
    return np.sqrt(dx ** 2 + dy ** 2).min(1)


def test_spatial_splits_keep_held_out_photos_away_from_training_photos(small):
    "No val/test photo lies within one tile width of a training photo (here and in a 4,000-pair world's sampled tiles)."
    from sat2cap.synthworld import _photo_records
    d, _ = small
    pts = {s: np.array([(m["latitude"], m["longitude"]) for m in (json.loads(x["metadata.json"]) for x in read(d / "a" / s))])
           for s in ("train", "val", "test")}
    world = SynthWorld(0)
    tiles, _ = _photo_records(world, 4000)
    big = {s: np.c_[tiles["lat"], tiles["lon"]][tiles["split"] == i] for i, s in enumerate(("train", "val", "test"))}
    width_km = world.config.tile_deg * KM_PER_DEG
    for p in (pts, big):
        held = np.r_[p["val"], p["test"]]
        assert len(p["val"]) and len(p["test"])
        assert _min_dist_km(held, p["train"]).min() >= width_km
        deg = np.sqrt(((held[:, None] - p["train"][None]) ** 2).sum(-1)).min(1)     # the plain-degree distance of the issue
        assert deg.min() >= world.config.tile_deg
    assert 0.05 < len(big["test"]) / sum(map(len, big.values())) < 0.2              # splits stay near their target shares


def test_paraphrase_benchmark_wording_never_appears_in_a_caption():
    "The held-out paraphrases name concepts the truth parser knows, in wordings no caption of a 12,000-pair world contains."
    from sat2cap.maps import PARAPHRASES, concepts_of
    from sat2cap.synthworld import _photo_records
    norm = lambda s: " " + " ".join(re.findall(r"[a-z]+", s.lower())) + " "
    _, photos = _photo_records(SynthWorld(0), 12000)
    caps = [norm(c) for c in photos["caption"]]
    assert len(set(caps)) > 3000                                       # captions are varied
    assert len(PARAPHRASES) >= 30
    for prompt, when in PARAPHRASES:
        assert concepts_of(prompt) and re.fullmatch(r"2012-\d\d-\d\d \d\d:\d\d", when)
        assert not any(norm(prompt) in c for c in caps), prompt


def test_retrieval_ceiling_ties_and_ordering(small):
    "Ties count at their expected rank; the ceiling beats chance and knowing the date and time never hurts it."
    import pandas as pd
    from sat2cap.synthworld import _ranks_of_truth, retrieval_ceiling
    S = np.array([[3., 1, 1], [2, 2, 0], [0, 5, 1]])       # ranks of the own photo: 1, 1 or 2 (tie), 2
    assert _ranks_of_truth(S, (1, 2)) == {"R@1": round(1.5 / 3, 4), "R@2": 1.0, "median_rank": 1.5}
    d, _ = small
    keys = pd.read_parquet(d / "a/truth/photos.parquet").key.tolist()          # all 150 photos
    c = retrieval_ceiling(d / "a", keys)
    assert c["gallery"] == 150
    assert c["with_meta"]["R@10"] >= c["no_meta"]["R@10"] > 3 * 10 / 150
    assert c["with_meta"]["median_rank"] <= c["no_meta"]["median_rank"]


def test_clip_oracle_is_the_posterior_mean_query(small):
    "With one unit embedding per truth the query is P(truth | tile, time) itself; the ranking follows it, summed in chunks."
    import pandas as pd
    from sat2cap.synthworld import clip_oracle, _truth_rows, _held_out, _at_own_time
    d, _ = small
    ph = pd.read_parquet(d / "a/truth/photos.parquet")
    keys = ph.key.tolist()[:40]
    codes = _truth_rows(ph.set_index("key").loc[keys])
    u, inv = np.unique(codes, axis=0, return_inverse=True)
    inv = inv.ravel()
    emb = np.eye(len(u))[inv]                                          # each photo's embedding names its truth
    got = clip_oracle(d / "a", keys, emb, keys, emb, chunk=7)          # reference = the photos themselves
    P = _at_own_time(*_held_out(d / "a", keys), u)                     # (N, U): the query is P itself, normalised
    Q = P / np.linalg.norm(P, axis=1, keepdims=True)
    S = Q @ emb.T                                                      # photo j scores P(its truth | query)
    own = np.diag(S)[:, None]
    gt, eq = (S > own + 1e-12).sum(1), (np.abs(S - own) <= 1e-12).sum(1)
    assert got["R@1"] == pytest.approx(np.clip((1 - gt) / eq, 0, 1).mean(), abs=1e-4)
    assert got["median_rank"] == np.median(gt + (eq + 1) / 2)
    hide = np.random.default_rng(0).normal(size=(40, 8))
    hide /= np.linalg.norm(hide, axis=1, keepdims=True)
    assert clip_oracle(d / "a", keys, hide, keys, hide)["R@1"] < got["R@1"]      # an embedding that shows nothing ranks worse


def test_expected_embeddings_weight_each_truths_mean_by_its_likelihood(small):
    "The map query of a tile at a time is the photos' mean embedding per truth weighted by P(truth | tile, time)."
    import pandas as pd
    from sat2cap.synthworld import truth_means, expected_embeddings, _truth_rows, _truth_likelihood
    d, _ = small
    ph = pd.read_parquet(d / "a/truth/photos.parquet")
    emb = np.random.default_rng(1).normal(size=(len(ph), 6))
    u, M = truth_means(d / "a", ph.key.tolist(), emb, chunk=11)
    codes = _truth_rows(ph.set_index("key"))
    for i in (0, len(u) // 2, len(u) - 1):                             # each mean is over exactly its truth's photos
        np.testing.assert_allclose(M[i], emb[(codes == u[i]).all(1)].mean(0), atol=1e-12)
    world = SynthWorld.from_manifest(d / "a")
    lat, lon = np.array([40.0, 35.5, 45.2]), np.array([-105.0, -90.0, -70.0])
    cover = world.landcover(lat, lon)
    L = _truth_likelihood(world, lat, lon, cover, np.full(3, 7.5), np.full(3, 14.0), u)    # (3, U)
    want = (L @ M) / np.linalg.norm(L @ M, axis=1, keepdims=True)
    np.testing.assert_allclose(expected_embeddings(world, lat, lon, 7.5, 14.0, (u, M)), want, atol=1e-12)
    night = expected_embeddings(world, lat, lon, 7.5, 2.0, (u, M))      # another hour weighs other truths
    assert np.abs(night - want).max() > 0.05


def test_landcover_is_kept_for_the_same_tiles_and_read_only():
    w = SynthWorld(seed=3)
    lat, lon = np.array([40.7, 34.0, 47.6]), np.array([-74.0, -118.2, -122.3])
    a = w.landcover(lat, lon)
    assert w.landcover(lat.copy(), lon.copy()) is a                 # same tiles: the kept answer
    assert not a.flags.writeable                                     # shared, so no caller can change it
    np.testing.assert_array_equal(SynthWorld(seed=3).landcover(lat, lon), a)
    np.testing.assert_array_equal(w.landcover(lat[::-1], lon[::-1]), a[::-1])   # other tiles: computed anew
    assert w.landcover(lon[:1] * 0 + 40.7, lat[:1] * 0 - 74.0) is not a
