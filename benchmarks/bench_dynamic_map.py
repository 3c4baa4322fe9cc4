"""Dynamic map over 1M stored tiles: a new prompt at a new date/time from stored image embeddings.

Compares, in one run, `sat2cap.embed.similarity_map` on N stored tiles with
  (a) the naive path that re-runs the overhead image encoder on every tile for each query, and
  (b) a python loop calling `model.embed` tile by tile,
both timed on a subset and extrapolated linearly to N tiles. All comparisons use one torch thread (the default
of `similarity_map`); the fast path is also timed with torch's default thread count.

usage: python benchmarks/bench_dynamic_map.py [--n 1000000] [--run RUN_DIR]
(without --run: the embedded tiny CLIP (D=128) with a random dynamic encoder; the timing does not depend on the weights)
"""
import argparse, os, time, types
os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")
import numpy as np, torch
from sat2cap.core import torch_threads
from sat2cap.embed import Region, similarity_map, text_embedding, tile_frame, fast_dynamic


def get_run(run_dir):
    "Load a trained run, or build the tiny model with a random dynamic encoder."
    if run_dir:
        from sat2cap.runs import load_run
        return load_run(run_dir)
    from sat2cap.encoders import load_clip, overhead_preprocess
    from sat2cap.dynamic import Sat2Cap
    torch.manual_seed(0)
    clip = load_clip("tiny", device="cpu")
    model = Sat2Cap.from_clip(clip).eval()
    torch.nn.init.normal_(model.dynamic.mlp[-1].weight, std=0.1)
    return types.SimpleNamespace(model=model, clip=clip, overhead_transform=overhead_preprocess(clip))


def best_of(f, k=3):
    "Return the fastest of k timed calls of f and its last result."
    ts = []
    for _ in range(k):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return min(ts), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--run", default=None)
    a = ap.parse_args()
    run = get_run(a.run)
    D = run.model.dim
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(25, 49, a.n).astype(np.float32), rng.uniform(-124, -67, a.n).astype(np.float32)
    emb = rng.normal(size=(a.n, D)).astype(np.float32)
    t0 = time.perf_counter()
    region = Region(tile_frame(lat, lon, size=(0.01, 0.01)), emb)
    print(f"{a.n:,} stored tiles, D={D}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (region built in {time.perf_counter()-t0:.1f} s)")

    t0 = time.perf_counter()
    with torch_threads(1): fast_dynamic(region, run)
    print(f"one-time precompute of the time-independent parts (per region and model): {time.perf_counter()-t0:.2f} s")
    prompts = ["people skiing on a snowy mountain", "people riding horses", "sailboat on the sea in winter", "ongoing soccer match"]
    whens = ["2012-01-15 10:00", "2012-07-15 10:00", "2013-12-20 23:00", "2014-05-20 08:00"]
    q = iter(range(100))
    def query(threads):
        i = next(q) % 4
        return similarity_map(region, run, prompts[i], whens[i], threads=threads)
    times = {}
    for th in (1, torch.get_num_threads()):
        times[th], sim = best_of(lambda: query(th))
        print(f"fast path, {th} torch thread(s): new prompt + date/time over {a.n:,} tiles: {times[th]:.3f} s (best of 3)")
    t_fast = times[1]
    t0 = time.perf_counter(); similarity_map(region, run, "people riding horses", "2012-07-15 10:00", fast=False)
    t_direct = time.perf_counter() - t0
    print(f"direct path (model.embed in chunks, 1 thread, no precompute): {t_direct:.3f} s -> fast path is {t_direct/t_fast:.1f}x faster")

    # (a) naive: re-encode every tile's overhead image for each query
    B = 64; S = run.clip.image_size
    x = torch.rand(B, 3, S, S)
    with torch.inference_mode(), torch_threads(1):
        run.model.encode_image(x[:8])
        t_enc, _ = best_of(lambda: run.model.encode_image(x), k=2)
    t_naive = t_enc / B * a.n
    # (b) python loop over tiles calling model.embed one tile at a time
    m = 2000; t_text = text_embedding(run, "people riding horses")
    e_t = torch.from_numpy(emb[:m])
    def loop():
        out = []
        with torch.inference_mode(), torch_threads(1):
            for i in range(m):
                z = run.model.embed(e_t[i:i+1], float(lat[i]), float(lon[i]), 2012., 196., 10.)
                out.append(float(z[0] @ t_text))
        return out
    t_loop1, ref = best_of(loop, k=1)
    t_loop = t_loop1 / m * a.n
    check = similarity_map(Region(tile_frame(lat[:m], lon[:m], size=(0.01, 0.01)), emb[:m]), run, "people riding horses", "2012-07-14 10:00")
    print(f"loop and fast path agree on {m} tiles: max |diff| = {np.abs(np.array(ref) - check).max():.2e}")
    print(f"naive re-encode ({S}px tiles, {t_enc/B*1e3:.2f} ms/tile): {t_naive:,.0f} s for {a.n:,} tiles -> ratio {t_naive/t_fast:,.0f}x (vs the 1-thread fast path)")
    print(f"python loop of model.embed ({t_loop1/m*1e6:.0f} us/tile): {t_loop:,.0f} s for {a.n:,} tiles -> ratio {t_loop/t_fast:,.0f}x")


if __name__ == "__main__":
    main()
