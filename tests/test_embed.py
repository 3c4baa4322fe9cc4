"Tests of sat2cap.embed: region files, the dynamic similarity paths and their agreement with model.embed."
import json, os
from types import SimpleNamespace
import numpy as np, pytest, torch
import torch.nn.functional as F
from PIL import Image

os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")
from sat2cap.core import Sat2CapError
from sat2cap.embed import (Region, save_region, load_region, embed_region, similarity_map, direct_similarity,
                           fast_similarity, text_embedding, grid_step, tile_frame, as_region, read_tiles)


@pytest.fixture(scope="module")
def run():
    "The tiny CLIP with an untrained Sat2Cap model whose dynamic encoder has random (non-zero) weights."
    from sat2cap.encoders import load_clip, overhead_preprocess
    from sat2cap.dynamic import Sat2Cap
    torch.manual_seed(0)
    clip = load_clip("tiny", device="cpu")
    model = Sat2Cap.from_clip(clip).eval()
    torch.nn.init.normal_(model.dynamic.mlp[-1].weight, std=0.2)
    torch.nn.init.normal_(model.dynamic.mlp[-1].bias, std=0.2)
    return SimpleNamespace(model=model, clip=clip, overhead_transform=overhead_preprocess(clip))


def test_geoparquet_round_trip(tmp_path):
    import geopandas as gpd
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(6, 5)).astype(np.float32)
    lat, lon = np.repeat([40.0, 40.5], 3), np.tile([-100.0, -99.5, -99.0], 2)
    reg = Region.from_arrays(lat, lon, emb, [f"t{i}" for i in range(6)])
    p = save_region(reg, tmp_path / "r.parquet")
    back = load_region(p)
    np.testing.assert_array_equal(back.emb, emb)
    assert back.emb.dtype == np.float32 and back.emb.flags.c_contiguous
    assert list(back.gdf.tile_id) == [f"t{i}" for i in range(6)]
    assert back.gdf.crs.to_epsg() == 4326
    assert back.gdf.geometry.iloc[0].bounds == pytest.approx((-100.25, 39.75, -99.75, 40.25))
    g = gpd.read_parquet(p)                                   # a plain GeoParquet reader sees the same file
    np.testing.assert_array_equal(g[[f"emb_{i}" for i in range(5)]].to_numpy(), emb)
    assert [f.name for f in tmp_path.iterdir()] == ["r.parquet"]   # atomic write left no temp file


def test_load_region_errors(tmp_path):
    with pytest.raises(Sat2CapError, match="does not exist"): load_region(tmp_path / "x.parquet")
    tile_frame([1.0], [2.0]).to_parquet(tmp_path / "noemb.parquet")
    with pytest.raises(Sat2CapError, match="no emb_"): load_region(tmp_path / "noemb.parquet")


def test_grid_and_geometry():
    assert grid_step([3, 1, 2, 2]) == 1.0 and grid_step([5.0]) == 0.0
    assert tile_frame([1.0], [2.0]).geometry.iloc[0].geom_type == "Point"
    assert tile_frame([1.0], [2.0], size=(0.2, 0.4)).geometry.iloc[0].bounds == pytest.approx((1.8, 0.9, 2.2, 1.1))


def test_embed_region_from_folder(tmp_path, run):
    d = tmp_path / "tiles"; d.mkdir()
    for i, (lat, lon) in enumerate([(40.0, -100.0), (40.0, -99.9), (40.1, -100.0), (40.1, -99.9)]):
        Image.new("RGB", (16, 16), (50 * i, 120, 30)).save(d / f"k{i}.png")
        (d / f"k{i}.json").write_text(json.dumps(dict(latitude=lat, longitude=lon)))
    reg = embed_region(run, d, tmp_path / "out" / "reg.parquet", batch_size=3, mosaic_px=4)
    assert reg.emb.shape == (4, run.model.dim) and reg.mosaic.exists()
    # the stored embedding is the unnormalized image embedding of the tile
    x = run.overhead_transform(Image.open(d / "k2.png").convert("RGB"))[None]
    with torch.no_grad(): ref = run.model.encode_image(x)[0].numpy()
    np.testing.assert_allclose(load_region(tmp_path / "out" / "reg.parquet").emb[2], ref, rtol=1e-5, atol=1e-5)


def test_read_tiles_errors(tmp_path):
    with pytest.raises(Sat2CapError, match="does not exist"): list(read_tiles(tmp_path / "nope"))
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(Sat2CapError, match="no metadata file"): list(read_tiles(tmp_path))
    (tmp_path / "a.json").write_text(json.dumps(dict(latitude=95, longitude=0)))
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with pytest.raises(Sat2CapError, match="out of range"): list(read_tiles(tmp_path))


def test_dynamic_similarity_matches_loop(run):
    "Two tiles: the map equals a hand loop through model.embed, on both the fast and the direct path."
    rng = np.random.default_rng(0)
    lat, lon = np.array([40.0, 25.5], np.float32), np.array([-105.0, -80.2], np.float32)
    emb = rng.normal(size=(2, run.model.dim)).astype(np.float32)
    reg = Region.from_arrays(lat, lon, emb)
    prompt, when = "people skiing on a snowy mountain", "2012-01-15 10:30"
    t = text_embedding(run, prompt)
    with torch.no_grad():
        hand = [float(run.model.embed(torch.from_numpy(emb[i:i + 1]), float(lat[i]), float(lon[i]), 2012.0, 15.0, 10.5)[0] @ t)
                for i in range(2)]
    np.testing.assert_allclose(similarity_map(reg, run, prompt, when), hand, atol=1e-5)
    np.testing.assert_allclose(similarity_map(reg, run, prompt, when, fast=False), hand, atol=1e-5)
    np.testing.assert_allclose(fast_similarity(reg, run, t, when), hand, atol=1e-5)
    static = F.normalize(torch.from_numpy(emb), dim=-1) @ t
    np.testing.assert_allclose(similarity_map(reg, run, prompt), static.numpy(), atol=1e-6)
    np.testing.assert_allclose(similarity_map(reg, run, prompt, when, use_meta=False), static.numpy(), atol=1e-6)
    assert np.abs(similarity_map(reg, run, prompt, "2012-07-15 10:30") - hand).max() > 1e-4   # the date matters


def test_fast_path_many_tiles_and_cache(run):
    rng = np.random.default_rng(2)
    n = 3000
    reg = Region.from_arrays(rng.uniform(25, 49, n), rng.uniform(-124, -67, n), rng.normal(size=(n, run.model.dim)))
    t = text_embedding(run, "people riding horses")
    for when in ("2012-07-04 23:15", "2013-12-20 08:00"):
        np.testing.assert_allclose(fast_similarity(reg, run, t, when, chunk=512), direct_similarity(reg, run, t, when), atol=1e-5)
    key = reg._fast["key"]
    with torch.no_grad(): run.model.dynamic.mlp[0].bias.add_(0.1)   # in-place weight change invalidates the cache
    try:
        np.testing.assert_allclose(fast_similarity(reg, run, t, "2012-07-04 23:15"), direct_similarity(reg, run, t, "2012-07-04 23:15"), atol=1e-5)
        assert reg._fast["key"] != key
    finally:
        with torch.no_grad(): run.model.dynamic.mlp[0].bias.sub_(0.1)


def test_fast_path_with_harmonics_matches_the_model():
    "A four-harmonic, 256-wide dynamic encoder (the SynthWorld preset) keeps the fast path exact."
    from sat2cap.encoders import load_clip, overhead_preprocess
    from sat2cap.dynamic import Sat2Cap
    torch.manual_seed(3)
    clip = load_clip("tiny", device="cpu")
    model = Sat2Cap.from_clip(clip, hidden=256, harmonics=4).eval()
    torch.nn.init.normal_(model.dynamic.mlp[-1].weight, std=0.2)
    r = SimpleNamespace(model=model, clip=clip, overhead_transform=overhead_preprocess(clip))
    rng = np.random.default_rng(4)
    reg = Region.from_arrays(rng.uniform(25, 49, 500), rng.uniform(-124, -67, 500), rng.normal(size=(500, model.dim)))
    t = text_embedding(r, "people riding horses")
    for when in ("2012-07-04 23:15", "2013-12-20 08:00"):
        fast = fast_similarity(reg, r, t, when)
        assert fast is not None
        np.testing.assert_allclose(fast, direct_similarity(reg, r, t, when), atol=1e-5)
    assert np.abs(fast_similarity(reg, r, t, "2012-07-04 23:15") - fast).max() > 1e-3   # the hour matters


def test_query_errors(run):
    reg = Region.from_arrays([40.0], [-100.0], np.ones((1, run.model.dim)))
    with pytest.raises(Sat2CapError, match="prompt is empty"): similarity_map(reg, run, "   ")
    with pytest.raises(Sat2CapError, match="not a date"): similarity_map(reg, run, "horses", "not a date")
    with pytest.raises(Sat2CapError, match="cannot use a list"): as_region([1, 2])
