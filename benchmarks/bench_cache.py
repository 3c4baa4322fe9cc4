"""Training throughput with the ground-embedding cache vs recomputing ground embeddings, same batch, one run.

    python benchmarks/bench_cache.py [--data SYNTHWORLD] [--clip tiny] [--batch-size 64] [--steps 20]

Both variants run the same training step (Sat2Cap forward + memory-bank loss + backward + AdamW) on the
same decoded batch, alternating so machine load affects both alike; "recompute" also runs the frozen CLIP
image tower over the batch's ground photos, "cache" looks their embeddings up by key. The loader's share
(decoding and transforming ground photos, skipped with the cache) is measured separately.
Prints JSON and the ratio cache / recompute of training samples per second.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path
import torch

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="", help="SynthWorld folder (default: generate a small one)")
    ap.add_argument("--clip", default="tiny"); ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20); ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    from sat2cap.synthworld import write_synthworld
    from sat2cap.encoders import load_clip, GroundEncoder
    from sat2cap.data import make_loader, overhead_train_transform
    from sat2cap.dynamic import Sat2Cap
    from sat2cap.loss import MemoryBankLoss, ground_cache
    from sat2cap.train import TrainConfig, TrainStep, make_optimizer, autocast, META
    tmp = Path(tempfile.mkdtemp())
    data = Path(a.data) if a.data else write_synthworld(tmp / "sw", n_samples=600, seed=0, region_step=5.0) and tmp / "sw"
    shards = sorted(str(p) for p in (data / "train").glob("*.tar"))
    clip = load_clip(a.clip, device=a.device)
    cache = ground_cache(shards, clip, tmp / "cache", name="train", device=a.device)
    genc = GroundEncoder(clip).to(a.device)
    tf = overhead_train_transform(clip.image_size, [0.5] * 3, [0.25] * 3)
    dl = make_loader(shards, batch_size=a.batch_size, overhead_tf=tf, ground_tf=clip.preprocess, shuffle=True, seed=0, rank=0, world_size=1)
    b = next(iter(dl))
    model = Sat2Cap.from_clip(clip).to(a.device).train()
    lf = MemoryBankLoss(clip.embed_dim, queue_size=min(9600, len(cache) // 2)).to(a.device); lf.fill(cache.emb)
    step_mod = TrainStep(model, lf); opt = make_optimizer(step_mod, TrainConfig())
    x, meta, ground = b["overhead"].to(a.device), [b[k].to(a.device) for k in META], b["ground"].to(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)

    def step(cached:bool):
        with torch.no_grad(), autocast(a.device):
            g = cache.lookup(b["key"]).to(a.device) if cached else genc(ground).float()
        with autocast(a.device): loss = step_mod(x, *meta, g, drop_p=0.3)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); lf.enqueue(g)

    for c in (True, False, True, False): step(c)                           # warm-up
    t = {True: 0.0, False: 0.0}
    for i in range(2 * a.steps):
        c = i % 2 == 0; sync(); t0 = time.perf_counter(); step(c); sync(); t[c] += time.perf_counter() - t0
    sps = {("cache" if c else "recompute"): a.steps * a.batch_size / t[c] for c in t}

    def loader_rate(decode_ground:bool, n:int=4):
        d = make_loader(shards, batch_size=a.batch_size, overhead_tf=tf, ground_tf=clip.preprocess, shuffle=True, seed=1,
                        decode_ground=decode_ground, rank=0, world_size=1)
        it = iter(d); next(it); t0 = time.perf_counter(); k = 0
        for _ in range(n):
            try: k += len(next(it)["key"])
            except StopIteration: break
        return k / (time.perf_counter() - t0)
    load = {"loader_overhead_only": loader_rate(False), "loader_with_ground": loader_rate(True)}
    out = {"device": a.device, "clip": a.clip, "batch_size": a.batch_size, "steps": a.steps,
           "train_samples_per_s": {k: round(v, 1) for k, v in sps.items()},
           "ratio_cache_over_recompute": round(sps["cache"] / sps["recompute"], 3),
           "loader_samples_per_s": {k: round(v, 1) for k, v in load.items()},
           "loader_ratio": round(load["loader_overhead_only"] / load["loader_with_ground"], 3)}
    print(json.dumps(out, indent=2))
    print(f"cache / recompute training samples/s: {out['ratio_cache_over_recompute']:.2f}x "
          f"(loader without ground decoding: {out['loader_ratio']:.2f}x)")

if __name__ == "__main__": main()
