#!/usr/bin/env bash
# Run every check the project has: set-up (idempotent), lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
.venv/bin/ruff check gateway drivers scripts bench tests
.venv/bin/mypy
# Three workers: the end-to-end tests mostly wait (BLE visits, a minute of SpO2), so they overlap well
# even on two cores. Pass -n 0 to run one test at a time.
exec .venv/bin/pytest -n 3 "$@"
