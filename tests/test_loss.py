"""Memory-bank loss against a numpy hand computation, the ring buffer, all_gather under gloo, and the ground cache."""
import os, time
from pathlib import Path
import numpy as np, pytest, torch
import torch.nn.functional as F
import torch.multiprocessing as mp
from sat2cap.loss import MemoryBankLoss, GroundCache, ground_cache, cache_fingerprint, gather_all
from sat2cap.core import Sat2CapError

def np_loss(o, g, q, s):
    "The memory-bank loss written out: -log(exp(s o.g) / (exp(s o.g) + sum_k exp(s o.q_k))), averaged."
    o = o / np.linalg.norm(o, axis=1, keepdims=True); g = g / np.linalg.norm(g, axis=1, keepdims=True)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    pos = np.exp(s * (o * g).sum(1)); neg = np.exp(s * o @ q.T).sum(1)
    return float(np.mean(-np.log(pos / (pos + neg))))

def test_matches_hand_computed():
    rng = np.random.default_rng(0)
    o, g, q = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.normal(size=(7, 4))
    lf = MemoryBankLoss(4, queue_size=7); lf.fill(torch.tensor(q, dtype=torch.float32))
    # fill takes a random permutation of rows: the loss does not depend on queue order
    got = lf(torch.tensor(o, dtype=torch.float32), torch.tensor(g, dtype=torch.float32)).item()
    assert abs(got - np_loss(o, g, q, 1 / 0.07)) < 1e-5
    # tiny example fully by hand: o=(1,0), g=(1,0), queue {(0,1)}, s=1/0.07: loss = log(1 + exp(-s))
    lf = MemoryBankLoss(2, queue_size=1); lf.enqueue(torch.tensor([[0., 1]]))
    assert abs(lf(torch.tensor([[1., 0]]), torch.tensor([[1., 0]])).item() - np.log1p(np.exp(-1 / 0.07))) < 1e-7

def test_tau_learnable_and_clamped():
    lf = MemoryBankLoss(2, queue_size=2); lf.enqueue(torch.eye(2))
    assert abs(lf.tau - 0.07) < 1e-6 and lf.logit_scale.requires_grad
    lf(torch.tensor([[1., 0]]), torch.tensor([[1., .5]])).backward()
    assert lf.logit_scale.grad is not None and lf.logit_scale.grad != 0
    with torch.no_grad(): lf.logit_scale.fill_(20.)
    assert abs(lf.scale.item() - 100) < 1e-3

def test_only_filled_rows_are_negatives():
    lf = MemoryBankLoss(2, queue_size=10); lf.enqueue(torch.tensor([[0., 1]]))
    assert lf.logits(torch.tensor([[1., 0]]), torch.tensor([[1., 0]])).shape == (1, 2)

def test_ring_buffer_any_batch_size():
    lf2 = MemoryBankLoss(2, queue_size=5)
    rows = [torch.tensor([[np.cos(a), np.sin(a)]], dtype=torch.float32) for a in np.linspace(0, 3, 16)]
    for chunk in (rows[:3], rows[3:7], rows[7:9], rows[9:]): lf2.enqueue(torch.cat(chunk))
    last5 = torch.cat(rows[-5:]); p = lf2.ptr.item()
    assert lf2.n_filled.item() == 5 and p == 4       # 3, 4, 2 rows: ptr 9 % 5; then 7 > K rows keep the last 5 from there
    torch.testing.assert_close(torch.roll(lf2.queue, -p, 0), last5)       # oldest first, starting at ptr
    assert set(lf2.state_dict()) == {"logit_scale", "queue", "ptr", "n_filled"}

def _gather_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    lf = MemoryBankLoss(2, queue_size=8)
    x = torch.full((rank + 1, 2), float(rank + 1))           # ranks send 1 and 2 rows: unequal sizes
    assert gather_all(x).tolist() == [[1., 1.], [2., 2.], [2., 2.]]
    lf.enqueue(x)
    torch.save({"queue": lf.queue, "ptr": lf.ptr}, f"{out}/q{rank}.pt")
    torch.distributed.destroy_process_group()

def test_enqueue_gathers_all_ranks(tmp_path):
    mp.spawn(_gather_worker, args=(2, 29500 + os.getpid() % 1000, str(tmp_path)), nprocs=2)
    q0, q1 = (torch.load(tmp_path / f"q{r}.pt", weights_only=True) for r in (0, 1))
    torch.testing.assert_close(q0["queue"], q1["queue"])
    assert q0["ptr"].item() == 3
    torch.testing.assert_close(q0["queue"][:3], F.normalize(torch.tensor([[1., 1], [2, 2], [2, 2]]), dim=-1))

@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    from sat2cap.synthworld import write_synthworld
    d = tmp_path_factory.mktemp("sw"); write_synthworld(d / "sw", n_samples=120, seed=1, image_size=64, region_step=5.0)
    return d

def test_cache_roundtrip_and_invalidation(sw):
    from sat2cap.encoders import load_clip
    shards = sorted(str(p) for p in (sw / "sw/val").glob("*.tar"))
    clip = load_clip("tiny")
    c1 = ground_cache(shards, clip, sw / "cache", name="val")
    assert len(c1) > 0 and len(set(c1.keys)) == len(c1)
    c2 = GroundCache.load(next((sw / "cache").glob("val-*")))
    torch.testing.assert_close(c1.emb, c2.emb); assert c1.keys == c2.keys and c1.fingerprint == c2.fingerprint
    with pytest.raises(Sat2CapError, match="nope"): c2.lookup(["nope"])
    # another ground model -> another fingerprint; touching a shard -> another fingerprint, stale file removed
    assert cache_fingerprint(shards, load_clip("tiny", seed=1)) != c1.fingerprint
    st = os.stat(shards[0]); os.utime(shards[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    c3 = ground_cache(shards, clip, sw / "cache", name="val")
    assert c3.fingerprint != c1.fingerprint and len(list((sw / "cache").glob("val-*"))) == 1
    torch.testing.assert_close(c3.emb, c1.emb)

def test_cached_loss_equals_recomputed(sw):
    from sat2cap.encoders import load_clip, GroundEncoder
    from sat2cap.data import make_loader
    shards = sorted(str(p) for p in (sw / "sw/train").glob("*.tar"))
    clip = load_clip("tiny")
    cache = ground_cache(shards, clip, sw / "cache", name="train")
    dl = make_loader(shards, batch_size=16, ground_tf=clip.preprocess, shuffle=True, seed=5)
    b = next(iter(dl))                                       # shuffled: keys, not positions, link the two
    with torch.no_grad(): fresh = GroundEncoder(clip)(b["ground"])
    o = torch.randn(len(b["key"]), clip.embed_dim)
    lf = MemoryBankLoss(clip.embed_dim, queue_size=32); lf.fill(cache.emb)
    assert abs(lf(o, cache.lookup(b["key"])).item() - lf(o, fresh).item()) < 2e-3     # fp16 storage
    torch.testing.assert_close(cache.lookup(b["key"]), fresh, atol=2e-3 * fresh.abs().max().item(), rtol=0)

def test_cache_skips_neither_decoding_nor_checking_the_overhead(sw, tmp_path):
    "The ground cache reads only what it embeds: a sample with a broken overhead tile is cached, training skips it."
    import webdataset as wds, tarfile
    from sat2cap.encoders import load_clip
    from sat2cap.loss import compute_ground_embeddings
    from sat2cap.data import make_loader
    src = sorted((sw / "sw/val").glob("*.tar"))[0]
    with tarfile.open(src) as tf: members = {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}
    samples = {}
    for name, b in members.items(): samples.setdefault(name.split(".", 1)[0], {})[name.split(".", 1)[1]] = b
    keys = sorted(samples)[:3]
    p = tmp_path / "bad-overhead.tar"
    with wds.TarWriter(str(p)) as w:
        for i, k in enumerate(keys):
            s = dict(samples[k], __key__=k)
            if i == 1: s["overhead.jpg"] = b"\xff\xd8 this is no jpeg"
            w.write(s)
    clip = load_clip("tiny")
    emb, got, shard = compute_ground_embeddings([str(p)], clip)
    assert got == keys and emb.shape == (3, clip.embed_dim) and shard.tolist() == [0, 0, 0]
    dl = make_loader([str(p)], batch_size=8, ground_tf=clip.preprocess, keep=set(got))
    assert [k for b in dl for k in b["key"]] == [keys[0], keys[2]]
    assert dl.last_report == "skipped 1 of 3: 1 corrupt overhead.jpg"
