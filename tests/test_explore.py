"""Explorer: queries against hand computation, and the panel's callbacks driven by setting widget values (no browser)."""
import subprocess, sys, types
import numpy as np, pytest, torch
import sat2cap.embed
from sat2cap.core import Sat2CapError
from sat2cap.dynamic import Sat2Cap
from sat2cap.embed import Region
from sat2cap.retrieval import Gallery, RegionTiles
from sat2cap.explore import Explorer, ExplorerPanel, render_static, when_of

D = 8
DIRS = {"horses": 0, "sea": 1}

def fake_text(run, prompt):
    "Stand-in for the CLIP text tower: each known word is one axis."
    if not prompt.strip(): raise Sat2CapError("the prompt is empty")
    t = torch.zeros(D); t[[DIRS[w] for w in prompt.split() if w in DIRS] or [D - 1]] = 1
    return torch.nn.functional.normalize(t, dim=0)

@pytest.fixture
def ex(monkeypatch):
    monkeypatch.setattr(sat2cap.embed, "text_embedding", fake_text)
    torch.manual_seed(0); rng = np.random.default_rng(0)
    lat, lon = np.meshgrid(np.arange(40, 44, 1.0), np.arange(-105, -101, 1.0), indexing="ij")
    emb = rng.normal(size=(16, D)).astype(np.float32)
    region = Region.from_arrays(lat.ravel(), lon.ravel(), emb)
    g = Gallery(["a", "b", "c"], np.eye(D, dtype=np.float32)[:3], np.zeros((3, 4, 4, 3), np.uint8), np.zeros(3, bool),
                np.zeros(3), ["horse photo", "sea photo", "other photo"], ["a", "b", "c"])
    run = types.SimpleNamespace(model=Sat2Cap(torch.nn.Identity(), D).eval())
    thumbs = rng.integers(0, 255, (16, 4, 4, 3), dtype=np.uint8)
    return Explorer(run, {"grid": RegionTiles(region, thumbs), "bare": region}, gallery=g, basemap="none")

def test_query_matches_hand_computation(ex):
    r = ex.tiles("grid").region
    res = ex.query("people riding horses", "2012-07-15", 14, "grid")
    sims = r.emb[:, 0] / np.linalg.norm(r.emb, axis=1)            # zero-initialized dynamic encoder: static map
    np.testing.assert_allclose(res["sims"], sims, atol=1e-5)
    assert res["top"].tolist() == np.argsort(-sims)[:4].tolist()
    best = r.emb[res["top"][0]]
    assert res["caption"] == ["horse photo", "sea photo", "other photo"][int(np.argmax(best[:3]))]
    assert res["caption_source"] == "nearest ground photo" and res["when"] == "2012-07-15 14:00"

def test_bad_inputs_are_named(ex):
    with pytest.raises(Sat2CapError, match="unknown region 'mars'"): ex.query("horses", "2012-07-15", 14, "mars")
    with pytest.raises(Sat2CapError, match="outside 0..23"): when_of("2012-07-15", 25)

def test_panel_callbacks_update_result_and_figure(ex):
    torch.nn.init.normal_(ex.run.model.dynamic.mlp[-1].weight, std=2.0)   # make the hour matter
    p = ExplorerPanel(ex, prompt="people riding horses", hour=8)
    r0, f0, n0 = p.result, p.figure, p.updates
    assert r0["when"].endswith("08:00") and f0 is not None
    p.hour.value = 23
    assert p.updates == n0 + 1 and p.result["when"].endswith("23:00") and p.figure is not f0
    assert not np.allclose(p.result["sims"], r0["sims"])
    p.prompt.value = "sailing on the sea"
    assert p.result["prompt"] == "sailing on the sea" and p.result["caption"] in ("horse photo", "sea photo", "other photo")
    p.meta.value = False
    np.testing.assert_allclose(p.result["sims"], ex.query("sailing on the sea", "2012-07-15", 3, "grid", use_meta=False)["sims"])
    p.region.value = "bare"
    assert p.result["region"] == "bare" and len(p.figure.axes) >= 5
    last = p.result
    p.prompt.value = "  "
    assert "empty" in p.error and "empty" in p.status.value and p.result is last

def test_render_static_saves_png(ex, tmp_path):
    fig = render_static(ex, "sea", "2012-12-20", 23, "grid", path=tmp_path / "x.png")
    assert "2012-12-20 23:00" in fig._suptitle.get_text()
    from PIL import Image
    img = np.asarray(Image.open(tmp_path / "x.png").convert("RGB")).astype(int)
    coloured = (np.ptp(img, axis=2) > 30).mean()                  # axes and text alone are grey
    assert min(img.shape[:2]) >= 200 and coloured > 0.01, coloured          # a drawn figure, not a blank

def test_import_does_not_load_ipywidgets():
    code = "import sys, sat2cap, sat2cap.explore, sat2cap.retrieval; print('ipywidgets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
