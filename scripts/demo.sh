#!/usr/bin/env bash
# Set up (idempotent) and run the gateway demo: a reference platform, a simulated glucose meter on a pty,
# a private Mosquitto and the daemon, all on this machine. Ctrl-C ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/yiyang demo "$@"
