#!/usr/bin/env bash
# Installs the Debian packages that nird-fleet's build and tests need.
# Safe to run again; does nothing when everything is already there.
# Needs root (or sudo) for apt-get.
set -euo pipefail

# One package a line: what the tests run for real.
packages=(
  minisign      # interop tests: our signatures verify with the reference CLI, and back
  dbus          # dbus-daemon: private buses for UDisks2 / UPower / systemd / logind tests
  sqlite3       # inspecting the server database in tests and by hand
  debootstrap   # throwaway Debian chroots for real apt resource tests
  util-linux    # lsblk: inventory cross-checks
  pkg-config    # -sys crates
  ca-certificates
  binutils      # strip: cargo-deb strips the packaged binaries (packaging/build-debs)
  dpkg-dev      # dpkg-shlibdeps: cargo-deb's $auto dependencies
  systemd       # systemd-analyze verify/security on the packaged units (packaging test)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
