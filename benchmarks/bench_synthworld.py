"""Benchmark: SynthWorld generation speed (goal: 10,000 pairs at 64 px in under 60 s on 2 cores).

usage: .venv/bin/python benchmarks/bench_synthworld.py [N_SAMPLES] [WORKERS]
Prints wall time and pairs/s for the whole `write_synthworld` (train/val/test shards + the 0.5° region grid
+ truth), the time of the one-off imports (webdataset pulls in torch), and the ratio to the 60 s goal.
"""
import os, sys, time, tempfile, resource
from pathlib import Path
os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
t0 = time.perf_counter()
import webdataset  # noqa: F401  (imports torch; a one-off cost per process)
from sat2cap.synthworld import write_synthworld
t_import = time.perf_counter() - t0
with tempfile.TemporaryDirectory() as d:
    t1, c1 = time.perf_counter(), time.process_time()
    man = write_synthworld(Path(d) / "sw", n_samples=n, seed=0, image_size=64, workers=workers)
    dt = time.perf_counter() - t1
    size = sum(f.stat().st_size for f in (Path(d) / "sw").rglob("*") if f.is_file())
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time() - c1 + kids.ru_utime + kids.ru_stime
region = man["counts"]["region"]["tiles"]
print(f"imports (webdataset/torch): {t_import:.1f} s")
print(f"write_synthworld: {n} pairs + {region} region tiles, {workers} workers: {dt:.1f} s wall, {cpu:.1f} s CPU, {size / 1e6:.1f} MB")
print(f"pairs/s: {n / dt:.0f} (wall), {n / cpu:.0f} per CPU-second")
print(f"time for 10,000 pairs: {dt * 10_000 / n:.1f} s; ratio to the 60 s goal: {dt * 10_000 / n / 60:.2f}")
print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
