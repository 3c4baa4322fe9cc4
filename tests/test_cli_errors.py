"""User mistakes at the command line: one clear line on stderr naming what is wrong, exit status 2, no traceback.

The console script itself runs in a subprocess for the cheap cases (`run`); the subcommands that import
torch run through the same dispatcher in-process (`call`, `sat2cap.cli.main` with stderr captured at the
file-descriptor level), which keeps this file fast: any exception other than the dispatcher's exit 2 fails
the test with its traceback. Cases for subcommands not yet registered in `sat2cap.cli.COMMANDS` skip with
that reason and run as soon as the subcommand is registered.
"""
import json, subprocess, sys, shutil
from pathlib import Path

import pytest

from sat2cap.cli import COMMANDS

SAT2CAP = shutil.which("sat2cap") or str(Path(sys.executable).parent / "sat2cap")
BBOX_EUROPE = "2.0,48.0,3.0,49.0"               # lon0,lat0,lon1,lat1 around Paris: outside the SynthWorld US


def run(*args, cwd=None):
    return subprocess.run([SAT2CAP, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)

def call(capfd, *args):
    "Run `sat2cap ARGS` through the dispatcher in this process; return (returncode, stdout, stderr)."
    from sat2cap.cli import main
    try: rc = main([str(a) for a in args]) or 0
    except SystemExit as e: rc = e.code if isinstance(e.code, int) else 1
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)

def need(name):
    if name not in COMMANDS: pytest.skip(f"subcommand {name} not registered yet")

def assert_user_error(r, sub, *words):
    "Exit 2, no traceback, stderr is one line `sat2cap SUB: error: ...` naming one of `words`."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, f"exit {r.returncode}\nstderr:\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr[-2000:]}"
    assert lines[0].startswith(f"sat2cap {sub}: error: "), lines[0]
    assert any(w.lower() in lines[0].lower() for w in words), f"{lines[0]!r} names none of {words}"

def assert_usage_error(r, sub, *words):
    "argparse mistakes: usage lines, then `sat2cap SUB: error: ...` as the last line, exit 2."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines and lines[-1].startswith(f"sat2cap {sub}: error: "), r.stderr[-2000:]
    assert any(w.lower() in lines[-1].lower() for w in words), lines[-1]


# ---------- fixtures: a tiny dataset and a tiny run, made as a user would ----------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "A small SynthWorld dataset (written through the Python API, so these tests don't depend on option spelling)."
    need("synthworld")
    from sat2cap.synthworld import write_synthworld
    out = tmp_path_factory.mktemp("cli") / "sw"
    write_synthworld(out, 60, 0, 32, None, 2.0, 1)
    return out

@pytest.fixture(scope="module")
def run_dir(data, tmp_path_factory):
    "A Sat2Cap run trained for a couple of steps on `data` with the tiny CLIP."
    need("train")
    from sat2cap.cli import main
    out = tmp_path_factory.mktemp("cli") / "run"
    assert (main(["train", str(data), "--out", str(out), "--clip", "tiny", "--steps", "2", "--batch-size", "8"]) or 0) == 0
    return out


# ---------- what exists now ----------

def test_unknown_subcommand():
    r = run("frobnicate")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith("sat2cap: error: unknown subcommand 'frobnicate'")

def test_synthworld_error_from_the_console_script(tmp_path):
    "End to end through the installed `sat2cap` script: a bad value is one line and exit 2."
    need("synthworld")
    assert_user_error(run("synthworld", tmp_path / "out", "--n-samples", "0"), "synthworld", "n_samples", "positive")

@pytest.mark.parametrize("args,words", [
    (["--n-samples", "-5"], ["n_samples", "positive"]),
    (["--image-size", "8"], ["image_size", "16"]),
])
def test_synthworld_bad_values(tmp_path, capfd, args, words):
    need("synthworld")
    assert_user_error(call(capfd, "synthworld", tmp_path / "out", *args), "synthworld", *words)

def test_synthworld_output_is_a_file(tmp_path, capfd):
    need("synthworld")
    f = tmp_path / "taken.txt"; f.write_text("x")
    assert_user_error(call(capfd, "synthworld", f, "--n-samples", "10"), "synthworld", str(f), "not a folder")

def test_synthworld_refuses_a_non_empty_foreign_folder(tmp_path, capfd):
    need("synthworld")
    (tmp_path / "notes.txt").write_text("mine")
    assert_user_error(call(capfd, "synthworld", tmp_path, "--n-samples", "10"), "synthworld", str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "mine"

@pytest.mark.parametrize("args,words", [
    ([], ["required", "out"]),
    (["OUT", "--n-samples", "abc"], ["invalid int", "abc"]),
    (["OUT", "--no-such-option", "1"], ["unrecognized", "--no-such-option"]),
])
def test_synthworld_usage_errors(capfd, args, words):
    need("synthworld")
    assert_usage_error(call(capfd, "synthworld", *args), "synthworld", *words)

def test_documented_dashed_options_are_accepted(tmp_path, capfd):
    "README and issues spell options with dashes (`--n-samples`); the parser must accept them."
    need("synthworld")
    r = call(capfd, "synthworld", tmp_path / "sw", "--n-samples", "12", "--seed", "1", "--image-size", "16", "--region-step", "5")
    assert r.returncode == 0, r.stderr[-1000:]
    assert (tmp_path / "sw" / "manifest.json").exists()


# ---------- subcommands registered later (skip until then) ----------

def test_train_missing_data(capfd):
    need("train")
    assert_user_error(call(capfd, "train", "/nonexistent", "--out", "/tmp/sat2cap-r"), "train", "/nonexistent")

def test_train_folder_without_shards(tmp_path, capfd):
    need("train")
    (tmp_path / "empty").mkdir()
    assert_user_error(call(capfd, "train", tmp_path / "empty", "--out", tmp_path / "r"), "train", "shard", str(tmp_path / "empty"))

def test_train_unknown_clip_model(data, tmp_path, capfd):
    need("train")
    assert_user_error(call(capfd, "train", data, "--out", tmp_path / "r", "--clip", "no-such-model"), "train", "no-such-model")

def test_pretrain_clip_missing_data(tmp_path, capfd):
    need("pretrain-clip")
    assert_user_error(call(capfd, "pretrain-clip", "/nonexistent", "--out", tmp_path / "clip"), "pretrain-clip", "/nonexistent")

def test_evaluate_missing_run(data, capfd):
    need("evaluate")
    assert_user_error(call(capfd, "evaluate", "/nonexistent-run", data), "evaluate", "/nonexistent-run")

def test_evaluate_missing_data(run_dir, capfd):
    need("evaluate")
    assert_user_error(call(capfd, "evaluate", run_dir, "/nonexistent"), "evaluate", "/nonexistent")

def test_map_empty_prompt(run_dir, tmp_path, capfd):
    need("map")
    r = call(capfd, "map", run_dir, "conus", "", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "prompt")
    assert not (tmp_path / "x.png").exists()

def test_map_bbox_outside_the_world(run_dir, tmp_path, capfd):
    need("map")
    r = call(capfd, "map", run_dir, BBOX_EUROPE, "people riding horses", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "outside", BBOX_EUROPE, "region")

def test_map_unknown_region(run_dir, tmp_path, capfd):
    need("map")
    r = call(capfd, "map", run_dir, "atlantis", "people riding horses", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "atlantis")

def test_map_bad_date(run_dir, tmp_path, capfd):
    need("map")
    r = call(capfd, "map", run_dir, "conus", "people riding horses", "--when", "2020-13-45 99:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "2020-13-45", "--when", "date")

def test_map_missing_run(tmp_path, capfd):
    need("map")
    r = call(capfd, "map", "/nonexistent-run", "conus", "people riding horses", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "/nonexistent-run")

def test_score_map_bad_date(run_dir, data, capfd):
    need("score-map")
    assert_user_error(call(capfd, "score-map", run_dir, data, "people riding horses", "--when", "not a date"),
                      "score-map", "not a date", "--when")

def test_score_map_empty_prompt(run_dir, data, capfd):
    need("score-map")
    assert_user_error(call(capfd, "score-map", run_dir, data, "  ", "--when", "2020-07-01 12:00"), "score-map", "prompt")

def test_score_map_missing_shards(run_dir, tmp_path, capfd):
    need("score-map")
    (tmp_path / "empty").mkdir()
    r = call(capfd, "score-map", run_dir, tmp_path / "empty", "people riding horses", "--when", "2020-07-01 12:00")
    assert_user_error(r, "score-map", str(tmp_path / "empty"), "shard", "manifest")


# ---------- the same subcommands succeeding, through the dispatcher and its --dashed options ----------

def test_score_map_prints_json_auc(run_dir, data, capfd):
    r = call(capfd, "score-map", run_dir, data, "people riding horses", "--when", "2012-07-15 10:00")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["prompt"] == "people riding horses" and res["when"].startswith("2012-07-15 10:00")
    assert 0.0 <= res["auc"] <= 1.0 and 0.0 <= res["no_meta_auc"] <= 1.0

def test_map_writes_png(run_dir, tmp_path, capfd):
    out = tmp_path / "m.png"
    r = call(capfd, "map", run_dir, "-105.2,39.6,-104.6,40.0", "people riding horses", "--when", "2012-07-15 10:00",
             "--out", out, "--basemap", "none")
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(out) in r.stdout
