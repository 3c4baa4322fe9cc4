"""The console script as a user runs it: one clear line and exit 2 on a mistake, never a traceback."""
import subprocess, sys, shutil
from pathlib import Path

SAT2CAP = shutil.which("sat2cap") or str(Path(sys.executable).parent / "sat2cap")

def run(*args):
    return subprocess.run([SAT2CAP, *args], capture_output=True, text=True, timeout=300)

def test_help_lists_subcommands():
    r = run("--help")
    assert r.returncode == 0 and "synthworld" in r.stdout

def test_unknown_subcommand_is_one_line_exit_2():
    r = run("frobnicate")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["sat2cap: error: unknown subcommand 'frobnicate'; choose from " + r.stderr.split("choose from ")[1].strip()]
    assert "Traceback" not in r.stderr
