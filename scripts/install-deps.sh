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
  postgresql    # the PostgreSQL backend's tests start a real server (initdb + postgres, as nobody)
  debootstrap   # throwaway Debian chroots for real apt resource tests
  util-linux    # lsblk: inventory cross-checks
  pkg-config    # -sys crates
  ca-certificates
  chromium        # browser test of the dashboard (server/tests/browser.rs)
  chromium-driver # chromedriver: the W3C WebDriver the browser test speaks to
  poppler-utils # pdftotext: the browser test reads the audit report and passport chromium printed to PDF
  binutils      # strip: cargo-deb strips the packaged binaries (packaging/build-debs)
  dpkg-dev      # dpkg-shlibdeps: cargo-deb's $auto dependencies
  systemd       # systemd-analyze verify/security on the packaged units (packaging test)
  python3-venv  # a private virtualenv for schemathesis (server/tests/schemathesis.rs)
  lintian       # the packages must be free of lintian errors (packaging test)
  apt-utils     # apt-ftparchive: packaging/build-repo makes the signed APT repository
  gnupg         # gpg: signs that repository's Release file
  fusioninventory-agent # GLPI parity test: our GLPI export has every section it fills (agent/tests/inventory_glpi.rs)
  curl          # tests/tests/e2e_inventory_delta.rs reads /metrics and the admin API over TLS
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches axe-core for the browser test; NodeSource's nodejs ships it too.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

# axe-core (accessibility rules), pinned by tests/browser/package-lock.json.
install_axe() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ ! -f "$here/tests/browser/node_modules/axe-core/axe.min.js" ]; then
    echo "install-deps: installing axe-core (npm ci in tests/browser)"
    npm ci --prefix "$here/tests/browser" --no-audit --no-fund
  fi
}

# schemathesis (OpenAPI conformance fuzzing), pinned by
# tests/schemathesis/requirements.txt, in a private virtualenv from PyPI.
install_schemathesis() {
  local here venv
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="$here/tests/schemathesis/.venv"
  if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    echo "install-deps: installing schemathesis (pip, into tests/schemathesis/.venv)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      -r "$here/tests/schemathesis/requirements.txt"
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  install_axe
  install_schemathesis
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_axe
install_schemathesis
