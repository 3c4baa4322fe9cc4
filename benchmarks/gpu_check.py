"""GPU check: ViT-B/32-sized Sat2Cap training at 224 px with bf16, with and without the ground-embedding cache.

    python benchmarks/gpu_check.py                # on a GPU: ViT-B-32 (random init), 224 px, a few hundred steps
    python benchmarks/gpu_check.py --tiny         # anywhere: tiny CLIP, 64 px, a few steps (tests the script)

Part 1 (synthetic, in GPU memory): the training step (Sat2Cap forward, memory-bank loss against K = 9,600
negatives, backward, AdamW) on random 224 px batches, once with ground embeddings looked up (cache) and once
recomputed by the frozen CLIP image tower; samples/s and peak GPU memory for each.
Part 2 (pipeline): a small SynthWorld at 224 px through `sat2cap.train.train` (loader workers, pinned memory,
bf16 autocast, checkpoints, validation), with and without the cache; samples/s from its metrics.jsonl.
Prints one JSON object.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path
import torch

def synthetic(a, device):
    "Time the training step on in-memory random batches, cache vs recompute."
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
        if device.startswith("cuda"): torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(a.steps): loss = step()
        if device.startswith("cuda"): torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        out[mode] = {"samples_per_s": round(a.steps * B / dt, 1), "ms_per_step": round(1000 * dt / a.steps, 2),
                     "final_loss": round(loss.item(), 4),
                     "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None}
        del model, lf, step_mod, opt
        if device.startswith("cuda"): torch.cuda.empty_cache()
    out["ratio_cache_over_recompute"] = round(out["cache"]["samples_per_s"] / out["recompute"]["samples_per_s"], 3)
    return out

def pipeline(a, device, tmp):
    "Run the real training loop on a small SynthWorld, with and without the cache."
    from sat2cap.synthworld import write_synthworld
    from sat2cap.train import TrainConfig, train, evaluate_run, load_run
    t0 = time.perf_counter()
    write_synthworld(tmp / "sw", n_samples=a.n_samples, seed=0, image_size=a.data_size, region_step=5.0, workers=a.workers)
    out = {"synthworld_s": round(time.perf_counter() - t0, 1), "n_samples": a.n_samples, "data_size": a.data_size}
    for mode in ("cache", "recompute"):
        cfg = TrainConfig(data=str(tmp / "sw"), out=str(tmp / f"run-{mode}"), clip=a.clip, steps=a.train_steps,
                          batch_size=a.batch_size, lr=1e-4, num_workers=a.workers, eval_every=a.train_steps,
                          ckpt_every=a.train_steps, log_every=max(1, a.train_steps // 4), use_cache=mode == "cache",
                          cache_dir=str(tmp / "cache"), eval_samples=min(200, a.n_samples // 10))
        if device.startswith("cuda"): torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter(); train(cfg); dt = time.perf_counter() - t0
        recs = [json.loads(l) for l in open(tmp / f"run-{mode}" / "metrics.jsonl")]
        logs = [r for r in recs if "samples_per_s" in r]
        out[mode] = {"wall_s": round(dt, 1), "samples_per_s": logs[-1]["samples_per_s"], "loss": logs[-1]["loss"],
                     "val": {k: v for r in recs for k, v in r.items() if k.startswith("val/")},
                     "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None}
    out["ratio_cache_over_recompute"] = round(out["cache"]["samples_per_s"] / out["recompute"]["samples_per_s"], 3)
    run = load_run(tmp / "run-cache", device=device)
    out["evaluate"] = evaluate_run(run, tmp / "sw", gallery=min(200, a.n_samples // 12), device=device)["overhead_to_ground"]
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny CLIP at 64 px, few steps (CPU smoke test)")
    ap.add_argument("--steps", type=int, default=None); ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--train-steps", type=int, default=None); ap.add_argument("--skip-pipeline", action="store_true")
    a = ap.parse_args()
    dflt = dict(clip="tiny", steps=3, batch_size=16, train_steps=4, warmup=1, n_samples=240, data_size=64, workers=1) if a.tiny else \
           dict(clip="ViT-B-32", steps=200, batch_size=256, train_steps=100, warmup=10, n_samples=3000, data_size=224, workers=8)
    for k, v in dflt.items():
        if getattr(a, k, None) is None: setattr(a, k, v)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda": torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    res = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}
    t0 = time.perf_counter()
    res["synthetic"] = synthetic(a, device); print(json.dumps(res["synthetic"]), flush=True)
    if not a.skip_pipeline:
        with tempfile.TemporaryDirectory() as tmp: res["pipeline"] = pipeline(a, device, Path(tmp))
    res["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=2))
    out = os.environ.get("OUT")
    if out: Path(out, "gpu_check.json").write_text(json.dumps(res, indent=2))

if __name__ == "__main__": main()
