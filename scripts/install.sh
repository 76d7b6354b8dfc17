#!/usr/bin/env bash
# Install the gateway on a hub (Debian 12 / Raspberry Pi OS), as root, from this checkout:
#
#   scripts/install.sh --hub-id gw-0042 --platform-url https://platform.example/api --resident r-0001 \
#       --secret-file - --fleet-key fleet.pub          # the secret on standard input, never shown
#
# Every step is printed, and what it changed. Running it again changes nothing that is already right
# and says so (a new --platform-url or secret is put in place; the technician's devices are kept).
#   --uninstall        stop and remove the service, its udev rules and its broker listener; keep the
#                      configuration, the secret and the data (the outbox: records not yet uploaded)
#   --uninstall --purge  also delete /etc/yiyang, /var/lib/yiyang, the broker's accounts and the user
#                      (refused while records wait for the platform, unless --force)
#   --root DIR         write everything under DIR instead of /, and skip what needs the live system
#                      (packages, the user, chown, udevadm, systemctl, the doctor); the manifest shows
#                      the owners it would set. For tests and image builds.
#   --no-start         install, but do not enable and start the service (nor run the doctor)
# Exit status: 0 done (and the doctor found nothing), 1 failed, 2 wrong arguments, 3 installed but
# `yiyang doctor` found problems (fix each as it says, then run it again).
set -euo pipefail
umask 077

PREFIX=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${YIYANG_PYTHON:-$PREFIX/.venv/bin/python}

# Where things go on the hub (under --root DIR when given).
ETC=/etc/yiyang
CONFIG=$ETC/gateway.toml
SECRET=$ETC/platform.secret
BROKER_PASSWORD=$ETC/broker.password
FLEET_KEY=$ETC/fleet.pub
DATA=/var/lib/yiyang
UNIT=/etc/systemd/system/yiyang.service
UDEV_RULES=/etc/udev/rules.d/99-yiyang-serial.rules
MOSQUITTO_CONF=/etc/mosquitto/conf.d/yiyang.conf
# The broker's accounts and rules (config/mosquitto-hub.conf.example names these paths). Family
# accounts (one broker user per contact with app = true) are added to the same password file by the
# family tooling after installation; the ACL is regenerated from the configuration on every run.
MOSQUITTO_PASSWD=/etc/mosquitto/yiyang.passwd
MOSQUITTO_ACL=/etc/mosquitto/yiyang.acl
SERVICE_USER=yiyang
SERVICE_GROUPS=(dialout bluetooth)
BROKER_USER=yiyang-gateway

ROOT=""
HUB_ID=""
PLATFORM_URL=""
RESIDENTS=()
SECRET_FROM=""
FLEET_KEY_FROM=""
UNINSTALL=0
PURGE=0
FORCE=0
START=1

usage() {
  sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

fail() { printf 'install: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install: %s (see --help)\n' "$*" >&2; exit 2; }

while (($#)); do
  case $1 in
    --hub-id) HUB_ID=${2:?--hub-id needs a value}; shift 2 ;;
    --platform-url) PLATFORM_URL=${2:?--platform-url needs a value}; shift 2 ;;
    --resident) RESIDENTS+=("${2:?--resident needs a value}"); shift 2 ;;
    --secret-file) SECRET_FROM=${2:?--secret-file needs a file or -}; shift 2 ;;
    --fleet-key) FLEET_KEY_FROM=${2:?--fleet-key needs a file or -}; shift 2 ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    --force) FORCE=1; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

if [[ -n $ROOT ]]; then
  [[ -d $ROOT ]] || usage_error "--root $ROOT is not a directory"
  ROOT=$(cd -- "$ROOT" && pwd)
  [[ $ROOT != / ]] || ROOT=""
fi
LIVE=1
[[ -z $ROOT ]] || LIVE=0
((PURGE == 0 || UNINSTALL == 1)) || usage_error "--purge goes with --uninstall"
if ((LIVE)) && [[ $(id -u) -ne 0 ]]; then
  fail "run as root (sudo scripts/install.sh ...): it creates a system user and installs a service"
fi

at() { printf '%s%s' "$ROOT" "$1"; }   # where a path of the hub is written

STEP=0
CHANGES=0
MANIFEST=()
step() { STEP=$((STEP + 1)); printf 'install: [%d] %s\n' "$STEP" "$*"; }
note() { printf 'install:       %s\n' "$*"; }
changed() { CHANGES=$((CHANGES + 1)); note "$*"; }
live_only() { note "skipped under --root: $*"; }

yiyang() { PYTHONPATH=$PREFIX "$PYTHON" -m gateway "$@"; }

# -- files: written only when their content or mode differs ------------------------------------------

# The mode and owner a path must have: set (owners only on the live system) and noted in the manifest.
set_mode() {  # set_mode TARGET MODE OWNER GROUP
  local target=$1 mode=$2 owner=$3 group=$4 path
  path=$(at "$target")
  if [[ $(stat -c '%a' -- "$path") != "${mode#0}" ]]; then
    chmod "$mode" -- "$path"
    changed "$target: mode $mode"
  fi
  if ((LIVE)) && [[ $(stat -c '%U:%G' -- "$path") != "$owner:$group" ]]; then
    chown "$owner:$group" -- "$path"
    changed "$target: owner $owner:$group"
  fi
  MANIFEST+=("$mode $owner:$group $target")
}

parents() {  # parents PATH: the directories above PATH, as a package would make them (0755)
  (umask 022 && mkdir -p -- "$(dirname -- "$1")")
}

put_dir() {  # put_dir TARGET MODE OWNER GROUP
  local path
  path=$(at "$1")
  if [[ ! -d $path ]]; then
    parents "$path"
    mkdir -m "$2" -- "$path"
    changed "$1: created"
  fi
  set_mode "$@"
}

put_file() {  # put_file SOURCE TARGET MODE OWNER GROUP: SOURCE's bytes at TARGET, atomically
  local source=$1 target=$2 path tmp
  path=$(at "$target")
  parents "$path"
  if [[ -f $path ]] && cmp -s -- "$source" "$path"; then
    note "$target: unchanged"
  else
    tmp=$(mktemp -- "$path.XXXXXX")
    cat -- "$source" > "$tmp"
    chmod "$3" -- "$tmp"
    mv -f -- "$tmp" "$path"
    changed "$target: written"
  fi
  set_mode "$target" "$3" "$4" "$5"
}

remove() {  # remove TARGET...: files and directories of the hub
  local target path
  for target in "$@"; do
    path=$(at "$target")
    if [[ -e $path || -L $path ]]; then
      rm -rf -- "$path"
      changed "$target: removed"
    fi
  done
}

WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT

# read_secret FROM DEST WHAT: the bytes of file FROM (or standard input for -) into DEST, one line.
read_secret() {
  local from=$1 dest=$2 what=$3 value
  if [[ $from == - ]]; then
    if [[ -t 0 ]]; then
      read -rsp "install: $what (not shown): " value
      printf '\n' >&2
    else
      value=$(cat)
    fi
  else
    [[ -r $from ]] || fail "cannot read $what from $from"
    value=$(cat -- "$from")
  fi
  value=${value%$'\r'}
  [[ -n ${value//[[:space:]]/} ]] || fail "$what is empty"
  printf '%s\n' "$value" > "$dest"   # printf is a builtin: the value never reaches a command line
}

# -- the steps -----------------------------------------------------------------------------------------

check_arguments() {
  step "arguments"
  [[ -n $HUB_ID ]] || usage_error "--hub-id is required: the gateway id the platform issued"
  [[ -n $PLATFORM_URL ]] || usage_error "--platform-url is required: the platform's upload address"
  if [[ $SECRET_FROM == - && $FLEET_KEY_FROM == - ]]; then
    usage_error "only one of --secret-file and --fleet-key can come from standard input"
  fi
  if [[ -z $SECRET_FROM && ! -f $(at "$SECRET") ]]; then
    usage_error "--secret-file FILE (or - for standard input) is required: no platform secret is installed yet"
  fi
  if [[ ! -f $(at "$CONFIG") && ${#RESIDENTS[@]} -eq 0 ]]; then
    usage_error "--resident ID is required for a new hub: the pseudonymous resident id the platform issued"
  fi
  [[ $PREFIX =~ ^/[A-Za-z0-9._/-]+$ ]] || fail "the checkout's path $PREFIX has characters a systemd unit cannot take"
  # On the live system scripts/setup.sh (the next step) makes the virtualenv.
  ((LIVE)) || [[ -x $PYTHON ]] || fail "$PYTHON is missing: run scripts/setup.sh first (or set YIYANG_PYTHON)"
  note "hub $HUB_ID, platform $PLATFORM_URL, code in $PREFIX${ROOT:+, writing under $ROOT}"
}

install_packages() {
  step "Debian packages and the virtualenv (scripts/setup.sh)"
  if ((!LIVE)); then live_only "apt-get, scripts/setup.sh"; return; fi
  "$PREFIX/scripts/setup.sh" | sed 's/^/install:       /'
  if ! dpkg-query -W -f='${Status}' bluez 2>/dev/null | grep -q "install ok installed"; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bluez >/dev/null
    changed "bluez: installed"
  fi
  [[ -x $PYTHON ]] || fail "$PYTHON is missing after scripts/setup.sh"
  note "packages: in place"
}

service_user() {
  step "service user $SERVICE_USER (groups ${SERVICE_GROUPS[*]})"
  if ((!LIVE)); then
    live_only "useradd --system --user-group --groups ${SERVICE_GROUPS[*]} $SERVICE_USER"
    return
  fi
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
      --comment "yiyang home-care gateway" "$SERVICE_USER"
    changed "user $SERVICE_USER: created"
  fi
  local group
  for group in "${SERVICE_GROUPS[@]}"; do
    getent group "$group" >/dev/null || fail "group $group is missing (the $group group comes with its Debian package)"
    if ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$group"; then
      usermod -a -G "$group" "$SERVICE_USER"
      changed "user $SERVICE_USER: added to $group"
    fi
  done
  note "user $SERVICE_USER: in place"
}

directories() {
  step "directories"
  # /etc/yiyang as the unit's ConfigurationDirectory= leaves it (root, 0755): its files guard themselves.
  put_dir "$ETC" 0755 root root
  # The outbox, as the unit's StateDirectory= with StateDirectoryMode=0750 keeps it.
  put_dir "$DATA" 0750 "$SERVICE_USER" "$SERVICE_USER"
}

secrets() {
  step "platform secret and fleet key (never shown)"
  if [[ -n $SECRET_FROM ]]; then
    read_secret "$SECRET_FROM" "$WORK/secret" "the platform secret"
    put_file "$WORK/secret" "$SECRET" 0600 "$SERVICE_USER" "$SERVICE_USER"
  else
    note "$SECRET: kept"
    set_mode "$SECRET" 0600 "$SERVICE_USER" "$SERVICE_USER"
  fi
  # A public key needs no secrecy; what matters is that the daemon cannot replace its own trust anchor.
  if [[ -n $FLEET_KEY_FROM ]]; then
    read_secret "$FLEET_KEY_FROM" "$WORK/fleet.pub" "the fleet public key"
    [[ $FLEET_KEY_FROM == - ]] || cat -- "$FLEET_KEY_FROM" > "$WORK/fleet.pub"   # a PEM file as it is
    PYTHONPATH=$PREFIX "$PYTHON" -c 'import sys; from pathlib import Path
from gateway.fleet.signing import SignatureError, load_public_key
try:
    load_public_key(Path(sys.argv[1]))
except SignatureError as exc:
    sys.exit(f"install: the fleet key is not usable: {exc}")' "$WORK/fleet.pub"
    put_file "$WORK/fleet.pub" "$FLEET_KEY" 0640 root "$SERVICE_USER"
  elif [[ -f $(at "$FLEET_KEY") ]]; then
    note "$FLEET_KEY: kept"
    set_mode "$FLEET_KEY" 0640 root "$SERVICE_USER"
  else
    note "no fleet key (--fleet-key FILE): the fleet can neither configure nor command this hub"
  fi
  # The hub's own password on its broker: made here once, kept after.
  BROKER_PASSWORD_NEW=0
  if [[ ! -f $(at "$BROKER_PASSWORD") ]]; then
    head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 > "$WORK/broker.password"
    printf '\n' >> "$WORK/broker.password"
    put_file "$WORK/broker.password" "$BROKER_PASSWORD" 0600 "$SERVICE_USER" "$SERVICE_USER"
    BROKER_PASSWORD_NEW=1
  else
    note "$BROKER_PASSWORD: kept"
    set_mode "$BROKER_PASSWORD" 0600 "$SERVICE_USER" "$SERVICE_USER"
  fi
}

configuration() {
  step "configuration $CONFIG"
  local args=(config init --hub-id "$HUB_ID" --platform-url "$PLATFORM_URL" --data-dir "$DATA"
              --secret-file "$SECRET" --broker-user "$BROKER_USER" --broker-password-file "$BROKER_PASSWORD")
  local rid
  for rid in "${RESIDENTS[@]}"; do args+=(--resident "$rid"); done
  [[ ! -f $(at "$FLEET_KEY") ]] || args+=(--fleet-key-file "$FLEET_KEY")
  if [[ -f $(at "$CONFIG") ]]; then
    args+=(--update "$(at "$CONFIG")")
  fi
  yiyang "${args[@]}" > "$WORK/gateway.toml" || fail "the configuration was not written (the lines above say why)"
  put_file "$WORK/gateway.toml" "$CONFIG" 0640 root "$SERVICE_USER"
}

mosquitto_setup() {
  step "Mosquitto for the hub: LAN listener with passwords, the ACL, persistence"
  local before=$CHANGES restart=0
  put_file "$PREFIX/config/mosquitto-hub.conf.example" "$MOSQUITTO_CONF" 0644 root root
  ((CHANGES == before)) || restart=1
  local passwd
  passwd=$(at "$MOSQUITTO_PASSWD")
  parents "$passwd"
  [[ -f $passwd ]] || : > "$passwd"
  if ((BROKER_PASSWORD_NEW)) || ! grep -q "^$BROKER_USER:" -- "$passwd"; then
    # Hashed in a file of its own: mosquitto_passwd -b would show the password to `ps`, and -U
    # hashes every line of a file, so it must not see the accounts already there.
    printf '%s:%s\n' "$BROKER_USER" "$(head -n 1 -- "$(at "$BROKER_PASSWORD")")" > "$WORK/hub.passwd"
    mosquitto_passwd -U "$WORK/hub.passwd" 2>"$WORK/mosquitto_passwd.err" \
      || fail "mosquitto_passwd failed: $(cat -- "$WORK/mosquitto_passwd.err")"
    grep -v "^$BROKER_USER:" -- "$passwd" > "$WORK/passwd" || true
    cat -- "$WORK/hub.passwd" >> "$WORK/passwd"
    cat -- "$WORK/passwd" > "$passwd"
    changed "$MOSQUITTO_PASSWD: broker user $BROKER_USER set"
  else
    note "$MOSQUITTO_PASSWD: broker user $BROKER_USER unchanged"
  fi
  set_mode "$MOSQUITTO_PASSWD" 0600 mosquitto mosquitto
  yiyang broker-acl --config "$(at "$CONFIG")" > "$WORK/acl" || fail "the broker ACL was not made (the lines above say why)"
  put_file "$WORK/acl" "$MOSQUITTO_ACL" 0600 mosquitto mosquitto
  # Family accounts: one broker user per contact with app = true, made by `yiyang family add`
  # (contact, password and ACL in one go); the ACL above already names every such contact.
  note "family accounts: yiyang family add ID --resident RID --config $CONFIG (one broker user per family app)"
  if ((!LIVE)); then live_only "systemctl restart mosquitto"; return; fi
  if ((restart)); then
    systemctl restart mosquitto && changed "mosquitto: restarted (new listener settings)"
  elif ((CHANGES > before)); then
    systemctl reload-or-restart mosquitto && changed "mosquitto: reloaded (accounts or ACL)"
  fi
  systemctl enable --quiet mosquitto
}

udev_rules() {
  step "udev rules: stable names for USB-serial adapters (PL2303, CP210x, FTDI, CH340/CH341)"
  local before=$CHANGES
  put_file "$PREFIX/config/99-yiyang-serial.rules" "$UDEV_RULES" 0644 root root
  if ((!LIVE)); then live_only "udevadm control --reload; udevadm trigger"; return; fi
  if ((CHANGES > before)); then
    udevadm control --reload && udevadm trigger --subsystem-match=tty --action=add
    note "udev: rules reloaded; adapters plugged in now have their names: ls -l /dev/yiyang-serial-*"
  fi
}

systemd_unit() {
  step "systemd unit $UNIT"
  local before=$CHANGES
  sed "s|/opt/yiyang|$PREFIX|g" -- "$PREFIX/systemd/yiyang.service" > "$WORK/yiyang.service"
  put_file "$WORK/yiyang.service" "$UNIT" 0644 root root
  if ((!LIVE)); then live_only "systemctl daemon-reload; systemctl enable --now yiyang"; return; fi
  ((CHANGES == before)) || systemctl daemon-reload
}

start_service() {
  step "service: enable and start"
  if ((!LIVE)); then live_only "systemctl enable --now yiyang"; return; fi
  if ((!START)); then note "not started (--no-start)"; return; fi
  if ! systemctl is-enabled --quiet yiyang; then
    systemctl enable --quiet yiyang
    changed "yiyang: enabled"
  fi
  if ! systemctl is-active --quiet yiyang; then
    systemctl start yiyang
    changed "yiyang: started"
  elif ((DAEMON_FILES_CHANGED)); then
    systemctl restart yiyang
    changed "yiyang: restarted on the new files"
  else
    note "yiyang: running, unchanged"
  fi
}

run_doctor() {
  step "yiyang doctor"
  if ((!LIVE)); then live_only "yiyang doctor"; return 0; fi
  if ((!START)); then note "not run (--no-start)"; return 0; fi
  local waited=0
  # The daemon writes its status within seconds of starting; the doctor reads it.
  while [[ ! -f $DATA/status.json ]] && ((waited < 30)); do sleep 1; waited=$((waited + 1)); done
  if yiyang doctor --config "$CONFIG"; then
    return 0
  fi
  return 3
}

print_manifest() {
  printf 'install: manifest (mode owner:group path)%s\n' "$( ((LIVE)) || printf ' -- owners as they would be set')"
  local IFS=,
  printf 'install:   user %s (system, groups %s)\n' "$SERVICE_USER" "${SERVICE_GROUPS[*]}"
  printf '%s\n' "${MANIFEST[@]}" | sort -k3 -u | sed 's/^/install:   /'
}

pending_records() {  # how many records wait for the platform in the outbox (0 without one)
  [[ -f $(at "$DATA/outbox.sqlite") ]] || { printf '0'; return; }
  local config
  config=$(at "$CONFIG")
  [[ -f $config ]] || fail "$CONFIG is gone: cannot read the outbox's state; remove $DATA by hand if you mean it"
  sed "s|^data_dir = .*|data_dir = \"$(at "$DATA")\"|" -- "$config" > "$WORK/queue.toml"
  local json
  if ((LIVE)); then
    # As the service user: a root process opening the database could leave root-owned files behind.
    json=$(runuser -u "$SERVICE_USER" -- env PYTHONPATH="$PREFIX" "$PYTHON" -m gateway queue --json \
           --config "$CONFIG") || true
  else
    json=$(yiyang queue --json --config "$WORK/queue.toml") || true
  fi
  printf '%s' "$json" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["pending"])'
}

uninstall() {
  step "service: stop and disable"
  if ((LIVE)) && [[ -f $UNIT ]]; then
    systemctl disable --now --quiet yiyang || true
    changed "yiyang: stopped and disabled"
  elif ((!LIVE)); then
    live_only "systemctl disable --now yiyang"
  fi
  step "remove the unit, the udev rules and the broker listener"
  remove "$UNIT" "$UDEV_RULES" "$MOSQUITTO_CONF"
  if ((LIVE)); then
    systemctl daemon-reload
    udevadm control --reload || true
    systemctl restart mosquitto || true
  fi
  if ((!PURGE)); then
    step "kept: the configuration, the secret and the data"
    note "$ETC, $DATA (the outbox: records not yet uploaded), $MOSQUITTO_PASSWD, $MOSQUITTO_ACL"
    note "to delete them too: scripts/install.sh --uninstall --purge"
    return
  fi
  step "purge: the configuration, the secret, the data, the broker's accounts, the user"
  local pending
  pending=$(pending_records)
  if ((pending > 0 && !FORCE)); then
    fail "$pending record(s) in $DATA have not reached the platform: nothing was purged. Let the hub upload them (yiyang status), or run again with --force to delete them"
  fi
  remove "$ETC" "$DATA" "$MOSQUITTO_PASSWD" "$MOSQUITTO_ACL"
  if ((LIVE)) && getent passwd "$SERVICE_USER" >/dev/null; then
    userdel "$SERVICE_USER"
    changed "user $SERVICE_USER: removed"
  elif ((!LIVE)); then
    live_only "userdel $SERVICE_USER"
  fi
}

summary() {
  if ((CHANGES == 0)); then
    printf 'install: nothing changed: everything was already in place\n'
  else
    printf 'install: %d change(s)\n' "$CHANGES"
  fi
}

if ((UNINSTALL)); then
  uninstall
  summary
  exit 0
fi

check_arguments
install_packages
service_user
# A running daemon is restarted when its own files changed (directories, secret, keys, configuration,
# unit), not for the broker's or udev's.
before=$CHANGES
directories
secrets
configuration
DAEMON_FILES_CHANGED=$((CHANGES - before))
mosquitto_setup
udev_rules
before=$CHANGES
systemd_unit
DAEMON_FILES_CHANGED=$((DAEMON_FILES_CHANGED + CHANGES - before))
start_service
status=0
run_doctor || status=$?
print_manifest
summary
if ((status == 3)); then
  printf 'install: installed, but yiyang doctor found problems: fix each as it says, then run yiyang doctor again\n'
fi
exit "$status"
