"""User mistakes at the command line: one clear line on stderr naming what is wrong, exit status 2, no traceback,
and never a hang.

`TABLE` lists, for every subcommand of this lane (synthworld, pretrain-clip, train, evaluate, demo) and the
captioning pair (train-captioner, caption-score), invalid
option values with the words the error line must contain. They run in one driver subprocess (`DRIVER`) that
imports the package once and forks one child per case, so each case is its own process with its own exit status
and stderr, killed after `CASE_TIMEOUT` seconds (a hang fails the case), at the cost of one import in all.
A few cases also run through the installed console script. Other cases (map, score-map) run through the
dispatcher in this process (`call`).
"""
import json, os, subprocess, sys, shutil, textwrap
from pathlib import Path

import pytest
import torch

SAT2CAP = shutil.which("sat2cap") or str(Path(sys.executable).parent / "sat2cap")
BBOX_EUROPE = "2.0,48.0,3.0,49.0"               # lon0,lat0,lon1,lat1 around Paris: outside the SynthWorld US
CASE_TIMEOUT = 60                                # seconds one case may take before it counts as a hang


def run(*args, cwd=None):
    return subprocess.run([SAT2CAP, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)

def call(capfd, *args):
    "Run `sat2cap ARGS` through the dispatcher in this process; return (returncode, stdout, stderr)."
    from sat2cap.cli import main
    try: rc = main([str(a) for a in args]) or 0
    except SystemExit as e: rc = e.code if isinstance(e.code, int) else 1
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)

def assert_user_error(r, sub, *words):
    "Exit 2, no traceback, stderr is one line `sat2cap SUB: error: ...` naming one of `words`."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, f"exit {r.returncode}\nstderr:\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr[-2000:]}"
    assert lines[0].startswith(f"sat2cap {sub}: error: "), lines[0]
    assert any(w.lower() in lines[0].lower() for w in words), f"{lines[0]!r} names none of {words}"

assert_usage_error = assert_user_error          # argparse's mistakes are one line too


# ---------- the table: every invalid value of every option, one forked process each ----------

TABLE = [  # (subcommand, arguments with {world} {run} {tmp} {file} {bad_ckpt} {empty} {cap}, words the error line must name)
    ("synthworld", "{tmp}/o --n-samples 0", ["--n-samples", "n_samples", "positive"]),
    ("synthworld", "{tmp}/o --n-samples -5", ["n_samples", "positive"]),
    ("synthworld", "{tmp}/o --region-step 0", ["region_step", "positive"]),
    ("synthworld", "{tmp}/o --region-step -1", ["region_step", "positive"]),
    ("synthworld", "{tmp}/o --region-step nan", ["region_step", "positive"]),
    ("synthworld", "{tmp}/o --region-step 0.0001", ["region_step", "tiles"]),
    ("synthworld", "{tmp}/o --region-step 500", ["region_step", "no land tile"]),
    ("synthworld", "{tmp}/o --image-size 8", ["image_size", "16"]),
    ("synthworld", "{tmp}/o --ground-size -3", ["ground_size"]),
    ("synthworld", "{tmp}/o --workers -1", ["workers"]),
    ("synthworld", "{tmp}/o --seed -1", ["seed"]),
    ("synthworld", "{file} --n-samples 10", ["not a folder"]),
    ("synthworld", "/proc/sat2cap-out --n-samples 10", ["not writable"]),
    ("synthworld", "{tmp}/o --n-samples abc", ["invalid int", "abc"]),
    ("synthworld", "{tmp}/o --no-such-option 1", ["unrecognized", "--no-such-option"]),
    ("synthworld", "", ["required", "out"]),
    ("train", "{world} --out {tmp}/r --batch-size 1000", ["--batch-size 1000 is larger than the "]),   # the exact count: the console-script test below
    ("train", "{world} --out {tmp}/r --batch-size 0", ["--batch-size must be positive"]),
    ("train", "{world} --out {tmp}/r --steps 0", ["--steps must be positive"]),
    ("train", "{world} --out {tmp}/r --lr 0", ["--lr must be positive"]),
    ("train", "{world} --out {tmp}/r --lr nan", ["--lr must be positive, got nan"]),
    ("train", "{world} --out {tmp}/r --lr inf", ["--lr must be positive, got inf"]),
    ("train", "{world} --out {tmp}/r --lr -1e-4", ["--lr must be positive"]),
    ("train", "{world} --out {tmp}/r --queue-size 0", ["--queue-size"]),
    ("train", "{world} --out {tmp}/r --dynamic-hidden 0", ["--dynamic-hidden must be positive"]),
    ("train", "{world} --out {tmp}/r --dynamic-harmonics -1", ["--dynamic-harmonics must be positive"]),
    ("train", "{world} --out {tmp}/r --dynamic-harmonics 1.5", ["invalid int", "1.5"]),
    ("train", "{world} --out {run} --resume --dynamic-hidden 7", ["--dynamic-hidden 7: the run in", "keeps its model"]),
    ("train", "{world} --out {tmp}/r --image-norm -1", ["--image-norm must be 0 or more, got -1.0"]),
    ("train", "{world} --out {tmp}/r --image-norm nan", ["--image-norm must be 0 or more, got nan"]),
    ("train", "{world} --out {run} --resume --image-norm 2", ["--image-norm 2.0: the run in", "keeps its model"]),
    ("train", "{world} --out {tmp}/r --crop-scale 0", ["--crop-scale must be in (0, 1], got 0.0"]),
    ("train", "{world} --out {tmp}/r --crop-scale 1.5", ["--crop-scale must be in (0, 1], got 1.5"]),
    ("train", "{world} --out {tmp}/r --randaug-ops -1", ["--randaug-ops must be 0 or more"]),
    ("train", "{world} --out {tmp}/r --randaug-magnitude 31", ["--randaug-magnitude must be 0-30, got 31"]),
    ("train", "{world} --out {tmp}/r --randaug-magnitude -1", ["--randaug-magnitude must be 0 or more"]),
    ("train", "{world} --out {tmp}/r --num-workers -1", ["--num-workers"]),
    ("train", "{world} --out {tmp}/r --cpu-threads -2", ["--cpu-threads"]),
    ("train", "{world} --out {tmp}/r --eval-every -1", ["--eval-every"]),
    ("train", "{world} --out {tmp}/r --ckpt-every 0", ["--ckpt-every"]),
    ("train", "{world} --out {tmp}/r --seed -1", ["--seed"]),
    ("train", "{world} --out {tmp}/r --precision fp16", ["--precision 'fp16'", "auto, bf16, fp32"]),
    ("train", "{world} --out {tmp}/r --preset huge", ["--preset 'huge'"]),
    ("train", "{world} --out {tmp}/r --device tpu", ["--device 'tpu'"]),
    ("train", "{world} --out {tmp}/r --device cuda:99", ["--device 'cuda:99'"]),
    ("train", "{world} --out {tmp}/r --clip no-such-model", ["no-such-model"]),
    ("train", "{world} --out {tmp}/r --clip ViT-B-32:{bad_ckpt}", ["bad.pt", "not a PyTorch checkpoint"]),
    ("train", "{world} --out {tmp}/r --clip ViT-B-32:/no/such.pt", ["/no/such.pt"]),
    ("train", "{world} --out {file}", ["not a folder"]),
    ("train", "{world} --out /proc/sat2cap-run", ["not writable"]),
    ("train", "{world} --out {run}", ["already holds a run", "--resume"]),
    ("train", "{world} --out {run} --resume --overwrite", ["--resume and --overwrite"]),
    ("train", "/nonexistent --out {tmp}/r", ["/nonexistent"]),
    ("train", "{empty} --out {tmp}/r", ["shard", "train"]),
    ("train", "{world} --out {tmp}/r --steps 1.5", ["invalid int", "1.5"]),
    ("pretrain-clip", "{world} --out {tmp}/c --steps 0", ["--steps"]),
    ("pretrain-clip", "{world} --out {tmp}/c --batch-size 0", ["--batch-size"]),
    ("pretrain-clip", "{world} --out {tmp}/c --lr inf", ["--lr"]),
    ("pretrain-clip", "{world} --out {tmp}/c --gallery 0", ["--gallery"]),
    ("pretrain-clip", "{world} --out {tmp}/c --max-train 0", ["--max-train"]),
    ("pretrain-clip", "{world} --out {tmp}/c --seed -1", ["--seed"]),
    ("pretrain-clip", "{world} --out {tmp}/c --balance 1", ["--balance"]),
    ("pretrain-clip", "{world} --out {tmp}/c --eval-split train2", ["--eval-split 'train2'"]),
    ("pretrain-clip", "{world} --out {tmp}/c --device tpu", ["--device"]),
    ("pretrain-clip", "{world} --out {file}", ["not a folder"]),
    ("pretrain-clip", "{world} --out {tmp}/c --clip ViT-B-32:{bad_ckpt}", ["not a PyTorch checkpoint"]),
    ("pretrain-clip", "{world}", ["--out"]),
    ("pretrain-clip", "/nonexistent --out {tmp}/c", ["/nonexistent"]),
    ("evaluate", "{run} {world} --gallery 0", ["--gallery"]),
    ("evaluate", "{run} {world} --device tpu", ["--device"]),
    ("evaluate", "/nonexistent-run {world}", ["/nonexistent-run"]),
    ("evaluate", "{run} /nonexistent", ["/nonexistent"]),
    ("evaluate", "{tmp} {world}", ["no complete checkpoint"]),
    ("demo", "--out {file}", ["not a folder"]),
    ("demo", "--out {tmp}/d --clip-steps 0", ["--clip-steps must be positive"]),
    ("demo", "--out {tmp}/d --train-steps -3", ["--train-steps must be positive"]),
    ("demo", "--out {tmp}/d --caption-steps 0", ["--caption-steps must be positive"]),
    ("demo", "--out {tmp}/d --n-samples 999", ["--n-samples must be 1000 or more"]),
    ("demo", "--out {tmp}/d --seed -1", ["--seed must be 0 or more"]),
    ("demo", "--out {tmp}/d --clip-balance -0.1", ["--clip-balance must be in [0, 1)"]),
    ("demo", "--out {tmp}/d --image-norm -1", ["--image-norm must be 0 or more, got -1.0"]),
    ("demo", "--out {tmp}/d --clip-batch-size 0", ["--clip-batch-size must be positive"]),
    ("demo", "--out {tmp}/d --caption-batch-size 0", ["--caption-batch-size must be positive"]),
    ("demo", "--out {tmp}/d --clip-steps 1.5", ["invalid int", "1.5"]),
    ("demo", "--out /proc/sat2cap-demo", ["not writable"]),
    ("train-captioner", "{world} --out {tmp}/k --steps 0", ["--steps must be positive"]),
    ("train-captioner", "{world} --out {tmp}/k --batch-size 0", ["--batch-size must be positive"]),
    ("train-captioner", "{world} --out {tmp}/k --noise -1", ["--noise must be 0 or more"]),
    ("train-captioner", "{world} --out {tmp}/k --noise nan", ["--noise must be 0 or more, got nan"]),
    ("train-captioner", "{world} --out {tmp}/k --limit -1", ["--limit must be 0 or more"]),
    ("train-captioner", "{world} --out {tmp}/k --seed -1", ["--seed"]),
    ("train-captioner", "{world} --out {tmp}/k --clip no-such-model", ["no-such-model"]),
    ("train-captioner", "{world} --out {tmp}/k --clip ViT-B-32:{bad_ckpt}", ["not a PyTorch checkpoint"]),
    ("train-captioner", "{world} --out {file}", ["not a folder"]),
    ("train-captioner", "{world} --out /proc/sat2cap-captioner", ["not writable"]),
    ("train-captioner", "/nonexistent --out {tmp}/k", ["/nonexistent"]),
    ("train-captioner", "{empty} --out {tmp}/k", ["shard", "train"]),
    ("train-captioner", "{world} --out {tmp}/k --steps 1.5", ["invalid int", "1.5"]),
    ("train-captioner", "", ["required", "data"]),
    ("caption-score", "{run} {cap} {world} --limit 0", ["--limit must be positive"]),
    ("caption-score", "{run} {cap} {world} --split train", ["--split 'train'", "val, test"]),
    ("caption-score", "{run} {cap} /nonexistent", ["/nonexistent"]),
    ("caption-score", "{run} {cap} {empty}", ["shard", "test"]),
    ("caption-score", "{run} {tmp}/no-captioner {world}", ["no captioner.json"]),
    ("caption-score", "/nonexistent-run {cap} {world}", ["/nonexistent-run"]),
    ("caption-score", "{tmp} {cap} {world}", ["no complete checkpoint"]),
    ("caption-score", "{run} {cap}", ["required", "data"]),
]
if not torch.cuda.is_available():               # --device cuda on a machine without CUDA
    TABLE += [(sub, f"{pre} --device cuda", ["CUDA is not available"]) for sub, pre in
              (("train", "{world} --out {tmp}/r"), ("pretrain-clip", "{world} --out {tmp}/c"), ("evaluate", "{run} {world}"))]

DRIVER = textwrap.dedent('''
    import json, os, sys, time, tempfile
    import sat2cap.cli as cli
    for name in ("synthworld", "pretrain-clip", "train", "evaluate", "demo", "train-captioner"): cli._command(name)   # import once, before forking
    cases, limit, res = json.loads(sys.argv[1]), float(sys.argv[2]), []
    for argv in cases:
        err, t0 = tempfile.TemporaryFile(), time.time()
        pid = os.fork()
        if pid == 0:
            os.dup2(err.fileno(), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            try: code = cli.main(argv) or 0
            except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback; traceback.print_exc(); code = 1
            sys.stderr.flush()
            os._exit(code)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done: rc = os.waitstatus_to_exitcode(status); break
            if time.time() - t0 > limit: os.kill(pid, 9); os.waitpid(pid, 0); rc = "hang"; break
            time.sleep(0.01)
        err.seek(0)
        res.append(dict(argv=argv, rc=rc, stderr=err.read().decode(errors="replace"), seconds=round(time.time() - t0, 2)))
    print(json.dumps(res))
''')

@pytest.fixture(scope="module")
def table(tiny_world, tiny_run, tmp_path_factory):
    "Run every TABLE case in its own forked process; return {(subcommand, args): result}."
    tmp = tmp_path_factory.mktemp("cli_table")
    (tmp / "taken.txt").write_text("x")
    (tmp / "bad.pt").write_text("not a checkpoint")
    (tmp / "empty" / "train").mkdir(parents=True)
    (tmp / "cap").mkdir()                                          # a captioner folder in form only: its checks come first
    for f in ("captioner.json", "vocab.json", "captioner.safetensors"): (tmp / "cap" / f).write_text("")
    run_copy = shutil.copytree(tiny_run, tmp / "run")            # `train` into it must be refused, leaving it as it was
    fill = dict(world=tiny_world, run=run_copy, tmp=tmp, file=tmp / "taken.txt", bad_ckpt=tmp / "bad.pt", empty=tmp / "empty",
                cap=tmp / "cap")
    argvs = [[sub, *args.format(**fill).split()] for sub, args, _ in TABLE]
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs), str(CASE_TIMEOUT)], capture_output=True, text=True,
                       timeout=CASE_TIMEOUT * 3 + 5 * len(argvs), env={**os.environ, "SAT2CAP_NO_PROGRESS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return {(sub, args): res for (sub, args, _), res in zip(TABLE, json.loads(r.stdout))}

@pytest.mark.parametrize("sub,args,words", TABLE, ids=[f"{s} {a}" for s, a, _ in TABLE])
def test_invalid_option_is_one_line_exit_2(table, sub, args, words):
    res = table[(sub, args)]
    assert res["rc"] != "hang", f"sat2cap {sub} {args} still running after {CASE_TIMEOUT} s"
    assert_user_error(subprocess.CompletedProcess(res["argv"], res["rc"], "", res["stderr"]), sub, *words)

def test_train_batch_larger_than_the_data_from_the_console_script(tiny_world, tmp_path):
    "The loop that never ended: a batch larger than the training set, through the installed script, with a timeout."
    r = subprocess.run([SAT2CAP, "train", str(tiny_world), "--out", str(tmp_path / "r"), "--batch-size", "1000"],
                       capture_output=True, text=True, timeout=120)
    from sat2cap.data import count_samples
    n = sum(count_samples(str(p)) for p in sorted((tiny_world / "train").glob("*.tar")))
    assert 16 <= n < 1000
    assert_user_error(r, "train", f"--batch-size 1000 is larger than the {n} training samples")
    assert f"use --batch-size {n} or less" in r.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()

# ---------- what exists now ----------

def test_unknown_subcommand():
    r = run("frobnicate")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith("sat2cap: error: unknown subcommand 'frobnicate'")

def test_synthworld_error_from_the_console_script(tmp_path):
    "End to end through the installed `sat2cap` script: a bad value is one line and exit 2."
    assert_user_error(run("synthworld", tmp_path / "out", "--n-samples", "0"), "synthworld", "n_samples", "positive")

def test_synthworld_refuses_a_non_empty_foreign_folder(tmp_path, capfd):
    (tmp_path / "notes.txt").write_text("mine")
    assert_user_error(call(capfd, "synthworld", tmp_path, "--n-samples", "10"), "synthworld", str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "mine"

def test_documented_dashed_options_are_accepted(tmp_path, capfd):
    "README and issues spell options with dashes (`--n-samples`); the parser must accept them."
    r = call(capfd, "synthworld", tmp_path / "sw", "--n-samples", "12", "--seed", "1", "--image-size", "16", "--region-step", "5")
    assert r.returncode == 0, r.stderr[-1000:]
    assert (tmp_path / "sw" / "manifest.json").exists()


# ---------- map and score-map (imagery's lane), through the dispatcher in this process ----------

def test_map_empty_prompt(tiny_run, tmp_path, capfd):
    r = call(capfd, "map", tiny_run, "conus", "", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "prompt")
    assert not (tmp_path / "x.png").exists()

def test_map_bbox_outside_the_world(tiny_run, tmp_path, capfd):
    r = call(capfd, "map", tiny_run, BBOX_EUROPE, "people riding horses", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "outside", BBOX_EUROPE, "region")

def test_map_unknown_region(tiny_run, tmp_path, capfd):
    r = call(capfd, "map", tiny_run, "atlantis", "people riding horses", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "atlantis")

def test_map_bad_date(tiny_run, tmp_path, capfd):
    r = call(capfd, "map", tiny_run, "conus", "people riding horses", "--when", "2020-13-45 99:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "2020-13-45", "--when", "date")

def test_map_missing_run(tmp_path, capfd):
    r = call(capfd, "map", "/nonexistent-run", "conus", "people riding horses", "--when", "2020-07-01 12:00", "--out", tmp_path / "x.png")
    assert_user_error(r, "map", "/nonexistent-run")

def test_score_map_bad_date(tiny_run, tiny_world, capfd):
    assert_user_error(call(capfd, "score-map", tiny_run, tiny_world, "people riding horses", "--when", "not a date"),
                      "score-map", "not a date", "--when")

def test_score_map_empty_prompt(tiny_run, tiny_world, capfd):
    assert_user_error(call(capfd, "score-map", tiny_run, tiny_world, "  ", "--when", "2020-07-01 12:00"), "score-map", "prompt")

def test_score_map_missing_shards(tiny_run, tmp_path, capfd):
    (tmp_path / "empty").mkdir()
    r = call(capfd, "score-map", tiny_run, tmp_path / "empty", "people riding horses", "--when", "2020-07-01 12:00")
    assert_user_error(r, "score-map", str(tmp_path / "empty"), "shard", "manifest")


# ---------- the same subcommands succeeding, through the dispatcher and its --dashed options ----------

def test_score_map_prints_json_auc(tiny_run_copy, tiny_world, capfd):
    r = call(capfd, "score-map", tiny_run_copy, tiny_world, "people riding horses", "--when", "2012-07-15 10:00")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["prompt"] == "people riding horses" and res["when"].startswith("2012-07-15 10:00")
    from sat2cap.maps import score_prompt, dataset_region      # the same scores computed in-process on the same run
    from sat2cap.runs import load_run
    from sat2cap.synthworld import SynthWorld
    run = load_run(str(tiny_run_copy))
    ref = score_prompt(dataset_region(run, tiny_world), run, SynthWorld.from_manifest(tiny_world), res["prompt"], res["when"])
    assert res == ref and res["tiles"] > res["positives"] > 0

def test_map_writes_png(tiny_run_copy, tmp_path, capfd):
    out = tmp_path / "m.png"
    r = call(capfd, "map", tiny_run_copy, "-105.2,39.6,-104.6,40.0", "people riding horses", "--when", "2012-07-15 10:00",
             "--out", out, "--basemap", "none")
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(out) in r.stdout
    import numpy as np
    from PIL import Image
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    coloured = (np.ptp(img, axis=2) > 30).mean()                  # axes and text alone are grey
    assert min(img.shape[:2]) >= 200 and coloured > 0.01, coloured          # a drawn map, not a blank

def test_train_captioner_then_caption_score(tiny_run, tiny_world, tmp_path, capfd):
    "train-captioner on the run's CLIP, then caption-score of it: JSON agreement per view over exactly the samples asked for."
    cap = tmp_path / "cap"
    r = call(capfd, "train-captioner", tiny_world, "--out", cap, "--clip", tiny_run, "--steps", "2", "--batch-size", "8", "--limit", "16")
    assert r.returncode == 0, r.stderr[-2000:]
    assert str(cap) in r.stdout and json.loads((cap / "train.json").read_text())["pairs"] == 16
    r = call(capfd, "caption-score", tiny_run, cap, tiny_world, "--limit", "6")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))  # a kind no caption names is null
    assert res["samples"] == 6 and set(res["agree"]) == set(res["mentions"]), res
    assert {"reference", "Sat2Cap + date/time", "Sat2Cap, no date/time", "CLIP on overhead"} <= set(res["agree"])
    others = [v["all"] for k, v in res["agree"].items() if k != "reference" and v["all"] is not None]
    assert others and res["agree"]["reference"]["all"] > max(others), res   # SynthWorld's own captions beat a 2-step captioner


# ---------- option spelling ----------

@pytest.mark.parametrize("sub", ["synthworld", "pretrain-clip", "train", "evaluate", "demo", "map", "score-map",
                                 "train-captioner", "caption-score"])
def test_help_spells_options_with_dashes(capfd, sub):
    "`--help` shows `--batch-size` as the README writes it, never fastcore's `--batch_size`."
    r = call(capfd, sub, "--help")
    opts = [w for w in r.stdout.split() if w.startswith("--")]
    assert r.returncode == 0 and opts and not [o for o in opts if "_" in o], opts

def test_underscore_spelling_still_accepted(tmp_path, capfd):
    r = call(capfd, "synthworld", tmp_path / "o", "--n_samples", "0")
    assert_user_error(r, "synthworld", "n_samples must be positive")

def test_every_train_option_is_a_config_field():
    "train's options are TrainConfig's fields (plus the data/run paths and the switches that are not settings)."
    import dataclasses, inspect
    from sat2cap.train import TrainConfig, train_cli
    switches = {"data", "out", "preset", "no_cache", "resume", "overwrite", "strict"}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(inspect.signature(train_cli.__wrapped__).parameters) - switches <= fields
    assert "use_cache" in fields and {"preset", "out", "data"} <= fields
