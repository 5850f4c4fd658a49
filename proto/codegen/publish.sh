#!/usr/bin/env bash
# Snapshot the contracts as published: proto/published.binpb is the buf image check.sh compares
# proto/ against to refuse breaking changes (FILE rules). Commit the result.
#
#   bash proto/codegen/publish.sh
#
# Run it once the contracts are first released, and again after each compatible change is merged,
# so that later edits are checked against everything that may already be in stored events.
set -euo pipefail
# --- shared by generate.sh, check.sh and publish.sh (keep the three copies identical) ---------------
# The repository root comes from this file's location, so the script works from any directory; the
# tools come from the project venv (.venv, created by `make install`), else from PATH.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GENERATED_REL="libs/deksdenflow_core/src/deksdenflow_core/contracts/generated"
PUBLISHED_REL="proto/published.binpb"
tool() {
    if [[ -x "$ROOT/.venv/bin/$1" ]]; then
        echo "$ROOT/.venv/bin/$1"
    elif command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    else
        echo "proto: $1 not found in $ROOT/.venv/bin or on PATH: run make install" >&2
        return 1
    fi
}
BUF="$(tool buf)" || exit 1
RUFF="$(tool ruff)" || exit 1
# ------------------------------------------------------------------------------------------------------

cd "$ROOT"
"$BUF" build proto --exclude-source-info -o "$PUBLISHED_REL"
echo "proto: wrote $PUBLISHED_REL"
