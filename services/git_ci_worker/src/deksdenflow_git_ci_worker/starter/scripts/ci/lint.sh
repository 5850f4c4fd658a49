#!/bin/sh
# deksdenflow starter CI script: lint. Installed by onboarding and never overwritten: make it yours.
# It runs the first matching tool it finds, and succeeds quietly when the project has none.
set -eu
cd "$(dirname "$0")/../.."
if [ -f pyproject.toml ] && command -v ruff >/dev/null 2>&1; then exec ruff check .; fi
if [ -f package.json ] && grep -q '"lint"' package.json; then exec npm run lint; fi
echo "lint: no linter configured"
