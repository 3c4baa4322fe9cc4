"""Scale: a 1M-row ground cache built from parts, corrupt ground photos skipped by train and evaluate,
rank-sharded data on 2 ranks (one node) and 2 nodes (two torchrun launches, gloo): disjoint shares, identical queues, exact resume."""
import io, os, sys, json, socket, shutil, subprocess, tarfile, time
from pathlib import Path
import numpy as np, pytest, torch
from safetensors.torch import load_file
from sat2cap.loss import GroundCache, write_cache_part, merge_cache_parts
from sat2cap.runs import TrainConfig, complete_checkpoints, load_run
from sat2cap.train import train, evaluate_run
from sat2cap.data import count_samples

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
ENV = {**os.environ, "SAT2CAP_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}

def test_cache_million_rows_from_parts(tmp_path):
    n, d = 1_000_000, 8
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, d)).astype(np.float16)
    keys = np.char.add(b"k", np.char.zfill(rng.permutation(n).astype("S7"), 7))   # unique, unsorted keys
    shard = np.repeat(np.arange(100), n // 100)                                      # 100 shards of 10,000 rows
    for r in range(2):                                                               # rank r embedded shards r, r + 2, ...
        rows = np.flatnonzero(shard % 2 == r)
        write_cache_part(tmp_path / "parts", r, 2, emb[rows], keys[rows], shard[rows])
    c = merge_cache_parts(tmp_path / "parts", 2, tmp_path / "cache", "fp")
    assert len(c) == n and isinstance(c._emb, np.memmap)                            # memory-mapped, not loaded
    q = rng.choice(n, 256, replace=False)
    got = c.lookup([k.decode() for k in keys[q]])
    torch.testing.assert_close(got, torch.from_numpy(emb[q].astype(np.float32)), atol=0, rtol=0)
    assert c.find(["k9999999", "k000000", "k00000000"]).tolist() == [-1, -1, -1]   # absent, a prefix, too long
    assert (tmp_path / "cache" / "emb.npy").stat().st_size < n * d * 2 + 4096       # fp16 on disk
    hdr = (tmp_path / "cache" / "meta.json").read_text()
    assert len(hdr) < 200 and json.loads(hdr)["n"] == n                               # no keys in any header

def _rewrite(src:Path, dst:Path, per_shard:int=0, corrupt:str|None=None):
    "Copy the shards of `src` to `dst`, regrouped `per_shard` samples a shard (0: as they are), one ground photo corrupted."
    dst.mkdir(parents=True)
    members = [(m.name, t.extractfile(m).read()) for p in sorted(src.glob("*.tar")) for t in [tarfile.open(p)] for m in t if m.isfile()]
    keys = list(dict.fromkeys(name.split(".")[0] for name, _ in members))
    per = per_shard or len(keys)
    for i in range(0, len(keys), per):
        want = set(keys[i:i + per])
        with tarfile.open(dst / f"shard-{i // per:06d}.tar", "w") as t:
            for name, data in members:
                if name.split(".")[0] not in want: continue
                if corrupt and name == f"{corrupt}.groundlevel.jpg": data = data[:200]   # truncated JPEG
                info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
    return keys

@pytest.fixture(scope="module")
def sharded(tiny_world, tmp_path_factory):
    "tiny_world regrouped into 4 train shards (2 ranks x 2 shards)."
    d = tmp_path_factory.mktemp("sharded") / "data"
    n = sum(count_samples(str(p)) for p in (tiny_world / "train").glob("*.tar"))
    _rewrite(tiny_world / "train", d / "train", per_shard=-(-n // 4))
    shutil.copytree(tiny_world / "val", d / "val")
    return d

def test_corrupt_ground_photo_skipped_by_train_and_evaluate(tiny_world, tmp_path):
    d = tmp_path / "data"
    bad_train = _rewrite(tiny_world / "train", d / "train", corrupt="")[3]
    _rewrite(tiny_world / "train", d / "train2", corrupt=bad_train); shutil.rmtree(d / "train"); (d / "train2").rename(d / "train")
    shutil.copytree(tiny_world / "val", d / "val")
    bad_test = _rewrite(tiny_world / "test", d / "test_ok")[2]
    _rewrite(tiny_world / "test", d / "test", corrupt=bad_test)
    seen = set()
    cfg = TrainConfig(data=str(d), out=str(tmp_path / "run"), steps=4, batch_size=16, eval_every=4, eval_samples=16,
                      ckpt_every=4, log_every=4, num_workers=0, cpu_threads=1)   # 64 samples: within one epoch
    S = train(cfg, callback=lambda step, info: seen.update(info["keys"]))
    assert bad_train not in S.caches["train"] and bad_train not in seen and len(seen) > 16
    recs = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["rank"], r["skipped"]) for r in recs if "rank" in r] == [(0, 1)]     # counted once, by rank 0
    res = evaluate_run(load_run(tmp_path / "run"), d, gallery=1000)
    assert res["skipped"] == {"corrupt groundlevel.jpg": 1}
    assert res["gallery"] == sum(count_samples(str(p)) for p in (d / "test").glob("*.tar")) - 1

SCRIPT = """
import sys, json, torch
from sat2cap.train import TrainConfig, train
cfg = TrainConfig(**json.loads(sys.argv[1]))
keys = []
def record(step, info):
    keys.extend(info["keys"])
    if step == cfg.steps:
        lf = info["loss_fn"]
        torch.save({"queue": lf.queue.clone(), "ptr": lf.ptr.clone(), "keys": keys, "world": info["world"]},
                   f"{cfg.out}/rank{info['rank']}.pt")
train(cfg, callback=record)
"""

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def _launch(script, c:TrainConfig, nodes:int):
    "Run `script` on 2 ranks: one torchrun with 2 processes, or two torchruns ('nodes') with one each."
    arg = json.dumps({**c.__dict__, "betas": list(c.betas)})
    if nodes == 1:
        cmds = [[TORCHRUN, "--standalone", "--nproc-per-node", "2", str(script), arg]]
    else:
        port = _free_port()
        cmds = [[TORCHRUN, "--nnodes", "2", "--node-rank", str(i), "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
                 "--master-port", str(port), str(script), arg] for i in range(2)]
    ps = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for c in cmds]
    try: outs = [p.communicate(timeout=120) for p in ps]
    finally:
        for p in ps: p.kill()
    for p, (o, e) in zip(ps, outs): assert p.returncode == 0, e[-3000:]

def _weights(run):
    ck = complete_checkpoints(run)[-1]
    return {**load_file(ck / "model.safetensors"), **{f"loss.{k}": v for k, v in load_file(ck / "loss.safetensors").items()}}

def test_two_ranks_and_two_nodes_shard_data_and_resume_exactly(sharded, tmp_path):
    script = tmp_path / "run.py"; script.write_text(SCRIPT)
    base = dict(data=str(sharded), steps=4, batch_size=4, ckpt_every=2, eval_every=0, log_every=2, lr=1e-3, num_workers=1,
                cpu_threads=1, cache_dir=str(tmp_path / "cache"))
    _launch(script, TrainConfig(out=str(tmp_path / "one"), **base), nodes=1)               # A: 2 ranks on one node, 4 steps
    _launch(script, TrainConfig(out=str(tmp_path / "two"), **{**base, "steps": 2}), nodes=2)  # B: 2 nodes, 2 steps ...
    _launch(script, TrainConfig(out=str(tmp_path / "two"), resume=True, **base), nodes=2)  # ... resumed to 4 on 2 nodes
    n = sum(count_samples(str(p)) for p in (sharded / "train").glob("*.tar"))
    for run in ("one", "two"):
        r0, r1 = (torch.load(tmp_path / run / f"rank{k}.pt", weights_only=True) for k in (0, 1))
        assert r0["world"] == r1["world"] == 2
        torch.testing.assert_close(r0["queue"], r1["queue"], atol=0, rtol=0)       # every rank holds the same queue
        assert not set(r0["keys"]) & set(r1["keys"])                               # disjoint shares
        recs = [json.loads(l) for l in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        dec = {r["rank"]: r["decoded"] for r in recs if "rank" in r and r["step"] == 2}
        print(run, "decoded at step 2 per rank:", dec, "of", n, "samples")
        assert sum(dec.values()) == n and max(dec.values()) <= 0.75 * n           # each rank decoded its share only
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a: torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)   # 2 nodes + resume == 1 node uninterrupted
    assert json.loads((tmp_path / "two" / "config.json").read_text())["num_workers"] == 1
    with pytest.warns(UserWarning, match="written by 2 ranks, resuming with 1"):   # another world size: from the step, next epoch
        S = train(TrainConfig(out=str(tmp_path / "two"), resume=True, **{**base, "steps": 5}))
    assert S.step == 5 and S.pos == (1, 1)

def test_queue_logits_fp32_under_bf16_autocast():
    from sat2cap.loss import MemoryBankLoss
    g = torch.Generator().manual_seed(0)
    lf = MemoryBankLoss(64, queue_size=512); lf.fill(torch.randn(512, 64, generator=g))
    with torch.no_grad(): lf.logit_scale.fill_(np.log(100.))
    o, gr = torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)
    ref = lf.logits(o, gr)
    with torch.autocast("cpu", dtype=torch.bfloat16): got = lf.logits(o, gr)
    assert got.dtype == torch.float32 and (got - ref).abs().max().item() < 1e-4   # bf16 matmul: errors ~0.1 at scale 100

def test_openai_checkpoint_files_get_quickgelu(tmp_path, monkeypatch):
    from sat2cap import encoders as E
    jit = tmp_path / "ViT-B-32.pt"; torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(jit))  # OpenAI's format: TorchScript
    sd = tmp_path / "laion.pt"; torch.save({"w": torch.zeros(1)}, sd)
    assert E._is_openai_jit(jit) and not E._is_openai_jit(sd)
    seen = {}
    monkeypatch.setattr(E, "_create", lambda *a, **kw: seen.update({a[1]: kw["force_quick_gelu"]}))
    for f in (jit, sd): E.load_clip(f"ViT-B-32:{f}")
    assert seen == {f"ViT-B-32:{jit}": True, f"ViT-B-32:{sd}": False}

def test_gpu_check_tiny_runs_on_cpu(tmp_path):
    r = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"), "--tiny"],
                       capture_output=True, text=True, timeout=600, env={**ENV, "OUT": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["dist_init"]["ok"] and res["dist_init"]["backend"] == "gloo"
    assert res["model_only"]["cache"]["gflops_per_sample"] > 0 and res["loader_over_model_only"] > 0
    assert res["with_loader"]["decoded_per_rank"][0]["trained"] == 16               # 2 steps of 8
