#!/usr/bin/env bash
# Snapshot the contracts as published: proto/published.binpb is the buf image check.sh compares
# proto/ against to refuse breaking changes (FILE rules). Commit the result.
#
#   bash proto/codegen/publish.sh
#
# Run it once the contracts are first released, and again after each compatible change is merged,
# so that later edits are checked against everything that may already be in stored events.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"
"$BUF" build proto --exclude-source-info -o "$PUBLISHED_REL"
echo "proto: wrote $PUBLISHED_REL"
