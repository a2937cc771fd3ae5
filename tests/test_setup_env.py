"""scripts/setup_env.sh: a set-up tree is left alone; NDRSR_TORCH_INDEX picks torch's wheel index.

The script runs for real on a copy of itself whose ``.venv/bin/python`` is a
wrapper: it logs every call, answers ``-m pip`` without installing anything,
and hands everything else to this interpreter (which has ndrsr installed).
"""
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # real subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'scripts', 'setup_env.sh')

WRAPPER = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [[ "$1 $2" == "-m pip" ]]; then exit 0; fi
if [[ "$1" == "-c" && -n "${FAKE_BROKEN:-}" && ! -e "$FAKE_BROKEN" ]]; then
  touch "$FAKE_BROKEN"; exit 1   # the first check fails: an empty or broken .venv
fi
exec "%s" "$@"
"""


@pytest.fixture
def tree(tmp_path):
    """A copy of the script in tmp_path/scripts with a logging .venv/bin/python."""
    (tmp_path / 'scripts').mkdir()
    shutil.copy(SCRIPT, tmp_path / 'scripts' / 'setup_env.sh')
    (tmp_path / '.venv' / 'bin').mkdir(parents=True)
    wrapper = tmp_path / '.venv' / 'bin' / 'python'
    wrapper.write_text(WRAPPER % sys.executable)
    wrapper.chmod(0o755)
    return tmp_path


def run_setup(tree, **env):
    log = tree / 'calls.log'
    full_env = {k: v for k, v in os.environ.items() if k not in ('NDRSR_TORCH_INDEX', 'FAKE_BROKEN')}
    full_env.update(FAKE_LOG=str(log), **env)
    res = subprocess.run(['bash', str(tree / 'scripts' / 'setup_env.sh')], capture_output=True, text=True,
                         env=full_env, timeout=300)
    calls = log.read_text().splitlines() if log.exists() else []
    return res, calls


def test_a_set_up_tree_installs_nothing(tree):
    res, calls = run_setup(tree)
    assert res.returncode == 0, res.stderr
    assert not [c for c in calls if c.startswith('-m pip')], calls
    assert len(calls) == 1  # one Python start: the check, which also prints the versions
    assert res.stdout.startswith('ndrsr ') and '| torch ' in res.stdout


def test_the_check_imports_ndrsr_before_basicsr():
    """basicsr 1.4.2 cannot be imported on this stack before ndrsr's aliases: a check doing so always fails."""
    text = open(SCRIPT).read()
    check = text.split('CHECK="', 1)[1].split(';', 1)[0]
    names = [n.strip() for n in check.replace('import', '').split(',')]
    assert names.index('ndrsr') < names.index('basicsr'), check
    res = subprocess.run([sys.executable, '-c', check], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def test_a_broken_tree_is_installed_from_pypi_by_default(tree):
    res, calls = run_setup(tree, FAKE_BROKEN=str(tree / 'broken-once'))
    assert res.returncode == 0, res.stderr
    torch_line = next(c for c in calls if c.startswith('-m pip install') and 'torch==' in c)
    assert '--index-url' not in torch_line
    assert any('-e .[test]' in c for c in calls)


def test_ndrsr_torch_index_installs_torch_from_that_index(tree):
    index = 'https://download.pytorch.org/whl/cpu'
    res, calls = run_setup(tree, FAKE_BROKEN=str(tree / 'broken-once'), NDRSR_TORCH_INDEX=index)
    assert res.returncode == 0, res.stderr
    torch_line = next(c for c in calls if c.startswith('-m pip install') and 'torch==' in c)
    assert f'--index-url {index}' in torch_line and 'torchvision==' in torch_line
    others = [c for c in calls if c.startswith('-m pip install') and c != torch_line]
    assert others and not any('--index-url' in c for c in others)  # basicsr and ndrsr still come from PyPI
