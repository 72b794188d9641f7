# shellcheck shell=bash
# Debian 12 chroots of any architecture, for building and testing the package: created once by
# mmdebstrap as a tarball in the cache, keyed by a hash of what went into it, and unpacked into
# a throwaway directory for each use. Foreign architectures run through qemu-user and binfmt_misc.
# Sourced by packaging/build-deb and the package tests; needs root.

shopt -s inherit_errexit  # a failing step inside $(...) fails the build too

SUITE=bookworm
CACHE=${TOTPD_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/totpd-deb}
# The host's tools for this: mmdebstrap makes chroots, qemu-user-static runs foreign ones.
HOST_PACKAGES=(mmdebstrap arch-test qemu-user-static binfmt-support dpkg-dev)
# What builds the venv: Debian's python3, and what compiles systemd-python (and, on armhf,
# argon2-cffi-bindings, for which PyPI has no wheel).
# shellcheck disable=SC2034 # used by the scripts that source this file
BUILD_PACKAGES=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev ca-certificates)
# shellcheck disable=SC2034
BUILD_PACKAGES_armhf=(cmake ninja-build libffi-dev)

VENV=/opt/totpd/venv  # where the package has it; built there, as paths in a venv are absolute

log() { echo "==> $*" >&2; }
die() { echo "${0##*/}: $*" >&2; exit 1; }

host_packages() { # Installs HOST_PACKAGES and any further packages named, when missing.
  local missing=() pkg
  for pkg in "${HOST_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  log "installing on this host: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

binfmt() { # ARCH: lets this kernel run ARCH's binaries (a no-op for the host's own).
  local arch=$1 emulator
  [[ $arch != "$(dpkg --print-architecture)" ]] || return 0
  case $arch in
    arm64) emulator=qemu-aarch64 ;;
    armhf) emulator=qemu-arm ;;
    *) die "no emulator known for $arch" ;;
  esac
  mountpoint -q /proc/sys/fs/binfmt_misc ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable "$emulator" 2>/dev/null || true
  [[ -e /proc/sys/fs/binfmt_misc/$emulator ]] ||
    die "binfmt_misc has no $emulator (is qemu-user-static installed?)"
}

chroot_tarball() { # NAME ARCH PACKAGE...: prints the cached tarball of that chroot, made if missing.
  local name=$1 arch=$2
  shift 2
  local key tarball
  key=$(printf '%s\n' "$SUITE" "$arch" "${TOTPD_DEB_MIRROR:-}" "$@" | sha256sum | cut -c1-12)
  tarball=$CACHE/$name-$SUITE-$arch-$key.tar
  if [[ ! -f $tarball ]]; then
    binfmt "$arch"
    mkdir -p "$CACHE"
    log "creating the $SUITE $arch chroot $name (once; cached as ${tarball##*/})"
    local mirror=()
    [[ -z ${TOTPD_DEB_MIRROR:-} ]] || mirror=("$TOTPD_DEB_MIRROR")
    local include=()
    (($#)) && include=(--include="$(IFS=,; echo "$*")")
    mmdebstrap --quiet --variant=apt --format=tar --arch="$arch" "${include[@]}" \
      "$SUITE" "$tarball.new" "${mirror[@]}" >&2
    mv "$tarball.new" "$tarball"
    # Older tarballs of the same chroot are stale now.
    find "$CACHE" -maxdepth 1 -name "$name-$SUITE-$arch-*.tar" ! -name "${tarball##*/}" -delete
  fi
  echo "$tarball"
}

CHROOTS=()
chroot_cleanup() { # Unmounts and removes every chroot unpacked by this process.
  local root
  for root in "${CHROOTS[@]}"; do
    [[ -n $root && -d $root ]] || continue
    umount -R "$root/proc" "$root/sys" "$root/dev" "$root/root/.cache/pip" 2>/dev/null || true
    rm -rf --one-file-system "$root"
  done
  CHROOTS=()
}

chroot_unpack() { # TARBALL ARCH [TARBALL...]: a fresh chroot from the tarballs, in $CHROOT.
  local base=$1 arch=$2 root
  shift 2
  binfmt "$arch"
  root=$(mktemp -d "${TMPDIR:-/tmp}/totpd-chroot.XXXXXX")
  CHROOTS+=("$root")
  # shellcheck disable=SC2034 # read by the caller
  CHROOT=$root
  tar -xf "$base" -C "$root"
  local extra
  for extra in "$@"; do tar -xf "$extra" -C "$root"; done
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # The host's trust store: a TLS proxy this host trusts is trusted by pip in the chroot too.
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
}

chroot_pip_cache() { # ROOT ARCH: keeps pip's downloads across builds (it checks the hashes).
  mkdir -p "$CACHE/pip-$2" "$1/root/.cache/pip"
  mount --bind "$CACHE/pip-$2" "$1/root/.cache/pip"
}

in_chroot() { # ROOT COMMAND...: runs COMMAND in the chroot with a clean environment.
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$@"
}

stage_source() { # DIR: a copy of the files git knows of (committed or not, never ignored ones).
  mkdir -p "$1"
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
      xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
      tar --null -T - -cf - | tar -xf - -C "$1"
  else
    tar --exclude=./.venv --exclude=./dist -cf - . | tar -xf - -C "$1"
  fi
}

# ARCH BUILD_TARBALL LOCK [PIP_OPTION...]: the cached tarball of $VENV holding exactly LOCK
# (hashes required; whatever builds from source builds with requirements/build.txt's hashed
# tools, no others), made in the chroot if missing; its path in $LOCKED_VENV.
locked_venv() {
  local arch=$1 base=$2 lock=$3 key tarball root name
  shift 3
  name=$(basename "$lock" .txt)
  key=$({ echo "${base##*/} $*"; declare -f locked_venv; cat requirements/build.txt "$lock"; } |
    sha256sum | cut -c1-12)
  tarball=$CACHE/venv-$name-$arch-$key.tar
  if [[ ! -f $tarball ]]; then
    log "$arch: installing $lock into $VENV (once; cached as ${tarball##*/})"
    chroot_unpack "$base" "$arch"
    root=$CHROOT
    chroot_pip_cache "$root" "$arch"
    mkdir -p "$root/tmp/requirements"
    cp requirements/build.txt "$lock" "$root/tmp/requirements/"
    in_chroot "$root" python3 -m venv "$VENV"
    local pip=("$VENV/bin/pip" install --quiet --no-deps --require-hashes)
    in_chroot "$root" "${pip[@]}" -r /tmp/requirements/build.txt
    in_chroot "$root" "${pip[@]}" --no-build-isolation --use-pep517 "$@" -r "/tmp/requirements/$name.txt"
    tar -C "$root" -cf "$tarball.new" "${VENV#/}"
    mv "$tarball.new" "$tarball"
    find "$CACHE" -maxdepth 1 -name "venv-$name-$arch-*.tar" ! -name "${tarball##*/}" -delete
    chroot_cleanup
  fi
  # shellcheck disable=SC2034 # read by the caller
  LOCKED_VENV=$tarball
}
