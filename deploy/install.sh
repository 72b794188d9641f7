#!/usr/bin/env bash
# Installs totpd as a hardened systemd service on Debian 12 or Raspberry Pi OS (bookworm):
# the system user and directories, a virtualenv in /opt/totpd, the config in /etc/totpd,
# the sealed credentials in /etc/credstore.encrypted, the units, and the totpd-admin helper.
# Every step is idempotent: run it again from a newer checkout to upgrade.
#
#   sudo deploy/install.sh [--no-apt] [--no-venv] [--no-start] [--wheelhouse DIR]
#                          [--signature-secret-file FILE] [--with-key auto|host|tpm2|host+tpm2]
#
# The Vonage signature secret is read from FILE, else from a no-echo prompt on a terminal,
# else from one line of standard input; it only ever travels through a pipe.
# --wheelhouse DIR installs offline: pip takes every package from the wheels in DIR (made on
# a connected machine of the same architecture and Debian release) and nothing is compiled.
# TOTPD_INSTALL_ROOT=DIR stages the whole install under DIR instead of / (image builds,
# tests): no apt, no daemon-reload, no start; units are enabled offline.
set -euo pipefail
umask 022

SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$SOURCE/deploy
ROOT=${TOTPD_INSTALL_ROOT:-}
PREFIX=/opt/totpd
CONFIG=/etc/totpd/totpd.toml
APT_PACKAGES=(python3-venv python3-dev gcc pkg-config libsystemd-dev libffi-dev)
# 32-bit ARM builds argon2-cffi-bindings from source (PyPI has no wheel): CMake and Ninja.
case $(dpkg --print-architecture) in armhf | armel) APT_PACKAGES+=(cmake ninja-build) ;; esac

apt=1 venv=1 start=1 secret_file="" with_key=auto wheelhouse=""

die() { echo "install.sh: $*" >&2; exit 1; }
step() { echo "==> $*"; }

while (($#)); do
  case $1 in
    --no-apt) apt=0 ;;
    --no-venv) venv=0 ;;
    --no-start) start=0 ;;
    --signature-secret-file) secret_file=${2:?--signature-secret-file needs a FILE}; shift ;;
    --with-key) with_key=${2:?--with-key needs a value}; shift ;;
    --wheelhouse) wheelhouse=${2:?--wheelhouse needs a DIR}; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case $with_key in auto | host | tpm2 | host+tpm2) ;; *) die "--with-key: auto, host, tpm2 or host+tpm2" ;; esac
pip_source=()
if [[ -n $wheelhouse ]]; then
  [[ -d $wheelhouse ]] || die "--wheelhouse: $wheelhouse is not a directory"
  pip_source=(--no-index --find-links "$(realpath "$wheelhouse")")
  APT_PACKAGES=(python3-venv) # wheels only: nothing to compile
fi

[[ $(id -u) -eq 0 ]] || die "run as root (sudo $0)"
if [[ -n $ROOT ]]; then
  ROOT=$(realpath -m "$ROOT")
  [[ $ROOT != / ]] || ROOT=""
fi
if [[ -n $ROOT ]]; then
  apt=0 start=0
fi
command -v systemd-creds >/dev/null || die "systemd-creds not found: totpd needs systemd 250 or newer (Debian 12)"
systemd_version=$(systemctl --version | awk 'NR == 1 { print $2 }')
((systemd_version >= 250)) || die "systemd $systemd_version is too old: totpd needs 250 or newer"

# 1. Debian packages needed to build the Python dependencies (systemd-python, argon2-cffi).
if ((apt)); then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# 2. The system user and the directories (sysusers.d, tmpfiles.d), applied now and at boot.
step "user totpd and directories"
install -D -m 0644 "$DEPLOY/sysusers.d/totpd.conf" "$ROOT/etc/sysusers.d/totpd.conf"
install -D -m 0644 "$DEPLOY/tmpfiles.d/totpd.conf" "$ROOT/etc/tmpfiles.d/totpd.conf"
root_opt=()
[[ -z $ROOT ]] || root_opt=(--root="$ROOT")
systemd-sysusers "${root_opt[@]}" totpd.conf
systemd-tmpfiles "${root_opt[@]}" --create totpd.conf

# 3. The virtualenv: Debian's python3, the exact dependencies of the hashed lock (the core
# alone on 32-bit ARM, where PyPI has no wheels for the extras), and totpd from this checkout.
# Everything that is built from source is built with the hashed build tools, no others.
if ((venv)); then
  step "virtualenv in $PREFIX/venv"
  lock=$SOURCE/requirements/lock.txt
  case $(dpkg --print-architecture) in armhf | armel) lock=$SOURCE/requirements/lock-core.txt ;; esac
  [[ -x $ROOT$PREFIX/venv/bin/python ]] || python3 -m venv "$ROOT$PREFIX/venv"
  pip=("$ROOT$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps)
  # Offline (--wheelhouse), every package comes from the wheels in DIR, hashes still checked.
  "${pip[@]}" "${pip_source[@]}" --require-hashes -r "$SOURCE/requirements/build.txt"
  "${pip[@]}" "${pip_source[@]}" --require-hashes --no-build-isolation -r "$lock"
  "${pip[@]}" "${pip_source[@]}" --no-build-isolation --upgrade "$SOURCE"
  # ProtectSystem=strict keeps /opt read-only for the service: compile bytecode now.
  "$ROOT$PREFIX/venv/bin/python" -m compileall -q "$ROOT$PREFIX/venv/lib" >/dev/null || true
fi
# The documentation, where the unit's Documentation= points (and the admin page's picture).
for doc in "$SOURCE"/{README.md,THREAT_MODEL.md,CHANGELOG.md} "$SOURCE"/docs/*.{md,png}; do
  [[ ! -f $doc ]] || install -D -m 0644 "$doc" "$ROOT$PREFIX/${doc#"$SOURCE"/}"
done

# 4. The config: installed once, never overwritten (the admin edits it).
if [[ ! -f $ROOT$CONFIG ]]; then
  step "config $CONFIG (edit server.public_url and vonage.application_id)"
  install -D -m 0640 -g "$(stat -c %g "$ROOT/etc/totpd")" "$DEPLOY/totpd.toml" "$ROOT$CONFIG"
else
  step "config $CONFIG kept"
fi

# 5. Credentials, sealed with systemd-creds: the same script the Debian package points to.
seal_args=(--with-key "$with_key")
[[ -z $secret_file ]] || seal_args+=(--signature-secret-file "$secret_file")
TOTPD_INSTALL_ROOT=$ROOT "$DEPLOY/totpd-seal-credentials" "${seal_args[@]}"

# 6. The units and the admin helper.
step "units"
for unit in totpd.service totpd.socket totpd-metrics.socket; do
  install -D -m 0644 "$DEPLOY/$unit" "$ROOT/etc/systemd/system/$unit"
done
for helper in totpd-admin totpd-seal-credentials; do
  install -D -m 0755 "$DEPLOY/$helper" "$ROOT/usr/local/sbin/$helper"
done
systemd-tmpfiles "${root_opt[@]}" --create totpd.conf
if [[ -n $ROOT ]]; then
  systemctl --root="$ROOT" enable totpd.service
  step "staged under $ROOT"
  exit 0
fi
systemctl daemon-reload
systemctl enable totpd.service

# 7. Check the config as the service will see it, then start.
if ((start)); then
  step "checking the config (totpd-admin check-config)"
  if /usr/local/sbin/totpd-admin check-config; then
    systemctl restart totpd.service
    systemctl --no-pager --lines=5 status totpd.service || true
  else
    echo "install.sh: fix $CONFIG, then: systemctl start totpd" >&2
    exit 1
  fi
fi
step "done; security exposure: $(systemd-analyze security totpd.service 2>/dev/null | tail -1 || echo n/a)"
