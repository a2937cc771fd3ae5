#!/usr/bin/env bash
# Create (or update) the project virtualenv .venv and install ndrsr into it.
# Idempotent: a second run only checks that everything imports (one Python start, no network).
#
# Environment:
#   PYTHON             the interpreter that creates .venv (default python3)
#   NDRSR_TORCH_INDEX  a PyTorch wheel index for torch/torchvision, e.g. https://download.pytorch.org/whl/cpu
#                      for the CPU-only build. Default: PyPI, whose torch is the CUDA build (its nvidia wheels
#                      take about 3 GB of .venv even on a machine without a GPU). It applies when torch is
#                      installed, i.e. on a new .venv: remove .venv to switch an existing one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
VPY=.venv/bin/python
# The check and the version line in one Python start. ndrsr before basicsr: basicsr 1.4.2 cannot be imported
# on this stack without ndrsr's import aliases.
CHECK="import torch, torchvision, ndrsr, basicsr, pytest, ruff, onnx, onnxruntime, onnxscript, safetensors, spandrel; \
from importlib.util import find_spec; assert find_spec('gradio') and find_spec('playwright'), 'the app extra'; \
print('ndrsr', ndrsr.__version__, '| basicsr', basicsr.__version__, '| torch', torch.__version__)"
if ! "$VPY" -c "$CHECK" 2>/dev/null; then
  TORCH_INDEX=()
  [[ -n "${NDRSR_TORCH_INDEX:-}" ]] && TORCH_INDEX=(--index-url "$NDRSR_TORCH_INDEX")
  "$VPY" -m pip install -q --upgrade pip wheel setuptools
  # torch first: basicsr 1.4.2's setup.py imports torch, so it is built without isolation.
  "$VPY" -m pip install -q ${TORCH_INDEX[@]+"${TORCH_INDEX[@]}"} "torch==2.14.1" "torchvision==0.29.1"
  "$VPY" -m pip install -q --no-build-isolation "basicsr==1.4.2"
  "$VPY" -m pip install -q --no-build-isolation -e ".[test]"
  "$VPY" -c "$CHECK"
fi
