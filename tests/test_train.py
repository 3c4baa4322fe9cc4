"""Training: exact resume after SIGKILL, DDP with torchrun (gloo) and its shared queue, safe checkpoints, evaluation."""
import os, sys, json, signal, shutil, subprocess, textwrap
from pathlib import Path
import pytest, torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sat2cap.runs import TrainConfig, complete_checkpoints, load_run
from sat2cap.train import train, evaluate_run, train_cli
from sat2cap.loss import GroundCache

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sat2cap.synthworld import write_synthworld
    d = tmp_path_factory.mktemp("sw")
    write_synthworld(d / "sw", n_samples=160, seed=3, image_size=64, region_step=5.0, shard_size=16)   # several shards per split
    return d / "sw"

def cfg(world, out, **kw):
    base = dict(data=str(world), out=str(out), steps=8, batch_size=8, ckpt_every=3, eval_every=4, eval_samples=16,
                log_every=2, lr=1e-3, num_workers=1, cpu_threads=1, cache_dir=str(Path(out).parent / "cache"))
    return TrainConfig(**{**base, **kw})

def final_weights(run):
    ck = complete_checkpoints(run)[-1]
    return {**load_file(ck / "model.safetensors"), **{f"loss.{k}": v for k, v in load_file(ck / "loss.safetensors").items()}}

def run_py(code, **kw):
    env = {**os.environ, "SAT2CAP_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300, **kw)

def test_resume_after_sigkill_matches_uninterrupted(world, tmp_path):
    train(cfg(world, tmp_path / "a"))                                        # A: uninterrupted 8 steps
    c = cfg(world, tmp_path / "b")
    r = run_py(f"""
        import os, signal
        from sat2cap.train import TrainConfig, train
        cfg = TrainConfig(**{c.__dict__!r})
        cfg.betas = tuple(cfg.betas)
        train(cfg, callback=lambda step, info: os.kill(os.getpid(), signal.SIGKILL) if step == 5 else None)
    """)
    assert r.returncode == -signal.SIGKILL, r.stderr                        # B: killed at step 5
    assert [p.name for p in complete_checkpoints(tmp_path / "b")] == ["step-000003"]
    train_cli.__wrapped__(str(world), out=str(tmp_path / "b"), resume=True)  # resumed from step 3 via the CLI function
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    assert json.loads((complete_checkpoints(tmp_path / "b")[-1] / "meta.json").read_text())["step"] == 8

def test_dynamic_encoder_size_comes_from_the_config_and_old_configs_keep_the_papers(world, tmp_path):
    import dataclasses
    from sat2cap.core import Sat2CapError
    from sat2cap.train import make_config, check_config
    c = make_config(str(world), str(tmp_path / "s"))                  # the tiny CLIP: SynthWorld preset
    assert (c.preset, c.dynamic_hidden, c.dynamic_harmonics, c.crop_scale, c.randaug_ops) == ("synthworld", 256, 4, 0.8, 1)
    p = make_config(str(world), str(tmp_path / "p"), preset="paper")
    assert (p.dynamic_hidden, p.dynamic_harmonics, p.crop_scale, p.randaug_ops, p.randaug_magnitude) == (64, 1, 0.5, 2, 9)
    old = TrainConfig.from_dict({"steps": 10})                        # saved before the fields existed
    assert (old.dynamic_hidden, old.dynamic_harmonics, old.image_norm) == (64, 1, 0.0)
    for bad in (0.0, 1.5):
        with pytest.raises(Sat2CapError, match="--crop-scale must be in"): check_config(dataclasses.replace(c, crop_scale=bad))
    with pytest.raises(Sat2CapError, match="--randaug-magnitude must be 0-30, got 31"):
        check_config(dataclasses.replace(c, randaug_magnitude=31))
    train_cli.__wrapped__(str(world), out=str(tmp_path / "r"), steps=2, batch_size=8, eval_every=0, num_workers=1,
                          cpu_threads=1, dynamic_hidden=32, dynamic_harmonics=3,      # the options reach the model
                          image_norm=2.0,
                          crop_scale=0.6, randaug_ops=0, randaug_magnitude=3)         # and the augmentation
    aug = TrainConfig.load(tmp_path / "r" / "config.json")
    assert (aug.crop_scale, aug.randaug_ops, aug.randaug_magnitude) == (0.6, 0, 3)    # not the preset's 0.8, 1, 5
    r = load_run(tmp_path / "r")                                      # rebuilt with the run's own sizes
    assert (r.model.dynamic.harmonics, r.model.dynamic.mlp[0].in_features, r.model.dynamic.mlp[0].out_features) == (3, 25, 32)
    assert r.model.image_norm == 2.0 and (c.image_norm, p.image_norm) == (1.0, 0.0)  # the SynthWorld preset's; off in the paper's
    saved = final_weights(tmp_path / "r")
    torch.testing.assert_close(r.model.dynamic.mlp[0].weight, saved["dynamic.mlp.0.weight"])

TORCHRUN_SCRIPT = """
import sys, json, torch
from sat2cap.train import TrainConfig, train
cfg = TrainConfig(**json.loads(sys.argv[1]))
def record(step, info):
    if step == cfg.steps:     # each rank saves its queue and the keys of its last batch
        lf = info["loss_fn"]
        torch.save({"queue": lf.queue.clone(), "ptr": lf.ptr.clone(), "keys": list(info["keys"]), "world": info["world"]},
                   f"{cfg.out}/rank{info['rank']}.pt")
train(cfg, callback=record)
"""

def test_torchrun_two_ranks_share_queue(world, tmp_path):
    script = tmp_path / "run.py"; script.write_text(TORCHRUN_SCRIPT)
    c = cfg(world, tmp_path / "ddp", steps=3, batch_size=4, ckpt_every=3, eval_every=3, num_workers=0)
    c.betas = list(c.betas)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    r = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", str(script), json.dumps(c.__dict__)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "SAT2CAP_NO_PROGRESS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    assert r0["world"] == r1["world"] == 2
    torch.testing.assert_close(r0["queue"], r1["queue"], atol=0, rtol=0)   # every rank holds the same queue
    assert len(r0["keys"]) == len(r1["keys"]) == 4 and not set(r0["keys"]) & set(r1["keys"])
    # the last 8 rows written are rank 0's then rank 1's ground embeddings of the last step
    cache = GroundCache.load(next((tmp_path / "cache").glob("train-*")))
    K, p = len(r0["queue"]), r0["ptr"].item()
    last = r0["queue"][[(p - 8 + i) % K for i in range(8)]]
    torch.testing.assert_close(last, F.normalize(cache.lookup(r0["keys"] + r1["keys"]), dim=-1))
    ck = complete_checkpoints(tmp_path / "ddp")[-1]
    assert ck.name == "step-000003" and (ck / "rng-0.pt").exists() and (ck / "rng-1.pt").exists()
    assert json.loads((ck / "meta.json").read_text())["world_size"] == 2
    assert any("val/R@10" in l for l in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines())


def test_clip_oracle_reads_the_runs_own_ground_cache(tiny_world, tiny_run, monkeypatch):
    "evaluate takes the training photos' embeddings from the run's cache (built under its --clip name), not anew."
    import sat2cap.train as T
    fresh = T.reference_embeddings(load_run(tiny_run), tiny_world, "cpu")
    monkeypatch.setattr(T, "compute_ground_embeddings", lambda *a, **k: pytest.fail("recomputed the training photos"))
    res = evaluate_run(tiny_run, tiny_world, gallery=1000)
    keys, emb = T.reference_embeddings(load_run(tiny_run), tiny_world, "cpu")
    assert sorted(keys) == sorted(fresh[0]) and len(keys) == len(emb) > 0
    c = res["ceiling"]
    assert c["clip_oracle"]["R@1"] <= c["clip_oracle"]["R@10"] and 0 < c["clip_oracle"]["median_rank"] <= res["gallery"]
    assert c["fraction_of_clip_oracle"]["R@10"] == pytest.approx(
        res["overhead_to_ground"]["sat2cap_meta"]["R@10"] / max(c["clip_oracle"]["R@10"], 1e-9), abs=1e-3)


def test_clip_oracle_does_not_take_another_worlds_cache(tiny_run, tmp_path, monkeypatch):
    "A SynthWorld the run did not train on is embedded anew: its photos are not the cached ones."
    import sat2cap.train as T
    from sat2cap.synthworld import write_synthworld
    other = tmp_path / "other"
    write_synthworld(other, n_samples=100, seed=4, region_step=4.0, workers=1)       # same key names, other photos
    calls, real = [], T.compute_ground_embeddings
    monkeypatch.setattr(T, "compute_ground_embeddings", lambda *a, **k: calls.append(1) or real(*a, **k))
    keys, emb = T.reference_embeddings(load_run(tiny_run), other, "cpu")
    assert calls == [1] and len(keys) == len(emb) > 0
