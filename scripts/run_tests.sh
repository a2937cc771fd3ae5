#!/usr/bin/env bash
# Set up the virtualenv (scripts/setup_env.sh), lint (ruff.toml) and run the test suite (the 15 slowest tests listed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 tests "$@"
