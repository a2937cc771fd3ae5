#!/usr/bin/env bash
# Set up the virtualenv (scripts/setup_env.sh), lint (ruff.toml) and run the test suite (the 15 slowest tests listed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# The page's browser test (tests/app) drives the system's Chromium: install it when missing (Debian/Ubuntu, as root).
if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    echo 'run_tests.sh: could not install chromium; the browser test will be skipped' >&2
fi
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 tests "$@"
