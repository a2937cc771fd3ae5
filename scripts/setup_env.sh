#!/usr/bin/env bash
# Create (or update) the project virtualenv .venv and install ndrsr into it.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
VPY=.venv/bin/python
# ndrsr before basicsr: basicsr 1.4.2 cannot be imported on this stack without ndrsr's import aliases.
if ! "$VPY" -c "import torch, torchvision, ndrsr, basicsr, pytest, ruff" >/dev/null 2>&1; then
  "$VPY" -m pip install -q --upgrade pip wheel setuptools
  # torch first: basicsr 1.4.2's setup.py imports torch, so it is built without isolation.
  "$VPY" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  "$VPY" -m pip install -q --no-build-isolation "basicsr==1.4.2"
  "$VPY" -m pip install -q --no-build-isolation -e ".[test]"
fi
"$VPY" -c "import ndrsr, basicsr, torch; print('ndrsr', ndrsr.__version__, '| basicsr', basicsr.__version__, '| torch', torch.__version__)"
