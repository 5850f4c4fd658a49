#!/bin/sh
# deksdenflow starter CI script: typecheck. Installed by onboarding and never overwritten: make it yours.
# It runs the first matching tool it finds, and succeeds quietly when the project has none.
set -eu
cd "$(dirname "$0")/../.."
if [ -f pyproject.toml ] && command -v mypy >/dev/null 2>&1; then exec mypy .; fi
if [ -f tsconfig.json ] && command -v npx >/dev/null 2>&1; then exec npx tsc --noEmit; fi
echo "typecheck: no type checker configured"
