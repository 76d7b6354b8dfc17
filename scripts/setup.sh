#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 / Raspberry Pi OS machine (run as root or with sudo).
# Installs the Debian packages the gateway, its demo and its tests use, then a virtualenv in .venv
# with the gateway installed in it. Safe to run again: it only does what is missing.
#   scripts/setup.sh          runtime + demo
#   scripts/setup.sh --dev    also the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "setup: Debian packages are missing and this is not root: run as root or install sudo" >&2; exit 1
    fi
  else SUDO=""; fi
}

# mosquitto: the local MQTT broker (family alerts, demo, tests); socat: pty pairs for serial tests;
# dbus: a private bus for the emulated BlueZ; libsystemd-dev + pkg-config: build systemd-python;
# systemd: systemd-analyze, which checks the shipped unit (a container has none by default);
# fonts-noto-cjk: the Chinese titles of `yiyang report` (matplotlib's own fonts have no CJK glyphs);
# strace (--dev): bench/sdcard.py counts the daemon's fsyncs and the bytes it writes per file.
DEB_PACKAGES=(mosquitto socat dbus libsystemd-dev pkg-config gcc python3-dev python3-venv tzdata systemd fonts-noto-cjk)
((DEV)) && DEB_PACKAGES+=(strace)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  need_root
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package enables a system-wide broker; the gateway's tests and demo start their own
# on free ports, so the system one is left as the operator configured it.

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $PY is $("$PY" --version 2>&1); the gateway needs Python >= 3.11 (Debian 12 ships 3.11)" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating virtualenv .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.yiyang-installed
hash="$(sha256sum pyproject.toml | cut -c1-16)"
installed() { [[ -f $stamp ]] && grep -qx "$1" "$stamp"; }
if ! installed "$hash-dev1" && { ((DEV)) || ! installed "$hash-dev0"; }; then
  echo "setup: installing the gateway into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  extras="systemd"
  ((DEV)) && extras="systemd,dev"
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  echo "$hash-dev$DEV" >> "$stamp"
fi
