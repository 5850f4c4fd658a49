#!/bin/sh
# deksdenflow starter CI script: bootstrap. Installed by onboarding and never overwritten: make it yours.
# It runs the first matching tool it finds, and succeeds quietly when the project has none.
set -eu
cd "$(dirname "$0")/../.."
if [ -f uv.lock ]; then exec uv sync --locked; fi
if [ -f package-lock.json ]; then exec npm ci; fi
if [ -f requirements.txt ]; then exec python3 -m pip install -r requirements.txt; fi
echo "bootstrap: nothing to install"
