"""Data pipeline: official-format shards in, sample dicts out; every bad input skipped and counted, or named in an error."""
import json, subprocess, sys, textwrap
import numpy as np, pytest, torch
from PIL import Image
from sat2cap.core import Sat2CapError
from sat2cap.data import (BadSample, CrossViewDataset, SKIP_REASONS, encode_jpeg, load_stats, make_loader,
                          overhead_eval_transform, overhead_stats, overhead_train_transform, parse_metadata,
                          resolve_shards, save_stats, write_shard, collate)

def color(i): return np.array([(37 * i) % 256, (91 * i + 50) % 256, (13 * i + 200) % 256], np.uint8)

def toy(n, start=0, size=16):
    "n valid samples with flat colours, official metadata and a caption."
    return [{"__key__": f"s{i:04d}",
             "overhead.jpg": np.broadcast_to(color(i), (size, size, 3)).copy(),
             "groundlevel.jpg": np.broadcast_to(255 - color(i), (size, size, 3)).copy(),
             "metadata.json": {"latitude": 10.5 + i, "longitude": -100.25 + i,
                               "date_taken": f"2012-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:30:00.0"},
             "caption.txt": f"caption {i}"} for i in range(start, start + n)]

def noisy_jpeg(size=64, seed=0):
    return encode_jpeg(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))

def keys(ds): return [s["key"] for s in ds]

# ---------------------------------------------------------------- round trips

def test_round_trip(tmp_path):
    p = write_shard(tmp_path / "a.tar", toy(6))
    out = list(CrossViewDataset(p))
    assert keys(out) == [f"s{i:04d}" for i in range(6)]
    s = out[3]
    assert (s["lat"], s["lon"], s["datetime"], s["caption"]) == (13.5, -97.25, "2012-04-04 03:30:00", "caption 3")
    assert (s["year"], s["month"], s["doy"], s["hour"]) == (2012, 4, 31 + 29 + 31 + 4, 3.5)
    assert s["url"] == str(p) and s["meta"]["date_taken"] == "2012-04-04 03:30:00.0"
    assert np.abs(np.asarray(s["overhead"], int) - color(3)).max() <= 3          # JPEG of a flat colour
    assert np.abs(np.asarray(s["ground"], int) - (255 - color(3))).max() <= 3

def test_tarwriter_in_another_process(tmp_path):
    "A shard written by plain webdataset.TarWriter (its own encoders, PIL images) in a separate process."
    script = textwrap.dedent(f"""
        import webdataset as wds
        from PIL import Image
        with wds.TarWriter({str(tmp_path / 'ext.tar')!r}) as w:
            for i in range(4):
                w.write({{"__key__": f"ext{{i}}", "overhead.jpg": Image.new("RGB", (800, 800), (i * 40, 80, 120)),
                         "groundlevel.jpg": Image.new("RGB", (300, 200), (10, 20, 30)),
                         "metadata.json": {{"latitude": -33.9, "longitude": 151.2, "date_taken": "2015-12-31 18:45:00"}},
                         "caption.txt": "written elsewhere"}})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    tf = overhead_eval_transform(224, [0.5] * 3, [0.5] * 3)
    out = list(CrossViewDataset(tmp_path / "ext.tar", overhead_tf=tf))
    assert keys(out) == ["ext0", "ext1", "ext2", "ext3"]
    assert out[1]["overhead"].shape == (3, 224, 224)                   # 800 px real-size tile
    assert out[1]["ground"].size == (300, 200)
    assert (out[0]["doy"], out[0]["hour"], out[0]["caption"]) == (365, 18.75, "written elsewhere")

def test_shard_specs(tmp_path):
    for j in range(3): write_shard(tmp_path / f"d/shard-{j:06d}.tar", toy(2, 2 * j))
    paths = [str(tmp_path / f"d/shard-{j:06d}.tar") for j in range(3)]
    assert resolve_shards(tmp_path / "d") == paths
    assert resolve_shards(str(tmp_path / "d/*.tar")) == paths
    assert resolve_shards(str(tmp_path / "d/shard-{000001..000002}.tar")) == paths[1:]
    assert resolve_shards(paths[::-1]) == paths[::-1]
    assert keys(CrossViewDataset(str(tmp_path / "d/shard-{000000..000001}.tar"))) == ["s0000", "s0001", "s0002", "s0003"]

# ---------------------------------------------------------------- metadata

def test_parse_metadata_formats():
    m = parse_metadata({"latitude": "45.5", "longitude": 0, "date_taken": "2016-02-29 06:07:30.123456"})
    assert (m["lat"], m["datetime"], m["doy"], m["month"]) == (45.5, "2016-02-29 06:07:30", 60, 2)
    assert m["hour"] == pytest.approx(6 + 7 / 60 + 30.123456 / 3600)
    for bad in ["2012-07-04T23:15:00", "2012-07-04 23:15", "2012-07-04 23:15:00.", "2012-07-04 23:15:00.1234567",
                " 2012-07-04 23:15:00", "2012-02-30 10:00:00", "2012-07-04 24:00:00"]:
        with pytest.raises(BadSample, match="bad date_taken") as e:
            parse_metadata({"latitude": 1, "longitude": 1, "date_taken": bad}, "where")
        assert e.value.reason == "bad date_taken" and str(e.value).startswith("where: ")

# ---------------------------------------------------------------- bad input

def _set_meta(**kw):
    def f(s):
        m = dict(s["metadata.json"])
        for k, v in kw.items():
            if v is ...: m.pop(k)
            else: m[k] = v
        s["metadata.json"] = m
    return f

def _truncate(s): s["overhead.jpg"] = noisy_jpeg()[:1500]    # cut inside the entropy-coded data
def _garbage_ground(s): s["groundlevel.jpg"] = b"\xff\xd8 this is no jpeg"
def _drop(name):
    def f(s): s[name] = None
    return f
def _raw_meta(b):
    def f(s): s["metadata.json"] = b
    return f

BAD = {
    "truncated overhead":  (_truncate, "corrupt overhead.jpg"),
    "garbage ground":      (_garbage_ground, "corrupt groundlevel.jpg"),
    "no overhead":         (_drop("overhead.jpg"), "missing overhead.jpg"),
    "no ground":           (_drop("groundlevel.jpg"), "missing groundlevel.jpg"),
    "no metadata":         (_drop("metadata.json"), "missing metadata.json"),
    "metadata not json":   (_raw_meta(b"{'latitude': 1"), "bad metadata.json"),
    "metadata a list":     (_raw_meta(b"[1, 2]"), "bad metadata.json"),
    "no date":             (_set_meta(date_taken=...), "missing date_taken"),
    "null date":           (_set_meta(date_taken=None), "missing date_taken"),
    "empty date":          (_set_meta(date_taken=""), "bad date_taken"),
    "iso date":            (_set_meta(date_taken="2012-07-04T23:15:00"), "bad date_taken"),
    "impossible date":     (_set_meta(date_taken="2012-13-45 10:00:00.0"), "bad date_taken"),
    "nan latitude":        (_set_meta(latitude=float("nan")), "bad latitude"),
    "latitude 90.5":       (_set_meta(latitude=90.5), "bad latitude"),
    "no latitude":         (_set_meta(latitude=...), "missing latitude"),
    "longitude -180.01":   (_set_meta(longitude=-180.01), "bad longitude"),
    "inf longitude":       (_set_meta(longitude=float("inf")), "bad longitude"),
    "text longitude":      (_set_meta(longitude="east"), "bad longitude"),
    "no longitude":        (_set_meta(longitude=...), "missing longitude"),
    "bad caption":         (lambda s: s.update({"caption.txt": b"\xff\xfe\xfa"}), "bad caption.txt"),
}

@pytest.mark.parametrize("case", list(BAD))
def test_bad_sample_skipped_and_counted(tmp_path, case):
    mutate, reason = BAD[case]
    samples = toy(5); mutate(samples[2])
    ds = CrossViewDataset(write_shard(tmp_path / "b.tar", samples))
    assert keys(ds) == ["s0000", "s0001", "s0003", "s0004"]
    assert ds.last_report == f"skipped 1 of 5: 1 {reason}"
    assert ds.skips.counts == {reason: 1} and ds.skips.seen == 5

@pytest.mark.parametrize("case", ["truncated overhead", "impossible date", "nan latitude", "no ground"])
def test_strict_mode_names_key_shard_and_reason(tmp_path, case):
    mutate, reason = BAD[case]
    samples = toy(5); mutate(samples[2])
    p = write_shard(tmp_path / "b.tar", samples)
    with pytest.raises(BadSample) as e: list(CrossViewDataset(p, strict=True))
    assert isinstance(e.value, Sat2CapError)
    assert str(e.value).startswith(f"sample 's0002' in shard {p}: {reason}: ")

def test_report_of_a_mixed_pass(tmp_path, caplog):
    samples = toy(10)
    for i in (1, 4, 7): _truncate(samples[i])
    for i in (0, 2, 5, 9): _set_meta(date_taken="04/07/2012")(samples[i])
    ds = CrossViewDataset(write_shard(tmp_path / "m.tar", samples))
    with caplog.at_level("WARNING", logger="sat2cap.data"):
        assert keys(ds) == ["s0003", "s0006", "s0008"]
        assert keys(ds) == ["s0003", "s0006", "s0008"]                    # second pass: counts start again
    assert ds.last_report == "skipped 7 of 10: 4 bad date_taken, 3 corrupt overhead.jpg"
    assert [r.getMessage() for r in caplog.records] == [ds.last_report] * 2   # once per pass

def test_decode_ground_false_only_requires_presence(tmp_path):
    samples = toy(3); _garbage_ground(samples[1])
    ds = CrossViewDataset(write_shard(tmp_path / "g.tar", samples), decode_ground=False)
    out = list(ds)
    assert keys(out) == ["s0000", "s0001", "s0002"] and "ground" not in out[0]

# ---------------------------------------------------------------- shard errors

def test_missing_shard_is_named(tmp_path):
    write_shard(tmp_path / "a.tar", toy(1))
    with pytest.raises(Sat2CapError, match=f"shard {tmp_path / 'nope.tar'} does not exist"):
        make_loader([tmp_path / "a.tar", tmp_path / "nope.tar"], batch_size=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Sat2CapError, match="no .tar shards in folder"): CrossViewDataset(tmp_path / "empty")
    with pytest.raises(Sat2CapError, match="no shards match"): CrossViewDataset(str(tmp_path / "x*.tar"))

@pytest.mark.parametrize("damage", ["not a tar", "empty", "truncated"])
def test_unreadable_shard_is_named(tmp_path, damage):
    good = write_shard(tmp_path / "good.tar", [dict(s, **{"overhead.jpg": noisy_jpeg(128, i)}) for i, s in enumerate(toy(4))])
    bad = tmp_path / "bad.tar"
    data = good.read_bytes()
    bad.write_bytes({"not a tar": b"definitely not a tar archive" * 40, "empty": b"", "truncated": data[:len(data) // 2]}[damage])
    for strict in (False, True):
        with pytest.raises(Sat2CapError, match=f"cannot read shard {bad}: ReadError"):
            list(CrossViewDataset([good, bad], strict=strict))

# ---------------------------------------------------------------- loader

@pytest.fixture
def shards(tmp_path):
    out = [write_shard(tmp_path / f"s-{j}.tar", toy(10, 10 * j, size=24)) for j in range(4)]
    broken = toy(6, 40); _truncate(broken[0]); _set_meta(latitude=-91)(broken[3])
    return out + [write_shard(tmp_path / "s-4.tar", broken)]

def fingerprint(loader):
    return [(tuple(b["key"]), b["overhead"].sum().item(), b["lat"].tolist()) for b in loader]

def test_loader_is_deterministic_for_a_seed(shards):
    tf = overhead_train_transform(16, [0.5] * 3, [0.25] * 3)
    mk = lambda seed, nw: make_loader(shards, 8, overhead_tf=tf, shuffle=16, num_workers=nw, seed=seed)
    torch.manual_seed(123); a0 = fingerprint(mk(0, 0)); after = torch.rand(3)
    torch.manual_seed(123); assert torch.equal(torch.rand(3), after)      # the caller's RNG is untouched
    assert fingerprint(mk(0, 0)) == a0
    assert fingerprint(mk(1, 0)) != a0
    w2 = mk(0, 2)
    assert fingerprint(w2) == fingerprint(mk(0, 2))
    assert sorted(k for b in w2 for k in b["key"]) == sorted(k for b in a0 for k in b[0])
    assert w2.last_report == "skipped 2 of 46: 1 bad latitude, 1 corrupt overhead.jpg"   # counted across workers
    # the same sample gets the same augmentation whatever the worker count
    aug = lambda dl: {k: x.sum().item() for b in dl for k, x in zip(b["key"], b["overhead"])}
    assert aug(mk(5, 0)) == pytest.approx(aug(mk(5, 2)))

def test_loader_batches_and_collate(shards):
    dl = make_loader(shards[:1], 4, overhead_tf=overhead_eval_transform(16, [0.5] * 3, [0.25] * 3))
    b = next(iter(dl))
    assert b["overhead"].shape == (4, 3, 16, 16)
    assert (b["lat"].dtype, b["year"].dtype, b["doy"].dtype, b["hour"].dtype) == (torch.float32, torch.int64, torch.int64, torch.float32)
    assert b["key"] == ["s0000", "s0001", "s0002", "s0003"] and b["caption"][0] == "caption 0"
    assert isinstance(b["ground"][0], Image.Image)                       # no ground transform: PIL images in a list
    assert collate([{"x": True, "y": 1.5}, {"x": False, "y": 2}])["x"] == [True, False]

def test_repeat_runs_new_epochs(shards):
    dl = make_loader(shards, 10, shuffle=8, seed=0, repeat=True, decode_ground=False)
    it = iter(dl)
    first = [k for _ in range(5) for k in next(it)["key"]]               # 44 good samples: 5 batches
    second = [k for _ in range(5) for k in next(it)["key"]]
    assert dl.epoch == 1 and sorted(first) == sorted(second) and first != second
    assert dl.last_report == "skipped 2 of 46: 1 bad latitude, 1 corrupt overhead.jpg"

def test_ddp_split_by_rank(shards, monkeypatch):
    per = [set(keys(CrossViewDataset(shards, rank=r, world_size=2))) for r in range(2)]
    assert not per[0] & per[1] and len(per[0] | per[1]) == 44
    monkeypatch.setenv("RANK", "1"); monkeypatch.setenv("WORLD_SIZE", "2")
    assert set(keys(CrossViewDataset(shards))) == per[1]                 # wds.split_by_node via the environment
    with pytest.raises(Sat2CapError, match="5 shards cannot be split over 8 ranks"):
        list(CrossViewDataset(shards, rank=0, world_size=8))

# ---------------------------------------------------------------- statistics

def test_overhead_stats_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (20 + 4 * i, 20 + 4 * i, 3), dtype=np.uint8) for i in range(5)]
    samples = toy(5)
    for s, im in zip(samples, imgs): s["overhead.jpg"] = _png(im)
    _set_meta(date_taken="bad")(samples[4])                               # skipped: not in the statistics
    p = write_shard(tmp_path / "st.tar", samples)
    st = overhead_stats(p)
    px = np.concatenate([im.reshape(-1, 3) for im in imgs[:4]]).astype(np.float64) / 255
    assert st["n_images"] == 4 and st["n_pixels"] == len(px)
    np.testing.assert_allclose(st["mean"], px.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(st["std"], px.std(0), rtol=0, atol=1e-12)
    assert load_stats(save_stats(st, tmp_path / "stats.json")) == st
    (tmp_path / "bad.json").write_text('{"mean": [1, 2]}')
    with pytest.raises(Sat2CapError, match="bad.json is not an image statistics file"): load_stats(tmp_path / "bad.json")

def _png(im):
    "Lossless encoding, so the statistics can be compared exactly (the entry is still named overhead.jpg)."
    import io
    b = io.BytesIO(); Image.fromarray(im).save(b, "PNG"); return b.getvalue()

def test_skips_counted_in_spawned_workers(shards):
    "Worker processes started with 'spawn' (the macOS/Windows default) add to the main process's counts too."
    from sat2cap.data import CrossViewLoader
    dl = CrossViewLoader(CrossViewDataset(shards[3:], decode_ground=False), batch_size=8, num_workers=1,
                         multiprocessing_context="spawn")
    assert sum(len(b["key"]) for b in dl) == 14
    assert dl.last_report == "skipped 2 of 16: 1 bad latitude, 1 corrupt overhead.jpg"
