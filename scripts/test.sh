#!/usr/bin/env bash
# Run every check the project has: set-up (idempotent), lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
.venv/bin/ruff check gateway drivers scripts bench tests
.venv/bin/mypy
exec .venv/bin/pytest "$@"
