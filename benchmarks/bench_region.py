"""Benchmarks of issue 10: region embedding tiles/s vs the model-only forward rate, and a streamed map query over up to 10M stored tiles.

    python benchmarks/bench_region.py                       # both parts, tiny CLIP on CPU -> benchmarks/results/bench_region.json
    python benchmarks/bench_region.py --part embed --device cuda --clip ViT-B-32 --tile-px 224   # the GPU check's part

`bench_embed` is the function the GPU check script calls (`from bench_region import bench_embed`).
Ratios are measured in one run, interleaved (model, embed, model, embed, ...) so that load on a shared machine hits both.
"""
from __future__ import annotations
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")


def _run(clip:str, device:str):
    "A Run with random weights of `clip` (no checkpoint needed): what embed-region uses."
    from sat2cap.encoders import load_clip
    from sat2cap.dynamic import Sat2Cap
    from sat2cap.runs import Run, TrainConfig
    from sat2cap.data import overhead_eval_transform
    bundle = load_clip(clip, device=device)
    model = Sat2Cap.from_clip(bundle).to(device).eval()
    mean, std = [0.4] * 3, [0.2] * 3
    return Run(model, bundle, TrainConfig(overhead_mean=mean, overhead_std=std), overhead_eval_transform(bundle.image_size, mean, std), None, 0)


def _geotiff(path:Path, side:int, seed:int=0) -> Path:
    "Write a side x side RGB uint8 GeoTIFF in UTM 13N (10 m pixels) with a random texture."
    import rasterio
    from affine import Affine
    a = np.random.default_rng(seed).integers(20, 230, (3, side, side), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32613",
                       transform=Affine(10, 0, 480000, 0, -10, 4400000), tiled=True) as f: f.write(a)
    return path


def _sync(device:str):
    if device.startswith("cuda"): torch.cuda.synchronize()


class _Clock:
    "Wall and process CPU seconds of a block (CPU time is robust to other users' load on a shared machine)."
    def __init__(self, device): self.device = device
    def __enter__(self): self.w, self.c = time.perf_counter(), time.process_time(); return self
    def __exit__(self, *a): _sync(self.device); self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


@torch.inference_mode()
def _model_rate(run, n:int, batch_size:int, device:str) -> tuple:
    "(wall, cpu) tiles/s of the overhead encoder alone on ready (B, 3, S, S) tensors."
    x = torch.randn(batch_size, 3, run.clip.image_size, run.clip.image_size, device=device)
    run.model.encode_image(x); _sync(device)
    with _Clock(device) as c:
        for _ in range(n // batch_size): run.model.encode_image(x)
    m = (n // batch_size) * batch_size
    return m / c.wall, m / c.cpu


def bench_embed(device:str="cpu", # cpu | cuda
                clip:str="tiny", # CLIP architecture (random weights)
                tile_px:int|None=None, # tile side (None: the CLIP's input size)
                n_tiles:int=1024, # tiles in the GeoTIFF (a square number)
                batch_size:int=64, # tiles per forward pass
                repeats:int=5, # interleaved repetitions; medians reported
               ) -> dict:
    "Return embed-region tiles/s (steady state and first run with preview), model-only tiles/s and their ratio."
    from sat2cap.imagery import embed_imagery
    run = _run(clip, device)
    px = tile_px or run.clip.image_size
    side = int(np.sqrt(n_tiles)) * px
    d = Path(tempfile.mkdtemp(prefix="bench-region-"))
    try:
        tif = _geotiff(d / "scene.tif", side)
        n = (side // px) ** 2
        with _Clock(device) as c: embed_imagery(run, tif, d / "region", tile_px=px, batch_size=batch_size)
        first = n / c.wall
        model, embed = [], []
        for _ in range(repeats):
            model.append(_model_rate(run, n, batch_size, device))
            for p in (d / "region").glob("part-*.parquet"): p.unlink()
            with _Clock(device) as c: embed_imagery(run, tif, d / "region", tile_px=px, batch_size=batch_size)
            embed.append((n / c.wall, n / c.cpu))
    finally: shutil.rmtree(d, ignore_errors=True)
    model, embed = np.array(model), np.array(embed)                       # (repeats, 2): wall, cpu tiles/s
    pair = embed / model                                                  # ratio of each interleaved pair
    return dict(device=device, clip=clip, tile_px=px, input_px=run.clip.image_size, tiles=n, batch_size=batch_size,
                torch_threads=torch.get_num_threads(), repeats=repeats,
                model_tiles_per_s_wall=round(float(np.median(model[:, 0])), 1), embed_tiles_per_s_wall=round(float(np.median(embed[:, 0])), 1),
                model_tiles_per_s_cpu=round(float(np.median(model[:, 1])), 1), embed_tiles_per_s_cpu=round(float(np.median(embed[:, 1])), 1),
                ratio_wall_median_of_pairs=round(float(np.median(pair[:, 0])), 3), ratio_cpu_median_of_pairs=round(float(np.median(pair[:, 1])), 3),
                goal_ratio=0.7, embed_first_run_tiles_per_s_wall=round(first, 1),
                pairs_wall=[[round(float(a), 1), round(float(b), 1)] for a, b in zip(model[:, 0], embed[:, 0])])


def _write_dataset(out:Path, n:int, dim:int, part:int=500_000, seed:int=0):
    "Write a region dataset of n random tiles (CONUS-like grid) in parts of `part` rows."
    from sat2cap.embed import tile_table, write_part, part_name
    from sat2cap.core import write_json
    rng = np.random.default_rng(seed); out.mkdir(parents=True, exist_ok=True)
    side = int(np.ceil(np.sqrt(n))); step = 24 / side
    for c, s in enumerate(range(0, n, part)):
        i = np.arange(s, min(s + part, n))
        lat, lon = 25 + (i // side + 0.5) * step, -125 + (i % side + 0.5) * step * 2.4
        h = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [step * 1.2, step / 2]      # (4, 2) corner offsets
        corners = np.stack([lon, lat], 1)[:, None] + h                                   # (n, 4, 2)
        emb = rng.standard_normal((len(i), dim), dtype=np.float32)
        write_part(tile_table([str(k) for k in i], lat, lon, corners, emb, {"tiles": len(i)}), out / part_name(0, c))
    write_json(dict(bounds=[-125.0, 25.0, -125 + side * step * 2.4, 25 + side * step], cell_deg=[step, step * 2.4], tiles=n), out / "region.json")


_QUERY = """
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
from benchmarks.bench_region import _run
from sat2cap.embed import stream_similarity
run = _run("tiny", "cpu")
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t, c = time.perf_counter(), time.process_time(); sm = stream_similarity({path!r}, run, "people riding horses", k=10)
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps(dict(tiles=sm.tiles, seconds=round(dt, 2), cpu_seconds=round(dc, 2), peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      rss_before_query_mb=round(rss0 / 1024), grid=list(sm.grid.shape))))
"""


def bench_query(sizes=(1_000_000, 3_000_000, 10_000_000), dim:int=128, keep:bool=False) -> dict:
    "Return time and peak RSS of a streamed map query over region datasets of each size (one fresh process each)."
    d = Path(tempfile.mkdtemp(prefix="bench-query-"))
    part = min(500_000, min(sizes))                               # every size a whole number of parts
    try:
        t = time.perf_counter(); _write_dataset(d / "all", max(sizes), dim, part)
        write_s = time.perf_counter() - t
        rows = []
        for n in sizes:                                           # the first n tiles: links to the first parts
            sub = d / f"n{n}"; sub.mkdir()
            for p in sorted((d / "all").glob("part-*.parquet"))[: n // part]: (sub / p.name).symlink_to(p)
            shutil.copy(d / "all" / "region.json", sub / "region.json")
            r = subprocess.run([sys.executable, "-c", _QUERY.format(root=str(ROOT), path=str(sub))], capture_output=True, text=True, cwd=ROOT)
            if r.returncode: raise RuntimeError(r.stderr[-2000:])
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        disk = sum(p.stat().st_size for p in (d / "all").glob("part-*.parquet"))
    finally:
        if not keep: shutil.rmtree(d, ignore_errors=True)
    per = [r["seconds"] / r["tiles"] * 1e6 for r in rows]
    cpu = [r["cpu_seconds"] / r["tiles"] * 1e6 for r in rows]
    return dict(dim=dim, part_rows=part, write_seconds=round(write_s, 1), disk_gb=round(disk / 1e9, 2), runs=rows,
                us_per_tile=[round(v, 3) for v in per], time_ratio_largest_vs_smallest_per_tile=round(per[-1] / per[0], 3),
                cpu_us_per_tile=[round(v, 3) for v in cpu], cpu_time_ratio_largest_vs_smallest_per_tile=round(cpu[-1] / cpu[0], 3),
                query_rss_increment_mb=[r["peak_rss_mb"] - r["rss_before_query_mb"] for r in rows],
                peak_rss_ratio_largest_vs_smallest=round(rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["all", "embed", "query"], default="all")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clip", default="tiny")
    ap.add_argument("--tile-px", type=int, default=None)
    ap.add_argument("--tiles", type=int, default=1024)
    ap.add_argument("--sizes", default="1000000,3000000,10000000")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_region.json"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time per tile is comparable across loads)")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    if a.device == "cpu": torch.set_num_threads(a.threads)
    res = dict(uptime=subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), cpus=os.cpu_count())
    if a.part in ("all", "embed"): res["embed"] = bench_embed(a.device, a.clip, a.tile_px, a.tiles, repeats=a.repeats); print(json.dumps(res["embed"]), flush=True)
    if a.part in ("all", "query"): res["query"] = bench_query(tuple(int(s) for s in a.sizes.split(","))); print(json.dumps(res["query"]), flush=True)
    res["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__": main()
