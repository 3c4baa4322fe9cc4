"""GPU check, one command (under 8 minutes on one GPU): ViT-B/32 Sat2Cap training at 224 px with bf16.

    python benchmarks/gpu_check.py          # on a GPU: ViT-B-32 (random init), 224 px, batch 256, >= 32 training shards
    python benchmarks/gpu_check.py --tiny   # anywhere (CPU): tiny CLIP, 64 px, a few steps (tests the script)

1. NCCL (gloo on CPU) process-group init with one rank, and one all_reduce.
2. Model only: the training step (Sat2Cap forward, memory-bank loss against K = 9,600 negatives, backward, AdamW)
   on an in-memory batch, with cached ground embeddings and with the frozen ground tower recomputing them;
   samples/s, FLOPs per sample (torch's FlopCounterMode) and MFU against the device's dense bf16 peak.
3. With the loader: `sat2cap.train.train` on a SynthWorld at 224 px written in >= 32 training shards (loader workers
   with their own shards, prefetch, pinned memory, bf16, ground cache); samples/s over the second half of the run,
   and its ratio to the model-only rate.
Prints one JSON object (also written to $OUT/gpu_check.json when OUT is set).
"""
import argparse, json, os, socket, sys, tempfile, time, datetime
from pathlib import Path
import torch

PEAK_TFLOPS = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "A10": 125, "V100": 125}   # dense bf16 (fp16 on V100)

def peak_flops(device:str, override:float|None):
    if override: return override * 1e12
    if not device.startswith("cuda"): return None
    name = torch.cuda.get_device_name()
    return next((v * 1e12 for k, v in PEAK_TFLOPS.items() if k in name), None)

def nccl_init(device:str) -> dict:
    "Time a one-rank process group's init (NCCL on CUDA, gloo on CPU) and one all_reduce."
    import torch.distributed as dist
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    backend = "nccl" if device.startswith("cuda") else "gloo"
    t0 = time.perf_counter()
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1, timeout=datetime.timedelta(minutes=2))
    t1 = time.perf_counter()
    x = torch.ones(4, device=device); dist.all_reduce(x)
    if device.startswith("cuda"): torch.cuda.synchronize()
    t2 = time.perf_counter()
    dist.destroy_process_group()
    return {"backend": backend, "init_s": round(t1 - t0, 3), "all_reduce_s": round(t2 - t1, 3), "ok": x.tolist() == [1.0] * 4}

def synthetic(a, device):
    "Time the training step on in-memory random batches (cache vs recompute); count its FLOPs."
    from torch.utils.flop_counter import FlopCounterMode
    from sat2cap.encoders import load_clip, GroundEncoder
    from sat2cap.dynamic import Sat2Cap
    from sat2cap.loss import MemoryBankLoss
    from sat2cap.train import TrainConfig, TrainStep, make_optimizer, autocast
    clip = load_clip(a.clip, device=device)
    S, B, D = clip.image_size, a.batch_size, clip.embed_dim
    genc = GroundEncoder(clip).to(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(B, 3, S, S, generator=g).to(device); ground = torch.randn(B, 3, S, S, generator=g).to(device)
    meta = [torch.rand(B, generator=g).to(device) * s + o for s, o in ((50, 25), (60, -125), (15, 2005), (365, 1), (24, 0))]
    cached = torch.randn(B, D, generator=g).to(device)
    out = {"clip": a.clip, "image_size": S, "embed_dim": D, "batch_size": B, "queue_size": 9600,
           "params_overhead_encoder": sum(p.numel() for p in clip.model.visual.parameters())}
    for mode in ("cache", "recompute"):
        model = Sat2Cap.from_clip(clip).to(device).train()
        lf = MemoryBankLoss(D, 9600).to(device); lf.fill(torch.randn(9600, D))
        step_mod = TrainStep(model, lf); opt = make_optimizer(step_mod, TrainConfig(lr=1e-5))
        def step():
            with torch.no_grad(), autocast(device):
                gg = cached if mode == "cache" else genc(ground).float()
            with autocast(device): loss = step_mod(x, *meta, gg, drop_p=0.3)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); lf.enqueue(gg)
            return loss
        for _ in range(a.warmup): step()
        with FlopCounterMode(display=False) as fc: step()
        flops = fc.get_total_flops() / B
        if device.startswith("cuda"): torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(a.steps): loss = step()
        if device.startswith("cuda"): torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        sps = a.steps * B / dt
        peak = peak_flops(device, a.peak_tflops)
        out[mode] = {"samples_per_s": round(sps, 1), "ms_per_step": round(1000 * dt / a.steps, 2), "final_loss": round(loss.item(), 4),
                     "gflops_per_sample": round(flops / 1e9, 3), "mfu": round(flops * sps / peak, 4) if peak else None,
                     "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None}
        del model, lf, step_mod, opt
        if device.startswith("cuda"): torch.cuda.empty_cache()
    out["ratio_cache_over_recompute"] = round(out["cache"]["samples_per_s"] / out["recompute"]["samples_per_s"], 3)
    return out

def pipeline(a, device, tmp):
    "Run the real training loop (loader workers, cache) on a SynthWorld in >= 32 training shards."
    from sat2cap.synthworld import write_synthworld
    from sat2cap.train import TrainConfig, train
    from sat2cap.data import split_shards as _shards
    t0 = time.perf_counter()
    write_synthworld(tmp / "sw", n_samples=a.n_samples, seed=0, image_size=a.data_size, region_step=5.0, workers=a.workers,
                     shard_size=a.shard_size)
    out = {"synthworld_s": round(time.perf_counter() - t0, 1), "n_samples": a.n_samples, "data_size": a.data_size,
           "train_shards": len(_shards(tmp / "sw", "train")), "num_workers": a.workers}
    cfg = TrainConfig(data=str(tmp / "sw"), out=str(tmp / "run"), clip=a.clip, steps=a.train_steps, batch_size=a.batch_size, lr=1e-5,
                      num_workers=a.workers, eval_every=0, ckpt_every=a.train_steps, log_every=max(1, a.train_steps // 2),
                      cache_dir=str(tmp / "cache"), eval_samples=min(200, a.n_samples // 10))
    if device.startswith("cuda"): torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter(); train(cfg); dt = time.perf_counter() - t0
    recs = [json.loads(l) for l in open(tmp / "run" / "metrics.jsonl")]
    logs = [r for r in recs if "samples_per_s" in r]
    (s1, r1), (s2, r2) = [(r["step"], r["samples_per_s"]) for r in logs[-2:]]
    half = (s2 - s1) * a.batch_size / (s2 * a.batch_size / r2 - s1 * a.batch_size / r1)   # second half, past start-up
    out.update(wall_s=round(dt, 1), samples_per_s_second_half=round(half, 1), samples_per_s_whole=r2, loss=logs[-1]["loss"],
               decoded_per_rank=[r for r in recs if "decoded" in r][-1:],
               peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny CLIP at 64 px, few steps (CPU smoke test)")
    ap.add_argument("--steps", type=int, default=None); ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--train-steps", type=int, default=None); ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: by device name)")
    a = ap.parse_args()
    dflt = dict(clip="tiny", steps=1, batch_size=8, train_steps=2, warmup=1, n_samples=60, data_size=64, workers=1, shard_size=8) if a.tiny else \
           dict(clip="ViT-B-32", steps=100, batch_size=256, train_steps=120, warmup=10, n_samples=12000, data_size=224, workers=8, shard_size=200)
    for k, v in dflt.items():
        if getattr(a, k, None) is None: setattr(a, k, v)
    device = "cuda" if torch.cuda.is_available() and not a.tiny else "cpu"
    if device == "cuda": torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    res = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}
    t0 = time.perf_counter()
    res["dist_init"] = nccl_init(device); print(json.dumps(res["dist_init"]), flush=True)
    res["model_only"] = synthetic(a, device); print(json.dumps(res["model_only"]), flush=True)
    with tempfile.TemporaryDirectory() as tmp: res["with_loader"] = pipeline(a, device, Path(tmp))
    res["loader_over_model_only"] = round(res["with_loader"]["samples_per_s_second_half"] / res["model_only"]["cache"]["samples_per_s"], 3)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=2))
    out = os.environ.get("OUT")
    if out: Path(out, "gpu_check.json").write_text(json.dumps(res, indent=2))

if __name__ == "__main__": main()
