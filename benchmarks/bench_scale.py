"""Scale benchmarks for issue 9, each a ratio measured in one run; JSON in benchmarks/results/scale_*.json.

    python benchmarks/bench_scale.py cache   [--rows 10000000 --dim 128]  # (a) 10M-row ground cache
    python benchmarks/bench_scale.py share   [--shards 16]                # (b) 2-rank training: decoded / trained per rank
    python benchmarks/bench_scale.py loader                               # (c) loader samples/s per core vs JPEG decode alone, 224 px
    python benchmarks/bench_scale.py overlap [--steps 40]                 # (d) CPU training with loader workers vs serial vs model only
    python benchmarks/bench_scale.py estimate                             # (e) one epoch of 6.1M pairs on 8 A100s, from (c), (d) and the H200 check

Every result records `uptime` (the machine is shared: absolute numbers move with the load, ratios within one run less).
"""
import argparse, io, json, os, subprocess, sys, tempfile, time, shutil, socket
from pathlib import Path
import numpy as np
import torch

RES = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]

def uptime() -> str: return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

def save(name:str, out:dict):
    out = {"uptime_before": out.pop("_up0", None), **out, "uptime_after": uptime(), "cpu_count": os.cpu_count(), "torch": torch.__version__}
    RES.mkdir(exist_ok=True)
    (RES / f"scale_{name}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))

def rss() -> dict:
    "This process's resident memory in MiB: total, anonymous (private) and file-backed (page cache, shared)."
    st = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines() if ":" in l)
    kb = lambda k: int(st[k].split()[0]) / 1024
    roll = dict(l.split(":", 1) for l in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:] if ":" in l)
    pss = lambda k: round(int(roll[k].split()[0]) / 1024, 1) if k in roll else None
    return {"rss_mib": round(kb("VmRSS"), 1), "anon_mib": round(kb("RssAnon"), 1), "file_mib": round(kb("RssFile"), 1),
            "pss_mib": pss("Pss"), "pss_file_mib": pss("Pss_File")}   # PSS divides shared pages among the processes mapping them

# ---------------------------------------------------------------- (a) cache
def _keys(n:int, seed:int=0) -> np.ndarray:
    "n unique 16-byte keys in random order (like '0001234567890abc')."
    return np.char.zfill(np.random.default_rng(seed).permutation(n).astype("S16"), 16)

def _write_part(args):
    from sat2cap.loss import write_cache_part
    folder, rank, world, n, dim, shards = args
    shard_of = np.arange(n) * shards // n                      # rows in shard order, `shards` shards
    rows = np.flatnonzero(shard_of % world == rank)            # this rank's shards: rank, rank + world, ...
    shard = shard_of[rows]
    emb = np.empty((len(rows), dim), np.float16)
    rng = np.random.default_rng(rank)
    for i in range(0, len(rows), 1 << 20): emb[i:i + (1 << 20)] = rng.standard_normal((len(emb[i:i + (1 << 20)]), dim), dtype=np.float32)
    t0 = time.perf_counter()
    write_cache_part(folder, rank, world, emb, _keys(n)[rows], shard)
    return time.perf_counter() - t0

def _map_and_lookup(args):
    "One 'rank': memory-map the cache, look up 256 random keys `reps` times; report times and memory."
    from sat2cap.loss import GroundCache
    path, n, reps = args
    keys = _keys(n)
    rng = np.random.default_rng(os.getpid())
    queries = [[k.decode() for k in keys[rng.choice(n, 256, replace=False)]] for _ in range(reps)]
    del keys
    before = rss()
    t0 = time.perf_counter(); c = GroundCache.load(path); t_open = time.perf_counter() - t0
    t = []
    for q in queries:
        t0 = time.perf_counter(); c.lookup(q); t.append(time.perf_counter() - t0)
    time.sleep(3)                                              # both 'ranks' hold their maps while memory is read
    after = rss()
    return dict(open_s=round(t_open, 3), lookup_256_ms_median=round(1000 * float(np.median(t)), 2), rss_before_open=before, rss_after_lookups=after,
                anon_growth_mib=round(after["anon_mib"] - before["anon_mib"], 1), file_growth_mib=round(after["file_mib"] - before["file_mib"], 1))

def bench_cache(a):
    import multiprocessing as mp
    from sat2cap.loss import merge_cache_parts
    out = {"_up0": uptime(), "rows": a.rows, "dim": a.dim, "ranks": 2}
    tmp = Path(tempfile.mkdtemp(dir=a.tmp))
    try:
        ctx = mp.get_context("fork")
        t0 = time.perf_counter()
        with ctx.Pool(2) as pool: part_s = pool.map(_write_part, [(tmp / "parts", r, 2, a.rows, a.dim, a.shards) for r in range(2)])
        out["part_write_s_per_rank"] = [round(t, 1) for t in part_s]   # write_cache_part alone (the rest is making random rows)
        out["parts_generated_and_written_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter(); merge_cache_parts(tmp / "parts", 2, tmp / "cache", "bench"); out["merge_s"] = round(time.perf_counter() - t0, 1)
        out["size_on_disk_mib"] = {p.name: round(p.stat().st_size / 2**20, 1) for p in (tmp / "cache").iterdir()}
        subprocess.run(["sync"])
        with mp.get_context("spawn").Pool(2) as pool: out["per_rank"] = pool.map(_map_and_lookup, [(tmp / "cache", a.rows, 50)] * 2)
        out["fp32_matrix_per_rank_before_mib"] = round(a.rows * a.dim * 4 / 2**20, 1)    # today: every rank loads the whole matrix
        out["before"] = _old_format(a.rows)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    save("cache", out)

def _old_format(n:int) -> str:
    "What today's format (keys as JSON in the safetensors header) does with n keys."
    from safetensors.torch import save_file
    keys = [k.decode() for k in _keys(n)]
    with tempfile.TemporaryDirectory() as d:
        try: save_file({"emb": torch.zeros(1, 1)}, f"{d}/c.safetensors", metadata={"keys": json.dumps(keys)}); return "saved"
        except Exception as e: return f"{type(e).__name__}: {str(e)[:200]}"

# ---------------------------------------------------------------- (b) share
SHARE_SCRIPT = """
import sys, json
from sat2cap.train import TrainConfig, train
train(TrainConfig(**json.loads(sys.argv[1])))
"""

def bench_share(a):
    from sat2cap.synthworld import write_synthworld
    from sat2cap.data import count_samples
    from sat2cap.data import split_shards as _shards
    out = {"_up0": uptime()}
    tmp = Path(tempfile.mkdtemp(dir=a.tmp))
    try:
        write_synthworld(tmp / "sw", n_samples=a.samples, seed=0, image_size=64, region_step=5.0, shard_size=max(1, int(0.7 * a.samples / (a.shards + 3))), workers=2)
        shards = _shards(tmp / "sw", "train")
        n = sum(count_samples(s) for s in shards)
        B = 8
        steps = (n // 2 // B) - 2                              # about one epoch per rank
        cfg = dict(data=str(tmp / "sw"), out=str(tmp / "run"), steps=steps, batch_size=B, eval_every=0, ckpt_every=steps,
                   log_every=steps, num_workers=1, cpu_threads=1, betas=[0.9, 0.98])
        (tmp / "s.py").write_text(SHARE_SCRIPT)
        torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
        t0 = time.perf_counter()
        r = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", str(tmp / "s.py"), json.dumps(cfg)], capture_output=True, text=True,
                           env={**os.environ, "SAT2CAP_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stderr[-3000:]
        recs = [json.loads(l) for l in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
        per = [r for r in recs if "rank" in r and r["step"] == steps]
        out.update(train_shards=len(shards), train_samples=n, world=2, batch_size=B, steps=steps, wall_s=round(time.perf_counter() - t0, 1),
                   per_rank=per, decoded_over_trained={r["rank"]: round(r["decoded"] / r["trained"], 3) for r in per},
                   before_decoded_over_trained=2.0)   # today every rank decodes the global batch (batch_size x world): ratio = world
    finally: shutil.rmtree(tmp, ignore_errors=True)
    save("share", out)

# ---------------------------------------------------------------- (c) loader
def bench_loader(a):
    from PIL import Image
    import webdataset as wds
    from sat2cap.synthworld import write_synthworld
    from sat2cap.data import make_loader, overhead_train_transform
    from sat2cap.data import split_shards as _shards
    torch.set_num_threads(1)
    out = {"_up0": uptime(), "image_size": 224, "process": "one process, one torch thread (per core)"}
    tmp = Path(tempfile.mkdtemp(dir=a.tmp))
    try:
        write_synthworld(tmp / "sw", n_samples=a.samples, seed=0, image_size=224, region_step=5.0, workers=2)
        shards = _shards(tmp / "sw", "train")
        raws = [r["overhead.jpg"] for r in wds.WebDataset(shards, shardshuffle=False, nodesplitter=None, workersplitter=None)]
        tf = overhead_train_transform(224, [0.5] * 3, [0.25] * 3)
        rates = {"jpeg_decode": [], "loader_overhead_only": []}
        cpu = {"jpeg_decode": [], "loader_overhead_only": []}      # per CPU-second: what one dedicated core would do
        for _ in range(3):                                     # alternate so load changes hit both alike
            t0, c0 = time.perf_counter(), time.process_time()
            for b in raws: Image.open(io.BytesIO(b)).convert("RGB")
            rates["jpeg_decode"].append(len(raws) / (time.perf_counter() - t0)); cpu["jpeg_decode"].append(len(raws) / (time.process_time() - c0))
            dl = make_loader(shards, batch_size=32, overhead_tf=tf, decode_ground=False, shuffle=True, num_workers=0, seed=0, rank=0, world_size=1)
            t0, c0 = time.perf_counter(), time.process_time()
            k = sum(len(b["key"]) for b in dl)
            rates["loader_overhead_only"].append(k / (time.perf_counter() - t0)); cpu["loader_overhead_only"].append(k / (time.process_time() - c0))
        out["samples_per_s_wall"] = {k: round(max(v), 1) for k, v in rates.items()}
        out["samples_per_s_per_core"] = {k: round(max(v), 1) for k, v in cpu.items()}
        out["loader_over_decode"] = round(max(cpu["loader_overhead_only"]) / max(cpu["jpeg_decode"]), 3)
        out["note"] = "per core = samples per CPU-second of this process (the machine was shared; wall-clock rates are lower)"
        out["n_samples"] = len(raws)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    save("loader", out)

# ---------------------------------------------------------------- (d) overlap
def _model_only(data:Path, batch:int, steps:int) -> float:
    from sat2cap.encoders import load_clip
    from sat2cap.dynamic import Sat2Cap
    from sat2cap.loss import MemoryBankLoss
    from sat2cap.train import TrainConfig, TrainStep, make_optimizer, META
    from sat2cap.data import make_loader, overhead_train_transform
    clip = load_clip("tiny")
    b = next(iter(make_loader(_tr(data), batch_size=batch, overhead_tf=overhead_train_transform(clip.image_size, [0.5] * 3, [0.25] * 3),
                              decode_ground=False, seed=0, rank=0, world_size=1)))
    model = Sat2Cap.from_clip(clip).train(); lf = MemoryBankLoss(clip.embed_dim, 256); lf.fill(torch.randn(512, clip.embed_dim))
    sm = TrainStep(model, lf); opt = make_optimizer(sm, TrainConfig())
    x, meta, g = b["overhead"], [b[k] for k in META], torch.randn(batch, clip.embed_dim)
    def step():
        loss = sm(x, *meta, g, drop_p=0.3); opt.zero_grad(); loss.backward(); opt.step(); lf.enqueue(g)
    for _ in range(3): step()
    t0 = time.perf_counter()
    for _ in range(steps): step()
    return steps * batch / (time.perf_counter() - t0)

def _tr(data): return sorted(str(p) for p in (Path(data) / "train").glob("*.tar"))

def bench_overlap(a):
    from sat2cap.synthworld import write_synthworld
    from sat2cap.runs import TrainConfig, auto_workers
    from sat2cap.train import train
    from sat2cap.core import torch_threads
    from sat2cap.data import count_samples
    out = {"_up0": uptime(), "clip": "tiny", "image_size": 64, "batch_size": 64, "steps": a.steps,
           "threads": "the step uses 1 torch thread in every variant (1 core for the step, the other for the loader worker)"}
    tmp = Path(tempfile.mkdtemp(dir=a.tmp))
    try:
        write_synthworld(tmp / "sw", n_samples=a.samples, seed=0, image_size=64, region_step=5.0, shard_size=100, workers=2)
        runs = {"serial (num_workers=0)": dict(num_workers=0), "overlap (auto_workers)": dict(num_workers=auto_workers())}
        sps = {k: [] for k in runs}; sps["model_only"] = []
        for i in range(2):
            for name, kw in runs.items():
                cfg = TrainConfig(data=str(tmp / "sw"), out=str(tmp / f"run{i}-{kw['num_workers']}"), steps=a.steps, batch_size=64, eval_every=0,
                                  ckpt_every=a.steps, log_every=a.steps // 2, cache_dir=str(tmp / "cache"), cpu_threads=1, **kw)
                S = train(cfg)
                recs = [json.loads(l) for l in Path(cfg.out, "metrics.jsonl").read_text().splitlines() if "samples_per_s" in l]
                # rate over the second half of the run (the first includes worker start-up and the shuffle buffer filling)
                sps[name].append(_half_rate(recs, a.steps, 64))
                out[f"workers_used {name}"] = S.cfg.num_workers
            with torch_threads(1): sps["model_only"].append(_model_only(tmp / "sw", 64, a.steps // 2))
        best = {k: round(max(v), 1) for k, v in sps.items()}
        n_train = sum(count_samples(s) for s in _tr(tmp / "sw"))
        out["steps_per_epoch"] = n_train // 64
        out["measured"] = (f"steps {a.steps // 2}-{a.steps} of epoch 0 ({n_train} training samples): the steady state, no epoch boundary; "
                           "at a boundary the loader starts fresh workers and refills its shuffle buffer, about 1.3 s here once per epoch: "
                           "nothing at 6.1M pairs, but a 2,000-sample world ends an epoch inside the window and the ratio drops to ~0.55)")
        out["samples_per_s"] = best
        out["serial_over_model_only"] = round(best["serial (num_workers=0)"] / best["model_only"], 3)
        out["overlap_over_model_only"] = round(best["overlap (auto_workers)"] / best["model_only"], 3)
        out["overlap_over_serial"] = round(best["overlap (auto_workers)"] / best["serial (num_workers=0)"], 3)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    save("overlap", out)

def _half_rate(recs, steps, B):
    "Samples/s between the two logged points (second half of the run), from cumulative rates."
    (s1, r1), (s2, r2) = [(r["step"], r["samples_per_s"]) for r in recs[-2:]]
    t1, t2 = s1 * B / r1, s2 * B / r2
    return (s2 - s1) * B / (t2 - t1)

# ---------------------------------------------------------------- (e) estimate
def bench_estimate(a):
    load = lambda n: json.loads((RES / n).read_text())
    h200 = load("gpu_check_h200.json")["synthetic"]
    c = load("scale_loader.json")
    N, gpus = 6_100_000, 8
    a100_over_h200 = 312 / 989                                 # dense bf16 peak TFLOPS, A100 SXM vs H200
    model_sps = h200["cache"]["samples_per_s"] * a100_over_h200            # training step per A100 (cache), samples/s
    ground_fwd_s = (1 / h200["recompute"]["samples_per_s"] - 1 / h200["cache"]["samples_per_s"]) / a100_over_h200   # s per ground photo
    loader_core = c["samples_per_s_per_core"]["loader_overhead_only"]      # 224 px decode + RandomResizedCrop + RandAugment
    cores_per_gpu = a.cores_per_gpu
    loader_gpu = loader_core * cores_per_gpu
    per_gpu = min(model_sps, loader_gpu)
    decode_core = c["samples_per_s_per_core"]["jpeg_decode"]
    out = {"_up0": uptime(), "assumptions": {
              "pairs": N, "gpus": gpus, "cores_per_gpu_for_loading": cores_per_gpu,
              "A100 step rate": "H200 ViT-B/32 bs256 bf16 cache step rate (benchmarks/results/gpu_check_h200.json) x 312/989 (peak bf16 ratio)",
              "loader": "per-core rate measured here (scale_loader.json, SynthWorld 224 px JPEG tiles; decoding grows with pixels, so larger source tiles, e.g. 800 px, need proportionally more cores)",
              "ground cache": "one pass of the frozen ViT-B/32 over the ground photos, loader at the JPEG decode rate per core",
              "data": "rank-sharded: every GPU decodes only its share (this issue's change)"},
           "a100_train_samples_per_s_model": round(model_sps), "loader_samples_per_s_per_gpu": round(loader_gpu),
           "bound": "loader" if loader_gpu < model_sps else "model",
           "epoch_train_min": round(N / (gpus * per_gpu) / 60, 1),
           "ground_cache_once_min": round(N / gpus * max(ground_fwd_s, 1 / (decode_core * cores_per_gpu)) / 60, 1),
           "before_epoch_train_min (every rank decoded everything)": round(N / (gpus * min(model_sps, loader_gpu / gpus)) / 60, 1)}
    save("estimate", out)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["cache", "share", "loader", "overlap", "estimate"])
    ap.add_argument("--rows", type=int, default=10_000_000); ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--shards", type=int, default=16); ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--steps", type=int, default=40); ap.add_argument("--cores-per-gpu", type=int, default=12)
    ap.add_argument("--tmp", default=None, help="scratch folder (default: the system's)")
    a = ap.parse_args()
    a.samples = a.samples or {"share": 600, "loader": 300, "overlap": 6000}.get(a.what, 0)
    os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")
    {"cache": bench_cache, "share": bench_share, "loader": bench_loader, "overlap": bench_overlap, "estimate": bench_estimate}[a.what](a)

if __name__ == "__main__": main()
