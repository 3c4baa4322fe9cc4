"""Benchmark: reading a shard whose members carry pax headers vs one with plain ustar headers.

usage: .venv/bin/python benchmarks/bench_shard_read.py [N_SAMPLES]
Writes the same N samples (64 px JPEGs, metadata, caption) twice with webdataset's `TarWriter`: once with a float
mtime (as `TarWriter(mtime=0.0)` and the default `mtime=None` do: Python's tarfile then adds a pax header to every
member) and once with an int mtime (what `sat2cap.data.write_shard` and SynthWorld write). Reports the size of both
and the time `sat2cap.data.tar_samples` takes to read each (best of 3), and their ratio. Goal: plain headers read at
least 1.5x faster.
"""
import os, sys, time, tarfile, tempfile
from pathlib import Path
import numpy as np
import webdataset as wds
from sat2cap.data import encode_jpeg, tar_samples

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
rng = np.random.default_rng(0)
jpg = [encode_jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(16)]
samples = [{"__key__": f"k{i:07d}", "overhead.jpg": jpg[i % 16], "groundlevel.jpg": jpg[(i + 7) % 16],
            "metadata.json": b'{"latitude": 40.7, "longitude": -74.0, "date_taken": "2012-07-15 14:00:00.0"}',
            "caption.txt": b"people driving cars in the city"} for i in range(n)]

def write(path, mtime):
    with open(path, "wb") as f:
        w = wds.TarWriter(f, mtime=mtime, encoder=False)
        for s in samples: w.write(s)
        w.close()

def read_time(path) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        got = sum(1 for _ in tar_samples([{"url": str(path)}]))
        best = min(best, time.perf_counter() - t)
    assert got == n, got
    return best

with tempfile.TemporaryDirectory() as d:
    pax, plain = Path(d) / "pax.tar", Path(d) / "plain.tar"
    write(pax, 0.0)
    write(plain, 0)
    with tarfile.open(pax) as t: assert t.getmembers()[0].pax_headers
    with tarfile.open(plain) as t: assert not t.getmembers()[0].pax_headers
    tp, tu = read_time(pax), read_time(plain)
    print(f"{n} samples: pax headers {pax.stat().st_size / 1e6:.1f} MB read in {tp:.3f} s; "
          f"plain headers {plain.stat().st_size / 1e6:.1f} MB read in {tu:.3f} s")
    print(f"read speed-up of plain headers: {tp / tu:.2f}x (goal >= 1.5x); size ratio {plain.stat().st_size / pax.stat().st_size:.2f}")
print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
