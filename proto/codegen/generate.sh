#!/usr/bin/env bash
# Regenerate the Python bindings of proto/ (what `make proto` runs).
#
#   bash proto/codegen/generate.sh [OUTPUT_ROOT]
#
# Writes libs/deksdenflow_core/src/deksdenflow_core/contracts/generated/ under OUTPUT_ROOT (default: the
# repository root; check.sh passes a temporary directory). The old output is deleted first, so
# bindings of deleted .proto files disappear. The result is formatted with ruff using fixed settings
# (--isolated), so it is byte-for-byte the same wherever it is generated. Works offline.
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

out_root="$(mkdir -p "${1:-$ROOT}" && cd "${1:-$ROOT}" && pwd)"
out="$out_root/$GENERATED_REL"

cd "$ROOT"  # buf.gen.yaml paths (plugin, input) are relative to the repository root
rm -rf "$out"
"$BUF" generate --template proto/buf.gen.yaml -o "$out_root"
"$RUFF" format --isolated --line-length 110 --target-version py311 --quiet "$out"
