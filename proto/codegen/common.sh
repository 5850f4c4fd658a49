# Sourced by generate.sh, check.sh and publish.sh.
# The repository root comes from this file's location, so the scripts work from any directory; the
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
