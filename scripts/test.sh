#!/usr/bin/env bash
# The project's one test command: installs what the tests need, then runs
# every test of the workspace. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The end-to-end tests (tests/) run the built debug binaries: build them first.
cargo build --workspace --bins
cargo test --workspace
