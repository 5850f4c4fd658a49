#!/usr/bin/env bash
# Contract checks (what `make proto-check` runs), all offline:
#   1. buf lint (STANDARD rules, see proto/buf.yaml);
#   2. drift: the committed bindings are exactly what generate.sh produces from proto/;
#   3. breaking: proto/ is wire- and JSON-compatible with the published snapshot proto/published.binpb
#      (FILE rules).
# Every check runs; the script exits non-zero if any failed.
set -uo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"
failed=()

echo "proto: lint"
if ! "$BUF" lint proto; then
    echo "proto: FAIL lint: fix the findings above (buf STANDARD rules)" >&2
    failed+=(lint)
fi

echo "proto: drift"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if ! bash proto/codegen/generate.sh "$tmp"; then
    echo "proto: FAIL drift: the bindings could not be generated (see the plugin error above)" >&2
    failed+=(drift)
elif ! diff -r -u -N -x __pycache__ "$GENERATED_REL" "$tmp/$GENERATED_REL"; then
    echo "proto: FAIL drift: bindings drifted from proto/: run make proto" >&2
    failed+=(drift)
fi

echo "proto: breaking"
if [[ ! -f "$PUBLISHED_REL" ]]; then
    echo "proto: FAIL breaking: no published snapshot $PUBLISHED_REL: run bash proto/codegen/publish.sh" >&2
    failed+=(breaking)
elif ! "$BUF" breaking proto --against "$PUBLISHED_REL"; then
    echo "proto: FAIL breaking: proto/ breaks compatibility with the published contracts" \
        "($PUBLISHED_REL): stored events and running readers depend on them. Add a new field or" \
        "message instead of removing, renumbering, retyping or renaming one" >&2
    failed+=(breaking)
fi

if ((${#failed[@]})); then
    echo "proto: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "proto: OK"
