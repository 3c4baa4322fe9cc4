#!/usr/bin/env python
"""Build the sat2cap docs site without quarto, from the same notebooks nbdev_docs would render.

    python tools/build_docs.py            # site into _docs/ (and README.md from nbs/index.ipynb)
    python tools/build_docs.py readme     # only README.md
    python tools/build_docs.py readme --check   # exit 1 if README.md is out of date

Pipeline: nbdev's own processing (`nbdev.serve.proc_nbs` -> `_proc/`: frontmatter, `show_doc` for every
exported symbol, `#| hide`/`#| export` removal, symbol links), then a small translation of the quarto cell
options nbdev leaves behind (`#| echo: false`, `#| output: asis`, ...) into MyST-NB tags, a clean-up of
what a reader must not see (Markdown links inside code blocks, temp-folder paths, a repeated warning line),
then Sphinx with MyST-NB renders the saved outputs into `_docs/`. Outputs are never re-executed, except the
few notebooks in `RERUN`, whose outputs describe the current code or read result files (CLI usage, the
Paper figures page): those are run at build time so the page cannot go stale. Page names, sidebar order, site title
and URLs come from `_quarto.yml` and settings.ini, so both builds give the same pages (`core.html`, ...).
Where quarto is installed, `make docs` runs `nbdev_docs` instead.
"""
from __future__ import annotations
import argparse, configparser, copy, importlib, inspect, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

class DocsError(Exception):
    "A docs build failure with a message naming the notebook or step."
_re_num = re.compile(r'^\d+[a-zA-Z0-9]*_')          # nbdev/quarto drop "00_" prefixes from page names
_re_opt = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_showdoc = re.compile(r'show_doc\(\s*([\w.]+)')
_re_nblink = re.compile(r'\]\((?!\w+://)([^)\s#]+)\.ipynb(#[^)\s]*)?\)')
_re_fence = re.compile(r'^(```+|~~~+)[^\n]*\n.*?^\1[ \t]*$', re.M | re.S)
_re_mdlink = re.compile(r'\[([^\]\n]*)\]\([^)\s]*\)')
_re_tmp = re.compile(r'(?<![\w.$/-])/tmp/[\w.-]+')     # a temp folder of the run that drew the output
TMP = '$TMP'
# notebooks run at build time (their pages show the current CLI / current result files); cheap, no #| slow cells
RERUN = ['12_cli.ipynb', 'paper_figures.ipynb']
CSS = Path(__file__).with_name('docs.css')               # Sphinx/furo layout; nbs/styles.css is quarto's


def settings(root:Path=ROOT) -> dict:
    "Return settings.ini's DEFAULT section as a dict."
    cp = configparser.ConfigParser(delimiters=['=']); cp.read(root/'settings.ini')
    return dict(cp['DEFAULT'])

def doc_url(cfg:dict) -> str:
    "Return the published site URL that nbdev writes into symbol links."
    return (cfg['doc_host'] + cfg.get('doc_baseurl', '')).rstrip('/')

def page_name(nb_rel:str) -> str:
    "Return the page name quarto gives a notebook (`00_core.ipynb` -> `core`)."
    p = Path(nb_rel)
    return (p.parent/_re_num.sub('', p.stem)).as_posix()

def _flatten(items, nbs:Path) -> list[str]:
    "Expand a quarto sidebar `contents` list (strings, `auto` globs, sections) into notebook paths."
    out = []
    for it in items or []:
        if isinstance(it, str): out.append(it)
        elif isinstance(it, dict) and 'auto' in it:
            globs = it['auto'] if isinstance(it['auto'], list) else [it['auto']]
            out += sorted(p.relative_to(nbs).as_posix() for g in globs for p in nbs.glob(g.lstrip('/')))
        elif isinstance(it, dict) and 'contents' in it: out += _flatten(it['contents'], nbs)
        elif isinstance(it, dict) and 'href' in it: out.append(it['href'])
    return out

def sidebar(root:Path=ROOT) -> list[str]:
    "Return the notebooks `_quarto.yml`'s sidebar lists, in order, each once."
    cfg = yaml.safe_load((root/'_quarto.yml').read_text())
    items = _flatten(cfg['website']['sidebar']['contents'], root/'nbs')
    seen = []
    for o in items:
        if o.endswith('.ipynb') and not Path(o).name.startswith('_') and o not in seen: seen.append(o)
    return seen


# ---------- notebook translation: quarto cell options -> MyST-NB ----------

def _opts(src:str) -> tuple[dict, str]:
    "Split leading quarto `#| key: value` lines off a code cell."
    lines, opts = src.splitlines(), {}
    while lines and _re_opt.match(lines[0]):
        k, v = _re_opt.match(lines[0]).groups(); opts[k] = v.lower(); lines.pop(0)
    return opts, '\n'.join(lines)

def _md(text:str) -> dict: return {'cell_type': 'markdown', 'metadata': {}, 'source': text}

def _ids(nb:dict) -> dict:
    "Give every cell a unique id (nbformat 4.5) so readers don't warn."
    nb['nbformat'], nb['nbformat_minor'] = 4, max(5, nb.get('nbformat_minor', 0))
    seen = set()
    for i, c in enumerate(nb['cells']):
        if not c.get('id') or c['id'] in seen: c['id'] = f'cell-{i}'
        seen.add(c['id'])
    return nb

def _src(cell) -> str:
    s = cell.get('source', '')
    return ''.join(s) if isinstance(s, list) else (s or '')

def _title_cell(raw:str) -> tuple[dict, dict] | None:
    "Turn nbdev's frontmatter raw cell into a `# Title` + description markdown cell."
    m = re.match(r'^\s*---\s*\n(.*?)\n---\s*$', raw, re.S)
    if not m: return None
    fm = yaml.safe_load(m.group(1)) or {}
    if 'title' not in fm: return fm, None
    desc = f"\n\n> {fm['description']}" if fm.get('description') else ''
    return fm, _md(f"# {fm['title']}{desc}")

def _links(text:str, site:str, names:dict) -> str:
    "Point links to other notebooks at their published pages (made relative after the build)."
    def sub(m):
        tgt = names.get(Path(m.group(1)).as_posix() + '.ipynb')
        return m.group(0) if tgt is None else f"]({site}/{tgt}.html{m.group(2) or ''})"
    return _re_nblink.sub(sub, text)

def _showdoc_md(md:str, src:str) -> str:
    "Return show_doc markdown with a quarto-compatible anchor (`#name.lower()`) and no leading rule."
    from docutils.nodes import make_id
    md = re.sub(r'^\s*---\s*\n', '', md)
    # quarto's link attributes `[source](url){target=... style=...}` are not Markdown for MyST: write the link as HTML
    md = re.sub(r'\[source\]\(([^)\s]+)\)\{([^}]*)\}', r'<a href="\1" \2>source</a>', md)
    m = _re_showdoc.search(src)
    if not m: return md
    name = m.group(1); anchor = name.lower()
    # the heading `### name` already gets id make_id(name); add nbdev's anchor only where they differ
    return (f'<a id="{anchor}"></a>\n\n' if make_id(name) != anchor else '') + md

def code_links(md:str) -> str:
    "Write Markdown links inside fenced code blocks (show_doc signatures) as their plain text."
    return _re_fence.sub(lambda m: _re_mdlink.sub(r'\1', m.group(0)), md)

def tmp_paths(text:str) -> str:
    "Replace temp-folder paths (`/tmp/tmpab12cd34/x`) by `$TMP/x`: they mean nothing to a reader."
    return _re_tmp.sub(TMP, text)

def _dedup_lines(text:str) -> str:
    "Drop a line that repeats the line just before it."
    out = []
    for l in text.splitlines(keepends=True):
        if not out or l != out[-1]: out.append(l)
    return ''.join(out)

def clean_outputs(outputs:list) -> list:
    "Merge consecutive stream outputs, drop repeated warning lines, hide temp paths in every text output."
    res = []
    for o in copy.deepcopy(outputs):
        if o.get('output_type') == 'stream':
            o['text'] = _src({'source': o.get('text', '')})
            if res and res[-1].get('output_type') == 'stream' and res[-1].get('name') == o.get('name'):
                res[-1]['text'] += o['text']; continue
        res.append(o)
    for o in res:
        if o.get('output_type') == 'stream': o['text'] = tmp_paths(_dedup_lines(o['text']))
        for k, v in o.get('data', {}).items():
            if k.startswith('text/'): o['data'][k] = tmp_paths(_src({'source': v}))
    return res

def translate(nb:dict, site:str, names:dict) -> tuple[dict, dict, set]:
    "Translate one nbdev-processed notebook for MyST-NB; return (notebook, frontmatter, anchors)."
    nb = copy.deepcopy(nb); cells, fm, anchors = [], {}, set()
    for c in nb['cells']:
        src = _src(c)
        if c['cell_type'] == 'raw':
            t = _title_cell(src)
            if t is not None:
                fm = t[0]
                if t[1]: cells.insert(0, t[1])
                continue
        if c['cell_type'] == 'markdown':
            cells.append(_md(code_links(_links(src, site, names)))); continue
        if c['cell_type'] != 'code': cells.append(c); continue
        c['outputs'] = clean_outputs(c.get('outputs', []))
        opts, body = _opts(src)
        if opts.get('include') == 'false' or not body.strip() and not c.get('outputs'): continue
        c['source'] = body
        tags = c.setdefault('metadata', {}).setdefault('tags', [])
        if opts.get('echo') == 'false': tags.append('remove-input')
        if opts.get('output') == 'false': tags.append('remove-output')
        if opts.get('output') == 'asis':      # quarto splices Markdown output and printed text into the page
            outs = c.get('outputs', [])
            is_md = lambda o: 'text/markdown' in o.get('data', {}) or o.get('output_type') == 'stream' and o.get('name') == 'stdout'
            md = ''.join(_src({'source': o['data']['text/markdown']}) if 'data' in o else o['text'] for o in outs if is_md(o))
            rest = [o for o in outs if not is_md(o)]
            if 'show_doc' in body:
                m = _re_showdoc.search(body)
                if m: anchors.add(m.group(1).lower())
                md = _showdoc_md(md, body)
            if opts.get('echo') != 'false': cells.append({**c, 'outputs': []})
            if md.strip(): cells.append(_md(code_links(_links(md, site, names))))
            if rest:                           # figures and other outputs stay, after the Markdown, without the code
                cells.append({**copy.deepcopy(c), 'id': None, 'outputs': rest, 'metadata': {'tags': ['remove-input']}})
            continue
        cells.append(c)
    nb['cells'] = cells
    return _ids(nb), fm, anchors


# ---------- API reference ----------

def api_page(root:Path, site:str, anchors:dict, pages:dict) -> str:
    "Return a markdown page listing every public exported symbol, linking to its `show_doc`."
    spec = importlib.util.spec_from_file_location('_modidx', root/settings(root)['lib_path']/'_modidx.py')
    mi = importlib.util.module_from_spec(spec); spec.loader.exec_module(mi)
    out = ['# API reference', '',
           "Every exported function and class, by module, linking to its documentation "
           "(nbdev's `show_doc`) in the notebook that defines it.", '']
    for mod, syms in sorted(mi.d['syms'].items()):
        rows = []
        for full, (url, _) in syms.items():
            name = full[len(mod) + 1:]
            if any(p.startswith('_') for p in name.split('.')): continue
            page, _, anchor = url.partition('#')
            page = page.removesuffix('.html')
            if anchor not in anchors.get(page, ()):
                cls = anchor.split('.')[0]
                anchor = cls if cls in anchors.get(page, ()) else ''
            rows.append(f"| [`{name}`]({site}/{page}.html{'#' + anchor if anchor else ''}) | {_summary(mod, name)} |")
        if not rows: continue
        title = pages.get(page, {}).get('title', '')
        out += [f"## `{mod}`", '', f"[{title or page}]({site}/{page}.html)", '',
                '| name | summary |', '| --- | --- |', *rows, '']
    return '\n'.join(out)

def _summary(mod:str, name:str) -> str:
    "Return the first docstring line of `mod.name` (escaped for a table cell)."
    try:
        obj = importlib.import_module(mod)
        for p in name.split('.'): obj = getattr(obj, p)
        doc = (inspect.getdoc(obj) or '').strip().splitlines()
    except Exception: doc = []
    return (doc[0] if doc else '').replace('|', '\\|')


# ---------- build ----------

CONF = '''\
project = {title!r}
author = {author!r}
copyright = {copyright!r}
release = {version!r}
extensions = ["myst_nb"]
html_theme = "furo"
html_title = {title!r}
html_baseurl = {site!r}
html_copy_source = False
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["sat2cap.css"]       # tools/docs.css: wider content, scrolling tables, full-width figures
nb_execution_mode = "off"              # outputs are kept in the notebooks; never re-executed here
nb_render_markdown_format = "myst"
myst_enable_extensions = ["colon_fence", "dollarmath"]
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
'''

def run_proc(root:Path) -> Path:
    "Run nbdev's notebook processing (what nbdev_docs does before quarto); return `_proc`."
    code = "from nbdev.serve import proc_nbs; proc_nbs(force=True, n_workers=2)"
    r = subprocess.run([sys.executable, '-c', code], cwd=root, capture_output=True, text=True)
    if r.returncode:
        ls = r.stderr.splitlines()   # nbdev prints the failing cell's source after its 'Error in notebook' line
        errs = sorted({' | '.join(x.strip() for x in ls[i:i + 3]) for i, l in enumerate(ls) if l.startswith('Exception: Error')})
        raise DocsError(f"nbdev's notebook processing failed (nbdev_docs would fail the same way):\n"
                 + ('\n'.join(errs) or r.stderr[-3000:])
                 + "\nHint: show_doc processing runs every cell with an import or #| export; "
                   "keep imports in cells of their own.")
    return root/'_proc'

def rerun(root:Path, nb_rel:str) -> dict:
    "Run notebook `nb_rel` as nbdev_test does (cells flagged with settings.ini `tst_flags` skipped); return outputs by cell id."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    cfg = settings(root)
    path = root/cfg['nbs_path']/nb_rel
    flags = set(cfg.get('tst_flags', '').split())
    nb = NBProcessor(path, procs=FrontmatterProc, process=True).nb
    skip = lambda c: c.cell_type != 'code' or bool(flags & set(getattr(c, 'directives_', None) or {}))
    sh = CaptureShell(path)
    try:
        with working_directory(path.parent): sh.run_all(nb, exc_stop=True, preproc=skip)
    except Exception: raise DocsError(f'{nb_rel} failed when run for the docs:\n{sh.prettytb(fname=path)}')
    return {c.id: json.loads(json.dumps(c.get('outputs', []))) for c in nb.cells if c.cell_type == 'code'}

def stage(root:Path, proc:Path, dst:Path) -> list[str]:
    "Write Sphinx sources (translated notebooks, API page, conf.py) into `dst`; return page names."
    cfg, site = settings(root), doc_url(settings(root))
    order = sidebar(root)
    names = {nb: page_name(nb) for nb in order}
    shutil.copytree(proc, dst, ignore=shutil.ignore_patterns('*.ipynb', '_quarto.yml', '*.yml', '*.css'))
    anchors, pages = {}, {}
    for nb_rel in order:
        nb = json.loads((proc/nb_rel).read_text())
        if nb_rel in RERUN:
            outs = rerun(root, nb_rel)
            for c in nb['cells']:
                if c.get('id') in outs: c['outputs'] = outs[c['id']]
        nb, fm, anchors[names[nb_rel]] = translate(nb, site, names)
        if fm.get('output-file'): names[nb_rel] = fm['output-file'].removesuffix('.html')
        pages[names[nb_rel]] = fm
        out = dst/(names[nb_rel] + '.ipynb'); out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(nb, indent=1))
    (dst/'api.md').write_text(api_page(root, site, anchors, pages))
    toc = [n for n in names.values() if n != 'index'] + ['api']
    idx = dst/'index.ipynb'
    nb = json.loads(idx.read_text())
    nb['cells'].append(_md('```{toctree}\n:hidden:\n:maxdepth: 1\n\n' + '\n'.join(toc) + '\n```'))
    idx.write_text(json.dumps(_ids(nb), indent=1))
    (dst/'_static').mkdir(exist_ok=True)
    shutil.copy(CSS, dst/'_static'/'sat2cap.css')
    (dst/'conf.py').write_text(CONF.format(site=site, **{k: cfg.get(k, '') for k in
                                                          ('title', 'author', 'copyright', 'version')}))
    return ['index', *toc]

def relink(site_dir:Path, site:str):
    """Point links to the published site into the local build (relative, so `file://` works); an anchor
    the target page lacks (a method without its own `show_doc`) falls back to its class, else the page top."""
    pages = {f.relative_to(site_dir).as_posix(): f for f in site_dir.rglob('*.html')}
    ids = {k: set(re.findall(r'\sid="([^"]+)"', f.read_text(encoding='utf-8'))) for k, f in pages.items()}
    def fix(m, rel):
        page, frag = m.group(1), m.group(2) or ''
        if frag and page in ids and frag[1:] not in ids[page]:
            cls = frag[1:].split('.')[0]
            frag = '#' + cls if cls in ids[page] else ''
        return f'href="{rel}{page}{frag}"'
    pat = re.compile(r'href="' + re.escape(site) + r'/([^"#]*)(#[^"]*)?"')
    for k, f in pages.items():
        rel = os.path.relpath(site_dir, f.parent).replace(os.sep, '/')
        rel = '' if rel == '.' else rel + '/'
        t = f.read_text(encoding='utf-8')
        new = t.replace(f'class="reference external" href="{site}/', f'class="reference internal" href="{site}/')
        new = pat.sub(lambda m: fix(m, rel), new)
        if new != t: f.write_text(new, encoding='utf-8')

def build(root:Path=ROOT, out:Path|None=None, keep:bool=False) -> list[str]:
    "Build the site into `out` (default `_docs/`); return its page names."
    out = Path(out or root/settings(root)['doc_path'])
    proc = run_proc(root)
    tmp = Path(tempfile.mkdtemp(prefix='sat2cap-docs-'))
    try:
        pages = stage(root, proc, tmp/'src')
        # Sphinx writes into tmp/html: MyST-NB puts its `jupyter_execute/` copies beside the output folder
        cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-d', str(tmp/'doctrees'), str(tmp/'src'), str(tmp/'html')]
        if subprocess.run(cmd, cwd=root).returncode: raise DocsError('sphinx-build failed (messages above)')
        if out.exists(): shutil.rmtree(out)
        shutil.copytree(tmp/'html', out)
        relink(out, doc_url(settings(root)))
        if (out/'_sources').is_dir() and not any((out/'_sources').iterdir()): (out/'_sources').rmdir()
        (out/'.nojekyll').touch()
    finally:
        if keep: print(f'sources kept in {tmp}/src')
        else: shutil.rmtree(tmp, ignore_errors=True)
    return pages


# ---------- README ----------

def readme_text(root:Path=ROOT) -> str:
    "Return README.md as generated from the readme notebook (settings.ini `readme_nb`), nbdev-processed."
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults
    from nbconvert import MarkdownExporter
    import nbformat
    cfg = settings(root)
    cwd = os.getcwd(); os.chdir(root)
    try:
        nb = read_nb(root/cfg['nbs_path']/cfg['readme_nb'])
        FilterDefaults()(nb)
    finally: os.chdir(cwd)
    nbd = json.loads(json.dumps({k: v for k, v in nb.items() if not k.endswith('_')}))
    for c in nbd['cells']: c['source'] = _src(c)
    nbd['cells'] = [c for c in nbd['cells'] if c['source'] or c.get('outputs')]
    tnb, _, _ = translate(nbd, doc_url(cfg), {nb: page_name(nb) for nb in sidebar(root)})
    from traitlets.config import Config
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'remove-input'}
    c.TagRemovePreprocessor.remove_all_outputs_tags = {'remove-output'}
    c.TagRemovePreprocessor.remove_cell_tags = {'remove-cell'}
    ex = MarkdownExporter(config=c)
    body, _ = ex.from_notebook_node(nbformat.from_dict(tnb))
    body = re.sub(r'(!\[[^\]]*\]\()images/', r'\1' + cfg['nbs_path'] + '/images/', body)   # README sits above nbs/
    return re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'

def write_readme(root:Path=ROOT, check:bool=False) -> bool:
    "Write README.md from the readme notebook; with `check`, only report whether it is up to date."
    new, path = readme_text(root), root/'README.md'
    same = path.exists() and path.read_text(encoding='utf-8') == new
    if not check and not same: path.write_text(new, encoding='utf-8')
    return same


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('what', nargs='?', default='site', choices=['site', 'readme'])
    p.add_argument('--out', default=None, help='site folder (default: settings.ini doc_path, _docs)')
    p.add_argument('--check', action='store_true', help='readme: exit 1 if README.md is out of date')
    p.add_argument('--keep', action='store_true', help='keep the staged Sphinx sources')
    a = p.parse_args(argv)
    if a.what == 'readme':
        same = write_readme(check=a.check)
        print('README.md is up to date' if same else ('README.md is OUT OF DATE: run make readme' if a.check else 'wrote README.md'))
        return 1 if a.check and not same else 0
    print('README.md ' + ('unchanged' if write_readme() else 'regenerated from nbs/index.ipynb'))
    try: pages = build(out=a.out, keep=a.keep)
    except DocsError as e:
        print(f'docs: error: {e}', file=sys.stderr); return 1
    out = Path(a.out or ROOT/settings()['doc_path'])
    print(f'built {len(pages)} pages into {out}: {", ".join(p + ".html" for p in pages)}')
    return 0

if __name__ == '__main__': sys.exit(main())
