#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is missing, lints, tests.
# Viewer tests run under Xvfb (pytest-xvfb starts it). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
