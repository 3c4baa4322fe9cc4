"""Releases: the publishing workflow uses trusted publishing and the same checks as `make release-check`."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

def test_publish_workflow_uses_trusted_publishing():
    wf = yaml.safe_load((ROOT/'.github'/'workflows'/'publish.yml').read_text())
    on = wf.get('on', wf.get(True))                      # YAML 1.1 reads the key `on` as True
    assert on['release']['types'] == ['published']
    build, publish = wf['jobs']['build'], wf['jobs']['publish']
    runs = '\n'.join(s.get('run', '') for s in build['steps'])
    assert 'python -m build' in runs and 'twine check --strict' in runs
    assert publish['needs'] == 'build' and publish['permissions'] == {'id-token': 'write'}
    uses = [s.get('uses', '') for s in publish['steps']]
    assert any(u.startswith('pypa/gh-action-pypi-publish@') for u in uses)
    assert not any('password' in (s.get('with') or {}) for s in publish['steps']), 'trusted publishing needs no token'

def test_release_check_target_builds_checks_and_installs():
    mk = (ROOT/'Makefile').read_text()
    body = re.search(r'^release-check:.*?\n((?:\t.*\n)+)', mk, re.M).group(1)
    for step in ('-m build', 'twine check --strict', 'SAT2CAP_WHEEL=', 'fresh_venv'):
        assert step in body, step

def test_readme_install_works_before_the_first_release():
    readme = (ROOT/'README.md').read_text()
    install = readme.split('## Install', 1)[1].split('\n## ', 1)[0]
    assert 'not on the Python package index yet' in install
    assert 'git clone' in install and 'pip wheel . --no-deps' in install and '.whl' in install
    assert not re.search(r'^pip install sat2cap\b', install, re.M), 'no bare `pip install sat2cap` before a release'
