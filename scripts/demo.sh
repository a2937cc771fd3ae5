#!/usr/bin/env bash
# Set up the virtualenv and run the embedded demo (train on bundled photos, then
# write results/demo_all_in_one/comparison.png and metrics.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m ndrsr.cli.demo "$@"
