"""A run folder is one process's, resumes stay in the folder they are given and on their own data, damaged
checkpoints fall back to intact ones, interrupted writes never leave a file that reads as valid, files keep
the user's umask."""
import json, os, shutil, signal, subprocess, sys, tarfile, time, warnings
from pathlib import Path

import pytest

from sat2cap.cli import main
from sat2cap.core import Sat2CapError, Sat2CapWarning, run_lock, write_json, atomic_path
from sat2cap.runs import load_run, complete_checkpoints
from sat2cap.train import make_config, train, data_fingerprint

SAT2CAP = str(Path(sys.executable).parent / "sat2cap")


def cli(capfd, *args):
    "Run `sat2cap ARGS` through the dispatcher in this process; return (exit status, stderr lines)."
    try: rc = main([str(a) for a in args]) or 0
    except SystemExit as e: rc = e.code
    err = capfd.readouterr().err
    return rc, [l for l in err.splitlines() if l.strip()]

def snapshot(folder) -> dict:
    "Map every file under `folder` to (size, mtime)."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob("*") if p.is_file()}

def truncate(path, keep:float=0.5):
    b = Path(path).read_bytes()
    Path(path).write_bytes(b[:int(len(b) * keep)])

def fake_newer_checkpoint(run, step=4) -> Path:
    "Copy the run's latest checkpoint to `step` (a newer, complete one) and return it."
    src = complete_checkpoints(run)[-1]
    dst = src.with_name(f"step-{step:06d}")
    shutil.copytree(src, dst)
    meta = json.loads((dst / "meta.json").read_text())
    write_json({**meta, "step": step}, dst / "meta.json")
    return dst


# ---------- one process per run folder ----------

def test_second_train_on_a_locked_run_exits_2_naming_the_holder(tiny_world, tiny_run_copy, capfd):
    before = snapshot(tiny_run_copy)
    with run_lock(tiny_run_copy):                      # a flock held through another open file description
        rc, err = cli(capfd, "train", tiny_world, "--out", tiny_run_copy, "--resume", "--steps", "3")
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("sat2cap train: error: run folder") and f"in use by another process (pid {os.getpid()} on " in err[0]
    assert {k: v for k, v in snapshot(tiny_run_copy).items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}

def test_train_into_an_existing_run_needs_resume_or_overwrite(tiny_world, tiny_run_copy, capfd):
    rc, err = cli(capfd, "train", tiny_world, "--out", tiny_run_copy, "--steps", "3", "--batch-size", "8")
    assert rc == 2 and len(err) == 1 and "already holds a run with checkpoints up to step-000002" in err[0], err
    assert "--resume" in err[0] and "--overwrite" in err[0]

def test_overwrite_starts_afresh(tiny_world, tiny_run_copy, capfd):
    (tiny_run_copy / "notes.txt").write_text("mine")
    rc, err = cli(capfd, "train", tiny_world, "--out", tiny_run_copy, "--overwrite", "--steps", "1", "--batch-size", "8",
                  "--eval-every", "0")
    assert rc == 0, err
    assert [p.name for p in complete_checkpoints(tiny_run_copy)] == ["step-000001"]      # the old step-000002 is gone
    assert {json.loads(l)["step"] for l in (tiny_run_copy / "metrics.jsonl").read_text().splitlines()} == {1}   # (one line per rank too)
    assert (tiny_run_copy / "notes.txt").read_text() == "mine"                           # not ours: kept


# ---------- resume: the folder given, the data it was trained on ----------

def test_copied_run_resumes_into_the_copy(tiny_world, tiny_run, tiny_run_copy):
    before = snapshot(tiny_run)
    assert json.loads((tiny_run_copy / "config.json").read_text())["out"] == str(tiny_run)   # the copy still names the original
    cfg = make_config(tiny_world, tiny_run_copy, resume=True, steps=3)
    assert cfg.out == str(tiny_run_copy)
    train(cfg)
    assert [p.name for p in complete_checkpoints(tiny_run_copy)][-1] == "step-000003"
    assert snapshot(tiny_run) == before                                                  # the original is untouched

def test_resume_refuses_other_data_and_accepts_the_same_data_moved(tiny_world, tiny_run_copy, tmp_path, capfd):
    moved = shutil.copytree(tiny_world, tmp_path / "moved")
    assert make_config(moved, tiny_run_copy, resume=True, steps=3).data == str(moved)
    other = shutil.copytree(tiny_world, tmp_path / "other")
    shutil.copy(next((other / "train").glob("*.tar")), other / "train" / "shard-000099.tar")
    assert data_fingerprint(other) != data_fingerprint(tiny_world)
    rc, err = cli(capfd, "train", other, "--out", tiny_run_copy, "--resume", "--steps", "3")
    assert rc == 2 and len(err) == 1, err
    assert f"{other} is not the data the run in {tiny_run_copy} was trained on" in err[0]


def test_a_run_trained_with_relative_paths_finds_its_data_and_clip_from_any_folder(tiny_world, tiny_run, tmp_path,
                                                                                   monkeypatch):
    from sat2cap.maps import world_of
    monkeypatch.chdir(tiny_world.parent)
    clip = os.path.relpath(tiny_run / "clip")                                      # a CLIP folder, given relative
    cfg = make_config(tiny_world.name, str(tmp_path / "run"), clip=clip, steps=1, batch_size=8, eval_every=0)
    assert (cfg.data, cfg.clip) == (str(tiny_world), str(tiny_run / "clip"))      # both saved absolute
    train(cfg)
    monkeypatch.chdir(tmp_path)                                                    # another folder: DATA is not here
    (tmp_path / "tiny").mkdir()
    assert make_config(tiny_world, tmp_path / "r2", steps=1, batch_size=8).clip == "tiny"   # the name wins, as in load_clip
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == str(tiny_world)
    assert world_of(load_run(tmp_path / "run")).seed == 3                         # the world the run was trained on

# ---------- damaged checkpoints ----------

@pytest.mark.parametrize("damage", ["model.safetensors", "meta.json"])
def test_load_run_falls_back_to_the_newest_intact_checkpoint(tiny_run_copy, damage):
    new = fake_newer_checkpoint(tiny_run_copy)
    truncate(new / damage)
    with pytest.warns(Sat2CapWarning, match=f"checkpoint {new} is damaged"):
        run = load_run(tiny_run_copy)
    assert run.step == 2 and run.path == tiny_run_copy

def test_resume_and_evaluate_fall_back_past_a_truncated_checkpoint(tiny_world, tiny_run_copy, capfd):
    new = fake_newer_checkpoint(tiny_run_copy)
    truncate(new / "state.pt")
    with pytest.warns(Sat2CapWarning, match="step-000004 is damaged"):
        done = []
        S = train(make_config(tiny_world, tiny_run_copy, resume=True, steps=3), callback=lambda step, _: done.append(step))
    assert done == [3] and S.step == 3                                          # resumed from step 2 (not 4): one step ran
    truncate(new / "model.safetensors")
    rc, err = cli(capfd, "evaluate", tiny_run_copy, tiny_world, "--gallery", "6")      # all of the test split
    assert rc == 0 and len(err) == 1, err
    assert err[0].startswith("sat2cap evaluate: warning: checkpoint ") and "step-000004 is damaged" in err[0]

def test_evaluate_says_when_the_test_split_is_smaller_than_the_gallery(tiny_world, tiny_run_copy, capfd):
    assert main(["evaluate", str(tiny_run_copy), str(tiny_world), "--gallery", "1000"]) == 0
    got = capfd.readouterr()
    assert json.loads(got.out)["gallery"] == 6
    err = got.err.strip().splitlines()
    assert err == [f"sat2cap evaluate: warning: the gallery holds 6 photos, not 1000: all that {tiny_world}/test has"], err
    rc, err = cli(capfd, "evaluate", tiny_run_copy, tiny_world, "--gallery", "5")
    assert rc == 0 and err == [], err                                            # asked for fewer than there are: no note

def test_unknown_keys_in_a_saved_config_are_ignored_with_a_warning(tiny_run_copy):
    ck = complete_checkpoints(tiny_run_copy)[-1]
    meta = json.loads((ck / "meta.json").read_text())
    meta["config"]["option_from_the_future"] = 1
    write_json(meta, ck / "meta.json")
    with pytest.warns(Sat2CapWarning, match="ignoring unknown config keys option_from_the_future"):
        assert load_run(tiny_run_copy).step == 2


# ---------- presets ----------

def test_presets_follow_the_clip_and_are_recorded(tiny_world, tiny_run, tmp_path):
    real = make_config(tiny_world, tmp_path / "a", clip="ViT-B-32", batch_size=8)
    assert (real.preset, real.lr, real.betas, real.queue_size) == ("paper", 1e-5, (0.9, 0.98), 9600)
    tiny = make_config(tiny_world, tmp_path / "b", clip=str(tiny_run / "clip"), batch_size=8)   # a folder holding the tiny CLIP
    assert (tiny.preset, tiny.lr) == ("synthworld", 3e-4)
    assert make_config(tiny_world, tmp_path / "c", preset="paper", batch_size=8).lr == 1e-5
    assert json.loads((tiny_run / "config.json").read_text())["preset"] == "synthworld"


# ---------- atomic writes ----------

def _complete_tar(p:Path) -> bool:
    "True when every member of the tar reads in full."
    try:
        with tarfile.open(p) as tf:
            for m in tf: tf.extractfile(m).read()
        return True
    except (tarfile.TarError, OSError, EOFError): return False

def test_sigkill_during_synthworld_leaves_no_shard_that_reads_as_valid(tmp_path):
    out = tmp_path / "sw"
    p = subprocess.Popen([SAT2CAP, "synthworld", str(out), "--n-samples", "2500", "--workers", "1", "--region-step", "4"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "SAT2CAP_NO_PROGRESS": "1"})
    deadline, partial = time.time() + 90, []
    while time.time() < deadline and p.poll() is None:
        partial = [f for f in (out / "train").glob(".shard-*.tmp") if f.stat().st_size > 50_000] if (out / "train").is_dir() else []
        if partial: break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert partial, "the writer was not caught in the middle of a shard"
    tars = list(out.rglob("*.tar"))
    assert all(_complete_tar(t) for t in tars), [t for t in tars if not _complete_tar(t)]
    assert not (out / "manifest.json").exists() and (out / ".synthworld-partial").exists()
    from sat2cap.synthworld import _check_out
    _check_out(out, 10, 64, 64)                        # an interrupted SynthWorld is recognised and cleared for a rerun
    assert not list(out.rglob("*.tar")) and not list(out.rglob("*.tmp"))

@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_keep_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json({"a": 1}, tmp_path / "m.json")
        with atomic_path(tmp_path / "x.png") as t: t.write_bytes(b"\x89PNG")
    finally: os.umask(old)
    for f in ("m.json", "x.png"): assert (tmp_path / f).stat().st_mode & 0o777 == 0o666 & ~umask
