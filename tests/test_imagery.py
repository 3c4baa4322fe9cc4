"Tests of sat2cap.imagery and region datasets: HF weights -> run, own GeoTIFFs / XYZ tiles -> region dataset -> map, through the CLI."
import json, math, os
import numpy as np, pandas as pd, pytest, torch

os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")
import matplotlib; matplotlib.use("Agg")
import rasterio
from rasterio.crs import CRS
from affine import Affine
from PIL import Image
import sat2cap
from sat2cap.cli import main
from sat2cap.core import Sat2CapError
from sat2cap.embed import scan_region, region_parts, part_meta, stream_similarity, similarity_map
from sat2cap.imagery import tiny_hf_encoder, embed_imagery, scan_imagery


def drawn(png):
    "Return (height, width, share of coloured pixels) of a PNG; axes and text alone are grey, a drawn map is coloured."
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return img.shape[0], img.shape[1], float((np.ptp(img, axis=2) > 30).mean())


R = 6378137.0                                  # Web Mercator sphere radius (EPSG:3857)
X0_3857, Y0_3857, PX_3857 = -11_690_000.0, 4_830_000.0, 20.0     # west of Denver, 20 m pixels
X0_UTM, Y0_UTM, PX_UTM = 480_000.0, 4_400_000.0, 10.0             # UTM 13N, 10 m pixels
XYZ = [(10, 213, 388), (10, 214, 388)]         # two z10 map tiles over Colorado


def cli(capsys, *args):
    "Run `sat2cap ARGS`; return (exit code, stdout, stderr)."
    try: code = main([str(a) for a in args])
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def texture(rng, shape, lo=30, hi=220):
    return rng.integers(lo, hi, shape).astype(np.uint8)


@pytest.fixture(scope="module")
def imagery(tmp_path_factory):
    "A folder of two GeoTIFFs (EPSG:3857 RGB 8-bit; UTM 13N grey 16-bit with a nodata and a blank tile) and an XYZ folder."
    d = tmp_path_factory.mktemp("imagery"); rng = np.random.default_rng(0)
    tifs = d / "tifs"; tifs.mkdir()
    with rasterio.open(tifs / "merc.tif", "w", driver="GTiff", width=192, height=128, count=3, dtype="uint8",
                       crs=CRS.from_epsg(3857), transform=Affine(PX_3857, 0, X0_3857, 0, -PX_3857, Y0_3857)) as f:
        f.write(texture(rng, (3, 128, 192)))                                           # 3 x 2 tiles of 64 px
    g = rng.integers(1000, 30000, (1, 192, 256)).astype(np.uint16)                     # 4 x 3 tiles of 64 px
    g[:, 0:64, 192:256] = 0                                                            # tile (0, 3): nodata
    g[:, 128:192, 0:64] = 5000                                                         # tile (2, 0): blank
    with rasterio.open(tifs / "utm.tif", "w", driver="GTiff", width=256, height=192, count=1, dtype="uint16", nodata=0,
                       crs=CRS.from_epsg(32613), transform=Affine(PX_UTM, 0, X0_UTM, 0, -PX_UTM, Y0_UTM)) as f:
        f.write(g)
    for z, x, y in XYZ:
        p = d / "xyz" / str(z) / str(x) / f"{y}.png"; p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(texture(rng, (256, 256, 3))).save(p)
    return d


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory):
    "A run imported with `sat2cap import-hf` from a tiny random CLIPVisionModelWithProjection saved to a folder."
    d = tmp_path_factory.mktemp("hf")
    hf = tiny_hf_encoder(d / "hf-tiny", seed=0)
    assert main(["import-hf", str(hf), "--clip", "tiny", "--out", str(d / "run")]) == 0
    return d / "run", hf


@pytest.fixture(scope="module")
def regions(imagery, hf_run, tmp_path_factory):
    "The GeoTIFF folder and the XYZ folder embedded with `sat2cap embed-region` (64 px tiles, 5 tiles per part)."
    d = tmp_path_factory.mktemp("regions")
    for name in ("tifs", "xyz"):
        assert main(["embed-region", str(hf_run[0]), str(imagery / name), "--out", str(d / name), "--tile-px", "64", "--chunk", "5"]) == 0
    return d


def frame(region):
    return pd.concat([pd.DataFrame(c) for c, _ in scan_region(region, embeddings=False)]).set_index("tile_id")


def merc_to_lonlat(x, y):
    "Inverse spherical Mercator, by hand."
    return math.degrees(x / R), math.degrees(2 * math.atan(math.exp(y / R)) - math.pi / 2)


def test_cli_hf_geotiffs_xyz_to_map(hf_run, imagery, regions, tmp_path, capsys):
    run, _ = hf_run
    tiles = frame(regions / "tifs")
    # 6 tiles of merc.tif + 12 of utm.tif, minus its nodata tile and its blank tile
    assert len(tiles) == 16 and sorted(t.split(":")[0] for t in tiles.index).count("merc.tif") == 6
    assert "utm.tif:0:3" not in tiles.index and "utm.tif:2:0" not in tiles.index
    skipped = [part_meta(p)["skipped"] for p in region_parts(regions / "tifs")]
    assert sum(s["nodata"] for s in skipped) == 1 and sum(s["blank"] for s in skipped) == 1
    assert len(region_parts(regions / "tifs")) == 4                                      # 18 tiles in parts of 5
    # EPSG:3857 tile centres, by the inverse Mercator formula
    for r in range(2):
        for c in range(3):
            lon, lat = merc_to_lonlat(X0_3857 + (c * 64 + 32) * PX_3857, Y0_3857 - (r * 64 + 32) * PX_3857)
            got = tiles.loc[f"merc.tif:{r}:{c}"]
            assert got.lon == pytest.approx(lon, abs=1e-9) and got.lat == pytest.approx(lat, abs=1e-9)
    # UTM 13N: centres inside the raster's lon/lat bounds, near a flat-earth estimate, east and south in order
    utm = tiles[tiles.index.str.startswith("utm.tif")]
    b = rasterio.warp.transform_bounds("EPSG:32613", "EPSG:4326", X0_UTM, Y0_UTM - 192 * PX_UTM, X0_UTM + 256 * PX_UTM, Y0_UTM)
    assert (utm.lon.between(b[0], b[2]) & utm.lat.between(b[1], b[3])).all()
    e, n = X0_UTM + 32 * PX_UTM, Y0_UTM - 32 * PX_UTM                                   # centre of tile (0, 0)
    lat_est = 40.0                                           # invert the meridian arc M(lat) = N / k0 (k0 = 0.9996) by fixed point
    for _ in range(5): lat_est = (n / 0.9996 + 16038.509 * math.sin(math.radians(2 * lat_est)) - 16.833 * math.sin(math.radians(4 * lat_est))) / 111132.954
    lon_est = -105 + (e - 500_000) / (0.9996 * 111_320 * math.cos(math.radians(lat_est)))  # central meridian of zone 13: 105 W
    assert tiles.loc["utm.tif:0:0"].lon == pytest.approx(lon_est, abs=2e-3) and tiles.loc["utm.tif:0:0"].lat == pytest.approx(lat_est, abs=2e-3)
    assert tiles.loc["utm.tif:0:1"].lon > tiles.loc["utm.tif:0:0"].lon > tiles.loc["utm.tif:1:0"].lon - 1e-3
    assert tiles.loc["utm.tif:1:0"].lat < tiles.loc["utm.tif:0:0"].lat
    # XYZ: 2 tiles of 256 px -> 2 x 16 tiles; centre of the first by the inverse Mercator formula on the z10 grid
    xyz = frame(regions / "xyz")
    assert len(xyz) == 32
    z, x, y = XYZ[0]
    lon = -180 + (x + 32 / 256) * 360 / 2 ** z
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 32 / 256) / 2 ** z))))
    assert xyz.loc[f"{z}/{x}/{y}:0:0"].lon == pytest.approx(lon, abs=1e-9) and xyz.loc[f"{z}/{x}/{y}:0:0"].lat == pytest.approx(lat, abs=1e-9)
    # map -> PNG, with the best tile named; --localize and --bbox on the same region
    png = tmp_path / "map.png"
    code, out, err = cli(capsys, "map", run, regions / "tifs", "a green field", "--out", png)
    assert code == 0 and "16 tiles, best tile" in out
    h, w, coloured = drawn(png)
    assert min(h, w) >= 200 and coloured > 0.01, coloured                                     # a drawn map, not a blank
    best = out.split("best tile ")[1].split(" ")[0]
    assert best in tiles.index
    code, out, _ = cli(capsys, "map", run, regions / "xyz", "a green field", "--out", tmp_path / "loc.png", "--localize",
                       "--bbox", f"{xyz.lon.min() - 1e-6},{xyz.lat.min() - 1e-6},{xyz.lon.median()},{xyz.lat.max() + 1e-6}")
    assert code == 0 and " 16 tiles" in out                                      # the western half
    h, w, coloured = drawn(tmp_path / "loc.png")
    assert min(h, w) >= 200 and coloured > 0.01, coloured
    # --when on a run without a dynamic encoder
    code, out, err = cli(capsys, "map", run, regions / "tifs", "a green field", "--when", "2012-07-15 10:00", "--out", tmp_path / "w.png")
    assert code == 2 and "no dynamic encoder" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "w.png").exists()


def test_region_embeddings_equal_hf_model(hf_run, imagery, regions):
    "A stored tile embedding equals the transformers model's on the same pixels (1e-5)."
    from transformers import CLIPVisionModelWithProjection
    run = sat2cap.load(hf_run[0]).run
    hf = CLIPVisionModelWithProjection.from_pretrained(hf_run[1]).eval()
    with rasterio.open(imagery / "tifs" / "merc.tif") as f: px = f.read(window=rasterio.windows.Window(64, 64, 64, 64))  # tile (1, 1)
    x = run.overhead_transform(torch.from_numpy(px)[None])                                # (1, 3, 64, 64)
    with torch.no_grad(): theirs = hf(pixel_values=x).image_embeds[0].numpy()
    ours = {c["tile_id"][i]: e[i] for c, e in scan_region(regions / "tifs") for i in range(len(e))}["merc.tif:1:1"]
    assert np.abs(ours - theirs).max() < 1e-5 and np.abs(theirs).max() > 1e-2


def test_resume_rank_split_and_settings(hf_run, imagery, regions, tmp_path, capsys):
    run = sat2cap.load(hf_run[0]).run
    out = tmp_path / "r"
    a = embed_imagery(run, imagery / "tifs", out, tile_px=64, chunk=5)
    parts = region_parts(out); parts[1].unlink()
    b = embed_imagery(run, imagery / "tifs", out, tile_px=64, chunk=5)                  # resume: only the missing part
    assert (a["parts_written"], b["parts_written"], b["parts_reused"]) == (4, 1, 3) and b["embedded"] == 16
    assert frame(out).sort_index().equals(frame(regions / "tifs").sort_index())
    code, _, err = cli(capsys, "embed-region", hf_run[0], imagery / "tifs", "--out", out, "--tile-px", "32")
    assert code == 2 and "other settings" in err and "tile_px=64" in err
    split = tmp_path / "split"                                                          # two ranks, same folder
    for rank in (0, 1): embed_imagery(run, imagery / "tifs" / "merc.tif", split, tile_px=64, chunk=2, rank=rank, world=2)
    names = [p.name for p in region_parts(split)]
    assert names == ["part-r0000-c000000.parquet", "part-r0000-c000001.parquet", "part-r0001-c000000.parquet", "part-r0001-c000001.parquet"]
    per_rank = [pd.concat([pd.read_parquet(p, columns=["tile_id"]) for p in region_parts(split) if p.name.startswith(f"part-r000{r}")]).tile_id.tolist()
                for r in (0, 1)]
    assert per_rank == [["merc.tif:0:0", "merc.tif:0:2", "merc.tif:1:1"], ["merc.tif:0:1", "merc.tif:1:0", "merc.tif:1:2"]]  # tile i -> rank i % 2


def test_streamed_scores_match_direct(hf_run, regions, tmp_path):
    "Streaming in batches of 3 gives every tile the direct similarity, and the best tiles in order."
    run = sat2cap.load(hf_run[0]).run
    sm = stream_similarity(regions / "tifs", run, "a green field", k=4, scores_out=tmp_path / "s.parquet", batch_size=3)
    ids, emb = zip(*[(c["tile_id"], e) for c, e in scan_region(regions / "tifs")])
    ids, emb = np.concatenate(ids), np.concatenate(emb)
    direct = similarity_map((np.zeros(len(ids)), np.zeros(len(ids)), emb), run, "a green field")
    s = pd.read_parquet(tmp_path / "s.parquet").set_index("tile_id").loc[ids, "score"].to_numpy()
    np.testing.assert_allclose(s, direct, atol=1e-5)
    assert sm.top.tile_id.tolist() == list(ids[np.argsort(-direct)[:4]]) and sm.tiles == 16


def test_python_api(hf_run, imagery, tmp_path, monkeypatch):
    "The five lines: load (run folder or hf:), embed, map, save."
    monkeypatch.setenv("SAT2CAP_HOME", str(tmp_path / "home"))
    model = sat2cap.load(f"hf:{hf_run[1]}", clip="tiny")                              # imported once into the cache
    assert (tmp_path / "home" / "hf-runs").is_dir() and not model.run.dynamic
    region = model.embed(imagery / "tifs" / "merc.tif", out=tmp_path / "region", tile_px=64)
    m = model.map(region, "a green field")
    h, w, coloured = drawn(m.save(tmp_path / "map.png"))
    assert min(h, w) >= 200 and coloured > 0.01, coloured                                     # a drawn map, not a blank
    assert m.best["tile_id"].startswith("merc.tif:") and m.result.tiles == 6
    with pytest.raises(Sat2CapError, match="no dynamic encoder"): model.map(region, "a green field", when="2012-07-15 10:00")


def test_user_errors_one_line(hf_run, imagery, regions, tmp_path, capsys):
    run = hf_run[0]
    bad2 = tmp_path / "two.tif"
    with rasterio.open(bad2, "w", driver="GTiff", width=64, height=64, count=2, dtype="uint8", crs="EPSG:4326",
                       transform=Affine(0.001, 0, -105, 0, -0.001, 40)) as f: f.write(np.ones((2, 64, 64), np.uint8))
    flt = tmp_path / "float.tif"
    with rasterio.open(flt, "w", driver="GTiff", width=64, height=64, count=3, dtype="float32", crs="EPSG:4326",
                       transform=Affine(0.001, 0, -105, 0, -0.001, 40)) as f: f.write(np.ones((3, 64, 64), np.float32))
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    cases = [
        (("embed-region", run, imagery / "tifs", "--out", tmp_path / "o", "--tile-px", "0"), "--tile-px"),
        (("embed-region", run, imagery / "tifs", "--out", tmp_path / "o", "--stride", "-3"), "--stride"),
        (("embed-region", run, bad2, "--out", tmp_path / "o"), "2 bands"),
        (("embed-region", run, flt, "--out", tmp_path / "o"), "float32"),
        (("embed-region", run, tmp_path / "nothing", "--out", tmp_path / "o"), "does not exist"),
        (("embed-region", tmp_path / "norun", imagery / "tifs", "--out", tmp_path / "o"), "does not exist"),
        (("map", run, tmp_path / "other.parquet", "a field"), "not a region file"),
        (("map", run, regions / "tifs", " "), "prompt is empty"),
        (("map", run, regions / "tifs", "a field", "--bbox", "1,2,3"), "--bbox"),
        (("map", run, regions / "tifs", "a field", "--bbox", "10,45,11,46"), "does not overlap"),
        (("map", run, regions / "tifs", "a field", "--when", "2012-13-45 99:00"), "--when"),
        (("map", tmp_path / "norun", regions / "tifs", "a field"), "does not exist"),
        (("import-hf", tmp_path / "nohf", "--clip", "tiny", "--out", tmp_path / "x"), "could not load"),
        (("import-hf", hf_run[1], "--clip", "tiny", "--out", run), "already holds a run"),
    ]
    for args, msg in cases:
        code, _, err = cli(capsys, *args)
        assert code == 2 and msg in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)


def test_map_and_score_map_read_the_same_dates(tiny_run, tiny_world, regions, tmp_path, capsys):
    "Issue 8.2: every form one of them accepts, the other accepts too, as the same time; bad forms exit 2 in both."
    for when in ("2012-07-15T10:00", " 2012-07-15 10:00:00 "):
        code, out, err = cli(capsys, "score-map", tiny_run, tiny_world, "people riding horses", "--when", when)
        assert code == 0 and json.loads(out.strip().splitlines()[-1])["when"] == "2012-07-15 10:00", err
        code, out, err = cli(capsys, "map", tiny_run, regions / "tifs", "people riding horses", "--when", when, "--out", tmp_path / "m.png")
        assert code == 0 and "at 2012-07-15 10:00" in out, err
    for bad in ("15/07/2012 10:00", "2012-07-15", ""):
        for r in (cli(capsys, "score-map", tiny_run, tiny_world, "people riding horses", "--when", bad),
                  cli(capsys, "map", tiny_run, regions / "tifs", "people riding horses", "--when", bad, "--out", tmp_path / "m.png")):
            assert r[0] == 2 and "--when" in r[2] and r[2].count("\n") == 1, (bad, r)
