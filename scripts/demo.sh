#!/usr/bin/env bash
# Runs a demo nird-fleet on this machine, on the embedded defaults:
#   1. installs the Debian packages the project needs, builds both binaries;
#   2. initialises a server in ./nird-data (SQLite, self-signed CA, an `admin`
#      account whose password is printed once) — only the first time;
#   3. adds a demo school (UAI 0620056Z) if it is not there yet;
#   4. serves the agent API on https://127.0.0.1:8443;
#   5. enrols a local agent whose state lives in ./nird-data/agent-root (its
#      inventory reads this machine's /sys, /proc and dpkg database through
#      links, so nothing is written outside ./nird-data), runs its first
#      check-in and shows what the server saw;
#   6. keeps serving until Ctrl-C.
# Safe to run again: an existing ./nird-data and an enrolled agent are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR="${NIRD_DATA_DIR:-./nird-data}"
LISTEN="${NIRD_LISTEN:-127.0.0.1:8443}"
DEMO_UAI="0620056Z"
AGENT_ROOT="$DATA_DIR/agent-root"

scripts/install-deps.sh
cargo build --release -p nird-server -p nird-agent
server=target/release/nird-server
agent=target/release/nird-agent

# Prints "already initialised" (and changes nothing) on later runs.
"$server" init --data-dir "$DATA_DIR" --hostname localhost --hostname 127.0.0.1

if ! "$server" school list --data-dir "$DATA_DIR" | grep -q "^$DEMO_UAI"; then
  "$server" school add --data-dir "$DATA_DIR" --uai "$DEMO_UAI" \
    --name "École élémentaire de démonstration" --commune "Calais" \
    --academie "Lille" --kind ecole
fi

# The dashboard's admin password is printed once by init: give it a fresh
# one on every demo run so the login below always works.
admin_password=$("$server" user reset-password --data-dir "$DATA_DIR" admin | sed 's/.* : //')

# The maintainers' side, for the demo only: a signing key, the first
# keyring (which keys sign profiles), one harmless signed profile and the
# signed catalogue index. Real maintainers do this offline
# (profiles/README.md); agents take the keyring at enrolment.
MAINT="$DATA_DIR/demo-maintainer"
if ! "$server" keyring show --data-dir "$DATA_DIR" | grep -q "^Trousseau version"; then
  [ -e "$MAINT/nird.key" ] || "$server" profile keygen --out "$MAINT" --no-password
  [ -e "$MAINT/keyring.toml" ] || "$server" profile keyring new --key "$MAINT/nird.pub" \
    --expires "$(date -u -d '+1 year' +%F)" --description "Trousseau de démonstration" \
    --out "$MAINT/keyring.toml"
  [ -e "$MAINT/keyring.toml.minisig" ] || "$server" profile keyring sign --key "$MAINT/nird.key" "$MAINT/keyring.toml"
  "$server" keyring publish --data-dir "$DATA_DIR" "$MAINT/keyring.toml"
fi
if ! "$server" profile list --data-dir "$DATA_DIR" | grep -q "demo-bienvenue"; then
  mkdir -p "$MAINT/profiles"
  cat > "$MAINT/profiles/demo-bienvenue.toml" <<PROFILE
[profile]
name = "demo-bienvenue"
version = 1
expires = $(date -u -d '+300 days' +%F)
description = "Démonstration : un mot d'accueil sur les postes de l'école"
audience = "école"

[[file]]
path = "/etc/ecole/bienvenue.txt"
content = "Bienvenue sur un poste reconditionné NIRD.\\n"
mode = "0644"
PROFILE
  "$server" profile sign --key "$MAINT/nird.key" "$MAINT/profiles/demo-bienvenue.toml"
  "$server" profile publish --data-dir "$DATA_DIR" "$MAINT/profiles/demo-bienvenue.toml"
  "$server" profile index --catalogue "$MAINT/profiles" --key "$MAINT/nird.key" \
    --out "$MAINT/profiles/index.toml"
  "$server" index publish --data-dir "$DATA_DIR" "$MAINT/profiles/index.toml"
  "$server" assign --data-dir "$DATA_DIR" --school "$DEMO_UAI" demo-bienvenue
fi

"$server" serve --data-dir "$DATA_DIR" --listen "$LISTEN" &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null' EXIT INT TERM

# Wait until the server accepts connections (at most 10 s).
host="${LISTEN%:*}"; port="${LISTEN##*:}"
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "le serveur n'a pas démarré" >&2; exit 1; fi
  sleep 0.1
done

# A local agent root: state under ./nird-data, hardware seen through links.
if [ ! -d "$AGENT_ROOT" ]; then
  mkdir -p "$AGENT_ROOT/etc" "$AGENT_ROOT/var/lib"
  ln -s /sys "$AGENT_ROOT/sys"
  ln -s /proc "$AGENT_ROOT/proc"
  ln -s /var/lib/dpkg "$AGENT_ROOT/var/lib/dpkg"
  for f in os-release machine-id hostname; do
    [ -e "/etc/$f" ] && cp "/etc/$f" "$AGENT_ROOT/etc/$f"
  done
fi

if [ ! -e "$AGENT_ROOT/etc/nird/agent.toml" ]; then
  token=$("$server" token create --data-dir "$DATA_DIR" --school "$DEMO_UAI" --uses 1)
  fingerprint=$("$server" fingerprint --data-dir "$DATA_DIR")
  "$agent" enroll --root "$AGENT_ROOT" --server "https://$LISTEN" \
    --token "$token" --ca-fingerprint "$fingerprint"
fi

echo
echo "== Premier contact de l'agent =="
"$agent" run --once --root "$AGENT_ROOT"
"$agent" status --root "$AGENT_ROOT"
echo
echo "== Machines vues par le serveur =="
"$server" machine list --data-dir "$DATA_DIR"
echo
echo "Serveur : https://$LISTEN (Ctrl-C pour arrêter)"
echo "Tableau de bord : https://$LISTEN/  — identifiant : admin, mot de passe : $admin_password"
echo "  (le navigateur doit faire confiance à l'autorité de certification $DATA_DIR/tls/ca.crt)"
echo "Empreinte de l'autorité de certification (pour les agents) : $("$server" fingerprint --data-dir "$DATA_DIR")"
echo "Inventaire de cette machine : $agent inventory"
wait "$server_pid"
