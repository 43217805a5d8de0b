#!/usr/bin/env bash
# Runs a demo nird-fleet server on this machine:
#   1. installs the Debian packages the project needs,
#   2. builds nird-server,
#   3. initialises a server in ./nird-data (SQLite, self-signed CA, an
#      `admin` account whose password is printed once) — only the first time,
#   4. adds a demo school (UAI 0620056Z) if it is not there yet,
#   5. serves the agent API on https://127.0.0.1:8443 until Ctrl-C.
# Safe to run again: an existing ./nird-data is kept as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR="${NIRD_DATA_DIR:-./nird-data}"
LISTEN="${NIRD_LISTEN:-127.0.0.1:8443}"
DEMO_UAI="0620056Z"

scripts/install-deps.sh
cargo build --release -p nird-server
server=target/release/nird-server

# Prints "already initialised" (and changes nothing) on later runs.
"$server" init --data-dir "$DATA_DIR" --hostname localhost --hostname 127.0.0.1

if ! "$server" school list --data-dir "$DATA_DIR" | grep -q "^$DEMO_UAI"; then
  "$server" school add --data-dir "$DATA_DIR" --uai "$DEMO_UAI" \
    --name "École élémentaire de démonstration" --commune "Calais" \
    --academie "Lille" --kind ecole
fi

echo
echo "Empreinte de l'autorité de certification (pour les agents) :"
"$server" fingerprint --data-dir "$DATA_DIR"
echo "Créer un jeton d'inscription :"
echo "  $server token create --data-dir $DATA_DIR --school $DEMO_UAI"
echo

exec "$server" serve --data-dir "$DATA_DIR" --listen "$LISTEN"
