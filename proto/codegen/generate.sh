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
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

out_root="$(mkdir -p "${1:-$ROOT}" && cd "${1:-$ROOT}" && pwd)"
out="$out_root/$GENERATED_REL"

cd "$ROOT"  # buf.gen.yaml paths (plugin, input) are relative to the repository root
rm -rf "$out"
"$BUF" generate --template proto/buf.gen.yaml -o "$out_root"
"$RUFF" format --isolated --line-length 110 --target-version py311 --quiet "$out"
