"""Data pipeline: official-format shards in, sample dicts out; every bad input skipped and counted, or named in an error."""
import json, subprocess, sys, tarfile, textwrap
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from sat2cap.core import Sat2CapError
from sat2cap.data import (BadSample, CrossViewDataset, SKIP_REASONS, encode_jpeg, load_stats, make_loader,
                          overhead_eval_transform, overhead_stats, overhead_train_transform, parse_metadata,
                          resolve_shards, save_stats, write_shard, collate, read_samples, skip_reason, split_shards,
                          strict_reading, tar_samples)

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
    with tarfile.open(p) as t:
        assert not any(m.pax_headers for m in t.getmembers())    # no pax header per member: half the reading

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

@pytest.mark.parametrize("damage", ["not a tar", "empty"])
def test_unreadable_shard_is_named(tmp_path, damage):
    good = write_shard(tmp_path / "good.tar", toy(4))
    bad = tmp_path / "bad.tar"
    bad.write_bytes({"not a tar": b"definitely not a tar archive" * 40, "empty": b""}[damage])
    for strict in (False, True):
        with pytest.raises(Sat2CapError, match=f"cannot read shard {bad}: ReadError"):
            list(CrossViewDataset([good, bad], strict=strict))

# ---------------------------------------------------------------- shards cut short, members never read

def _members(p):
    import tarfile
    with tarfile.open(p) as tf: return [(m.name, m.offset, m.offset_data, m.size) for m in tf.getmembers()]

def _cuts(p):
    "Byte offsets to cut shard `p` at (5 samples x 5 members): name -> (offset, complete samples before the cut)."
    m = _members(p)                       # members of sample i are m[5 * i : 5 * i + 5]
    end = m[-1][2] + m[-1][3]
    return {"on a header": (m[15][1], 2),              # sample 3's first header: tarfile stops silently; s0002 may be whole, yet is dropped
            "inside a header": (m[16][1] + 100, 3),    # tarfile stops silently too
            "inside a member": (m[12][2] + 10, 2),     # ReadError: unexpected end of data
            "after the last member": (end, 4),         # no end-of-archive block
            "half an end block": (end + (-end % 512) + 256, 4)}

@pytest.mark.parametrize("where", ["on a header", "inside a header", "inside a member", "after the last member", "half an end block"])
def test_cut_short_shard_is_reported(tmp_path, where, caplog):
    full = write_shard(tmp_path / "full.tar", [dict(s, **{"truth.json": {"i": i}}) for i, s in enumerate(toy(5))])
    at, n = _cuts(full)[where]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(full.read_bytes()[:at])
    ds = CrossViewDataset(cut)
    with caplog.at_level("WARNING", logger="sat2cap.data"): got = keys(ds)
    assert got == [f"s{i:04d}" for i in range(n)]
    assert ds.skips.counts == {"truncated shard": 1} and ds.skips.seen == n + 1
    warn = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(warn) == 1 and warn[0].startswith(f"shard {cut} is cut short after {n} complete samples (")
    assert warn[0].endswith(f"; sample 's{n:04d}' at the cut may be incomplete and is skipped")
    with pytest.raises(Sat2CapError) as e: list(CrossViewDataset(cut, strict=True))
    assert str(e.value).startswith(f"shard {cut} is cut short after {n} complete samples (") and f"'s{n:04d}'" in str(e.value)
    assert "\n" not in str(e.value)

def test_plain_webdataset_reads_a_cut_shard_as_complete(tmp_path):
    "Why the check is needed: webdataset (tarfile in stream mode) ends silently when a cut falls on a header."
    import webdataset as wds
    full = write_shard(tmp_path / "full.tar", toy(5))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(full.read_bytes()[:_members(full)[12][1]])     # sample 3's first header (4 members per sample)
    assert [s["__key__"] for s in wds.WebDataset(str(cut), shardshuffle=False)] == ["s0000", "s0001", "s0002"]

def test_complete_shards_are_not_reported(tmp_path, caplog):
    "Tars that end with their end-of-archive block, padded to a record or not, read without a warning."
    import tarfile, io
    full = write_shard(tmp_path / "full.tar", toy(3))
    end = _members(full)[-1][2] + _members(full)[-1][3]
    end += -end % 512
    short = tmp_path / "short.tar"
    short.write_bytes(full.read_bytes()[:end + 1024])                  # two zero blocks, no record padding
    with caplog.at_level("WARNING", logger="sat2cap.data"):
        for p in (full, short): assert keys(CrossViewDataset(p, strict=True)) == ["s0000", "s0001", "s0002"]
    assert not caplog.records

def test_garbage_after_the_last_member_is_reported(tmp_path):
    full = write_shard(tmp_path / "full.tar", toy(3))
    end = _members(full)[-1][2] + _members(full)[-1][3]
    end += -end % 512
    bad = tmp_path / "bad.tar"
    bad.write_bytes(full.read_bytes()[:end] + b"\x01" * 512 + bytes(1024))   # an invalid header: tarfile stops there
    with pytest.raises(Sat2CapError, match="cut short after 2 complete samples \\(no end-of-archive block"):
        list(CrossViewDataset(bad, strict=True))

class _Marker:
    "A pickle that, when loaded, creates a file (what a malicious `.pyd`/`.pickle`/`.pth` member could do)."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (Path(self.path).touch, ())

def test_unknown_members_are_never_read(tmp_path):
    import io, pickle, tarfile, webdataset as wds
    marker = tmp_path / "MARKER"
    full = write_shard(tmp_path / "full.tar", toy(3))
    planted = tmp_path / "planted.tar"
    evil = pickle.dumps(_Marker(marker))
    with tarfile.open(full) as src, tarfile.open(planted, "w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
            if m.name == "s0001.overhead.jpg":
                for name in ("s0001.extra.pyd", "s0001.x.pickle", "s0001.x.pkl"):
                    t = tarfile.TarInfo(name); t.size = len(evil); dst.addfile(t, io.BytesIO(evil))
    raws = list(tar_samples([dict(url=str(planted))]))
    assert sorted(raws[1]) == ["__key__", "__url__", "caption.txt", "groundlevel.jpg", "metadata.json", "overhead.jpg"]
    assert keys(CrossViewDataset(planted, strict=True)) == ["s0000", "s0001", "s0002"] and not marker.exists()
    raw = next(r for r in wds.WebDataset(str(planted), shardshuffle=False) if r["__key__"] == "s0001")
    wds.autodecode.Decoder([wds.autodecode.basichandlers])(raw)          # what .decode("pil") would do
    assert marker.exists()

def test_strict_reading_sets_the_default(tmp_path):
    samples = toy(3); _truncate(samples[1])
    p = write_shard(tmp_path / "b.tar", samples)
    with strict_reading():
        with pytest.raises(BadSample, match=f"sample 's0001' in shard {p}: corrupt overhead.jpg"): list(CrossViewDataset(p))
        assert keys(CrossViewDataset(p, strict=False)) == ["s0000", "s0002"]
    assert keys(CrossViewDataset(p)) == ["s0000", "s0002"]

def test_read_samples_and_split_shards(tmp_path):
    for j in range(2): write_shard(tmp_path / f"ds/train/shard-{j:06d}.tar", toy(3, 3 * j))
    samples = toy(2); samples[1]["caption.txt"] = ""
    write_shard(tmp_path / "ds/val/shard-000000.tar", samples)
    assert split_shards(tmp_path / "ds", "train") == [str(tmp_path / f"ds/train/shard-{j:06d}.tar") for j in range(2)]
    with pytest.raises(Sat2CapError, match=f"no shards \\(\\*.tar\\) in {tmp_path / 'ds' / 'test'}"): split_shards(tmp_path / "ds", "test")
    assert keys(read_samples(tmp_path / "ds", "train", limit=4)) == ["s0000", "s0001", "s0002", "s0003"]
    assert keys(read_samples(tmp_path / "ds", "train", keys={"s0004", "s0001"})) == ["s0001", "s0004"]
    pairs = list(read_samples(tmp_path / "ds", "val", with_overhead=False, with_caption=True))
    assert keys(pairs) == ["s0000"] and "overhead" not in pairs[0] and pairs[0]["caption"] == "caption 0"
    with pytest.raises(BadSample, match="sample 's0001' in shard .*: missing caption.txt"):
        list(read_samples(tmp_path / "ds", "val", with_caption=True, strict=True))

def test_skip_reason_is_the_readers_decision(tmp_path):
    samples = toy(4); _garbage_ground(samples[1]); _set_meta(date_taken="x")(samples[3])
    p = write_shard(tmp_path / "r.tar", samples)
    raws = list(tar_samples([dict(url=str(p))]))
    for opts in ({}, {"decode_ground": False}, {"with_date": False}):
        kept = keys(CrossViewDataset(p, **opts))
        assert [r["__key__"] for r in raws if skip_reason(r, **opts) is None] == kept
    assert [skip_reason(r) for r in raws] == [None, "corrupt groundlevel.jpg", None, "bad date_taken"]

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

def test_strict_errors_stay_one_line_from_loader_workers(tmp_path):
    "torch re-raises a worker's exception from its formatted traceback; the reader's errors come back as themselves, one line."
    samples = toy(5); _truncate(samples[2])
    p = write_shard(tmp_path / "b.tar", samples)
    with pytest.raises(BadSample) as e: list(make_loader(p, 2, num_workers=1, strict=True))
    assert e.value.reason == "corrupt overhead.jpg" and str(e.value).startswith(f"sample 's0002' in shard {p}: corrupt overhead.jpg: ")
    assert "\n" not in str(e.value)
    full = write_shard(tmp_path / "full.tar", toy(5))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(full.read_bytes()[:_members(full)[12][1]])
    with pytest.raises(Sat2CapError) as e: list(make_loader(cut, 2, num_workers=1, strict=True))
    assert str(e.value) == (f"shard {cut} is cut short after 2 complete samples (no end-of-archive block after the last member); "
                            "sample 's0002' at the cut may be incomplete")
