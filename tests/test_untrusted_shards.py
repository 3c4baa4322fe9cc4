"""Shards from strangers never run code: every command that reads shards ignores members it does not know.

A copy of the session's tiny SynthWorld gets three malicious members planted in every shard of train/, val/,
test/ and region/: `KEY.extra.pyd` and `KEY.x.pickle` (pickles whose loading runs `touch MARKER`) and
`KEY.w.pth` (the same object written by `torch.save`). Every subcommand that reads shards then runs on it
through the `sat2cap` dispatcher in this process, and so do the library functions `demo` reads shards with
(the full demo generates its own world and trains for minutes). The marker must never appear. The first test
shows the danger is real: webdataset's default decoders run the planted code.
"""
import io, json, os, pickle, shlex, shutil, tarfile
from pathlib import Path

import pytest
import torch

from sat2cap.cli import main


class Planted:
    "An object whose unpickling runs a shell command that creates `path`."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (os.system, (f"touch {shlex.quote(self.path)}",))


def evil_members(key:str, marker) -> dict:
    "The three malicious members for sample `key`."
    pth = io.BytesIO()
    torch.save(Planted(marker), pth)
    return {f"{key}.extra.pyd": pickle.dumps(Planted(marker)), f"{key}.x.pickle": pickle.dumps(Planted(marker)),
            f"{key}.w.pth": pth.getvalue()}


def plant(shard:Path, marker) -> str:
    "Rewrite `shard` with the malicious members right after its first sample's own members; return that key."
    with tarfile.open(shard) as src: members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    key = members[0][0].name.split(".")[0]
    last = max(i for i, (m, _) in enumerate(members) if m.name.split(".")[0] == key)
    extra = [(tarfile.TarInfo(n), d) for n, d in evil_members(key, marker).items()]
    for m, d in extra: m.size = len(d)
    tmp = shard.with_name(shard.name + ".tmp")
    with tarfile.open(tmp, "w") as dst:
        for m, d in members[:last + 1] + extra + members[last + 1:]: dst.addfile(m, io.BytesIO(d))
    tmp.replace(shard)
    return key


@pytest.fixture(scope="module")
def planted(tiny_world, tmp_path_factory):
    "A copy of `tiny_world` with malicious members in every shard; returns (data folder, marker path)."
    root = tmp_path_factory.mktemp("untrusted")
    data, marker = root / "data", root / "MARKER"
    shutil.copytree(tiny_world, data)
    shards = sorted(data.glob("*/*.tar"))
    assert {p.parent.name for p in shards} == {"train", "val", "test", "region"}
    for p in shards: plant(p, marker)
    return data, marker


def call(capfd, *args) -> tuple:
    "Run `sat2cap ARGS` through the dispatcher in this process; return (exit status, stdout, stderr)."
    try: rc = main([str(a) for a in args]) or 0
    except SystemExit as e: rc = e.code if isinstance(e.code, int) else 1
    out, err = capfd.readouterr()
    return rc, out, err


def test_every_reading_subcommand_has_strict():
    from sat2cap.cli import _command, _parser
    for name in ("pretrain-clip", "train", "evaluate", "map", "score-map", "demo"):
        opts = {o for a in _parser(name, _command(name))._actions for o in a.option_strings}
        assert "--strict" in opts, name


def test_webdataset_default_decoders_would_run_the_planted_code(planted, tmp_path):
    "The danger is real: `.decode(...)`'s default handlers unpickle `.pyd`/`.pickle` and torch.load `.pth`."
    import webdataset as wds
    data, marker = planted
    shard = str(sorted((data / "train").glob("*.tar"))[0])
    raw = next(iter(wds.WebDataset(shard, shardshuffle=False)))
    assert {"extra.pyd", "x.pickle", "w.pth"} <= set(raw)
    for ext in ("extra.pyd", "x.pickle", "w.pth"):
        own = tmp_path / f"ran-{ext}"                              # re-plant with a marker of this test's own
        one = {"__key__": raw["__key__"], ext: evil_members("k", own)[f"k.{ext}"]}
        wds.autodecode.Decoder([wds.autodecode.basichandlers])(one)
        assert own.exists(), ext
    assert not marker.exists()


def test_every_reading_command_ignores_planted_members(planted, tmp_path, capfd, monkeypatch):
    data, marker = planted
    run = tmp_path / "run"
    rc, out, err = call(capfd, "pretrain-clip", data, "--out", tmp_path / "clip", "--steps", 2, "--batch-size", 16,
                        "--gallery", 5, "--max-train", 32, "--device", "cpu")
    assert rc == 0 and json.loads(out)["gallery"] == 5, err[-2000:]
    assert not marker.exists()
    rc, out, err = call(capfd, "train", data, "--out", run, "--steps", 2, "--batch-size", 16, "--eval-every", 0, "--ckpt-every", 2, "--strict")
    assert rc == 0 and "trained 2 steps" in out, err[-2000:]
    assert not marker.exists()
    rc, out, err = call(capfd, "evaluate", run, data, "--gallery", 5)   # the test split holds 6 photos
    assert rc == 0 and json.loads(out)["gallery"] == 5, err[-2000:]
    assert not marker.exists()
    rc, out, err = call(capfd, "score-map", run, data, "people riding horses", "--when", "2012-07-15 10:00", "--strict")
    assert rc == 0 and "auc" in json.loads(out), err[-2000:]
    assert not marker.exists()
    import sat2cap.maps
    monkeypatch.setattr(sat2cap.maps, "FINE_STEP", 0.4)            # conus at 4 degrees: the dataset's own region/ shards
    rc, out, err = call(capfd, "map", run, "conus", "people riding horses", "--when", "2012-07-15 10:00",
                        "--out", tmp_path / "map.png", "--basemap", "none", "--strict")
    assert rc == 0 and out.startswith(f"wrote {tmp_path / 'map.png'}"), err[-2000:]
    assert not marker.exists()


def test_demo_readers_ignore_planted_members(planted, tiny_run, tmp_path):
    "The shard readers `sat2cap demo` uses (its own pipeline writes a fresh world, so it is run piecewise)."
    from sat2cap import captions as C, retrieval as R, synthworld as S
    from sat2cap.runs import load_run
    data, marker = planted
    run = load_run(tiny_run)
    g, q = R.load_heldout(run, data, n=5)
    tiles = R.load_region_tiles(run, data, tmp_path / "region.parquet")
    embs, caps = C.ground_caption_pairs(data, run.clip, limit=8)
    test = list(C.read_samples(data, "test", with_ground=False))
    picked = S.pick_triplets(data, n=3)
    assert len(g.key) == 5 and len(caps) == 8 and len(test) > 0 and len(picked) == 3 and len(tiles.thumbs) > 0
    assert not marker.exists()


def rewrite(shard:Path, change):
    "Rewrite `shard` with `change(name, data)` applied to every member's bytes."
    with tarfile.open(shard) as src: members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    with tarfile.open(shard, "w") as dst:
        for m, d in members:
            d = change(m.name, d)
            m.size = len(d)
            dst.addfile(m, io.BytesIO(d))
    return [m.name for m, _ in members]


@pytest.fixture(scope="module")
def damaged(tiny_world, tmp_path_factory):
    "A copy of `tiny_world` whose train shard has one corrupt groundlevel.jpg and whose test shard is cut short on a header."
    data = tmp_path_factory.mktemp("damaged") / "data"
    shutil.copytree(tiny_world, data)
    train, test = sorted((data / "train").glob("*.tar"))[0], sorted((data / "test").glob("*.tar"))[0]
    names = [n for n in rewrite(train, lambda n, d: d) if n.endswith(".groundlevel.jpg")]
    bad = names[2].split(".")[0]
    rewrite(train, lambda n, d: d[:len(d) // 3] if n == f"{bad}.groundlevel.jpg" else d)
    with tarfile.open(test) as tf: heads = [m for m in tf.getmembers() if m.name.endswith(".metadata.json")]
    cut = heads[-2]                                               # cut on the header of the second-last sample's metadata
    test.write_bytes(test.read_bytes()[:cut.offset])
    return data, train, bad, test


def test_corrupt_ground_jpeg_and_cut_tar(damaged, tiny_run, tmp_path, capfd, caplog):
    data, train, bad, test = damaged
    args = ["pretrain-clip", data, "--out", tmp_path / "clip", "--steps", 1, "--batch-size", 8, "--gallery", 5, "--device", "cpu"]
    with caplog.at_level("WARNING", logger="sat2cap.data"): rc, out, err = call(capfd, *args)
    assert rc == 0, err[-2000:]
    n_train = sum(len(tarfile.open(p).getnames()) for p in (data / "train").glob("*.tar")) // 5   # 5 members a sample
    assert json.loads(out)["train_pairs"] == n_train - 1
    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert reports[0] == f"skipped 1 of {n_train}: 1 corrupt groundlevel.jpg", reports
    rc, out, err = call(capfd, *args, "--strict")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err[-2000:]
    assert lines[0].startswith(f"sat2cap pretrain-clip: error: sample {bad!r} in shard {train}: corrupt groundlevel.jpg: ")
    strict_ground = lines[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="sat2cap.data"): rc, out, err = call(capfd, "evaluate", tiny_run, data)
    assert rc == 0, err[-2000:]
    cut = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(cut) == 2 and cut[0].startswith(f"shard {test} is cut short after "), cut   # embedded twice: Sat2Cap, CLIP
    rc, out, err = call(capfd, "evaluate", tiny_run, data, "--strict")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"sat2cap evaluate: error: shard {test} is cut short after "), err[-2000:]
    assert "may be incomplete" in lines[0] and "Traceback" not in err
    print(reports[0], strict_ground, cut[0], lines[0], sep="\n")
