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


# ---------- every `sat2cap X` the documentation names is a real subcommand ----------
import html, json, re

ROOT = Path(__file__).resolve().parents[1]
# `sat2cap X` where it reads as a command: at a line start, after a backtick, `$ `, `(`, `; ` or `&& `, and
# followed by what follows a command (end of line or code, a comment, an option, a quote, an UPPERCASE argument)
_re_cmd = re.compile(r'(?:^[ \t]*|(?<=`)|(?<=\$ )|(?<=\()|(?<=; )|(?<=&& ))sat2cap ([a-z][a-z0-9-]*)(?![\w.-])'
                     r'(?=[ \t]*(?:$|[`#\-\["\'A-Z.$);&|]))', re.M)
# named in the docs without being registered: fix the notebook (register or delete), then remove it here
NOT_YET = {}

def _doc_texts() -> dict:
    "Return {file: text} for README.md, every notebook's sources and, if built, every page of _docs/."
    out = {'README.md': (ROOT/'README.md').read_text(encoding='utf-8')}
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
        out[nb.relative_to(ROOT).as_posix()] = '\n'.join(''.join(c['source']) for c in cells)
    for page in sorted((ROOT/'_docs').glob('*.html')):
        body = re.sub(r'<(script|style)\b.*?</\1>', '', page.read_text(encoding='utf-8'), flags=re.S)
        out[page.relative_to(ROOT).as_posix()] = html.unescape(re.sub(r'<[^>]+>', '', body))
    return out

def test_every_subcommand_named_in_the_docs_exists():
    from sat2cap.cli import COMMANDS
    named = {}
    for f, text in _doc_texts().items():
        for m in _re_cmd.finditer(text): named.setdefault(m.group(1), set()).add(f)
    assert {'synthworld', 'train', 'map', 'demo'} <= set(named), sorted(named)     # the scan finds real mentions
    unknown = {k: sorted(v) for k, v in named.items() if k not in COMMANDS and k not in NOT_YET}
    assert not unknown, f'documented but not in sat2cap.cli.COMMANDS: {unknown}'
    fixed = [k for k in NOT_YET if k in COMMANDS or k not in named]
    assert not fixed, f'{fixed} no longer missing: remove them from NOT_YET'
