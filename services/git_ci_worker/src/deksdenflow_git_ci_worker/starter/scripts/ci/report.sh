#!/bin/sh
# deksdenflow starter CI script: report. Installed by onboarding and never overwritten: make it yours.
# It tells the deksdenflow API how this CI run ended, the way the forge's own webhook would.
#
# Usage: sh scripts/ci/report.sh success|failure|running
# Run it from the repository's checkout (the git fallbacks below read the current directory), as the last
# step of a CI job. Needs only a POSIX sh (dash, busybox ash), curl, openssl, od, sed and tr.
#
# Configuration (environment):
#   DEKSDENFLOW_API_BASE       deksdenflow API base URL, e.g. http://localhost:8010 (required)
#   DEKSDENFLOW_WEBHOOK_TOKEN  the project's webhook secret (required): the HMAC key of the GitHub-style
#                              signature, or the X-Gitlab-Token header. Keep it in the forge's secrets.
#   DEKSDENFLOW_PROTOCOL_RUN_ID  optional: the protocol run this CI run belongs to (sent as protocol_run_id)
#   DEKSDENFLOW_CI_PROVIDER    github|gitlab: the payload shape and endpoint (default: gitlab when GITLAB_CI
#                              is set, else github)
#   DEKSDENFLOW_BRANCH         optional: the branch (default: GITHUB_HEAD_REF, GITHUB_REF_NAME,
#                              CI_MERGE_REQUEST_SOURCE_BRANCH_NAME, CI_COMMIT_BRANCH, CI_COMMIT_REF_NAME, then
#                              `git rev-parse --abbrev-ref HEAD`; the first non-empty one, refs/heads/ stripped)
#   DEKSDENFLOW_SHA            optional: the commit built. Default: for a GitHub pull_request event the PR's
#                              head commit read from GITHUB_EVENT_PATH (GITHUB_SHA is then a merge commit
#                              that is on no branch), else GITHUB_SHA, CI_COMMIT_SHA, then `git rev-parse HEAD`
#   DEKSDENFLOW_CA_BUNDLE      optional: CA certificates file to trust for the API (curl --cacert)
#   DEKSDENFLOW_REPORT_RETRIES optional: curl retries on transient errors and refused connections (default 3)
#   DEKSDENFLOW_REPORT_STRICT  1: missing configuration and a failed report fail the CI job (see exit codes)
# Also read, as the CI sets them: GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_EVENT_NAME,
# GITHUB_EVENT_PATH, GITLAB_CI, CI_PIPELINE_ID, CI_PIPELINE_URL, CI_PROJECT_PATH, CI_COMMIT_TAG.
#
# What is sent:
#   github: POST $DEKSDENFLOW_API_BASE/webhooks/github, a GitHub "status" event (state success|failure|
#           pending), X-GitHub-Event: status, a fresh X-GitHub-Delivery UUID, and X-Hub-Signature-256 (HMAC-SHA256
#           of the exact body bytes with the token).
#   gitlab: POST $DEKSDENFLOW_API_BASE/webhooks/gitlab, a GitLab "Pipeline Hook" (status success|failed|
#           running), X-Gitlab-Event: Pipeline Hook, X-Gitlab-Token, and a fresh Idempotency-Key UUID.
#
# Exit codes: 0 reported; 2 bad usage. Reporting is advisory by default, so that it never turns a green CI
# red: without configuration the script prints a notice and exits 0, and a report the API did not accept
# (non-2xx, unreachable) prints a warning and exits 0. With DEKSDENFLOW_REPORT_STRICT=1, missing or invalid
# configuration exits 2 and a failed report exits 1.
#
# The token never appears in the output. It is on openssl's command line for the HMAC (-hmac) for a moment,
# which other users of a shared, non-containerised runner could see in the process list; the GitLab token
# header goes to curl through a private config file, not the command line.
set -eu
LC_ALL=C
export LC_ALL

say() { printf 'report.sh: %s\n' "$*" >&2; }

usage() {
    echo "usage: sh scripts/ci/report.sh success|failure|running" >&2
    exit 2
}

# give_up CODE MESSAGE: fatal (exit CODE) under DEKSDENFLOW_REPORT_STRICT=1, else a warning and exit 0.
give_up() {
    code=$1
    shift
    if [ "${DEKSDENFLOW_REPORT_STRICT:-0}" = 1 ]; then
        say "error: $*"
        exit "$code"
    fi
    say "$* (not fatal: set DEKSDENFLOW_REPORT_STRICT=1 to fail the job)"
    exit 0
}

# json_str VALUE: VALUE as a JSON string literal. Bytes are read with od; '"', '\' and control characters
# are escaped, everything else (UTF-8 included) is passed through as octal escapes of printf's format.
json_str() {
    fmt='\042'
    for b in $(printf '%s' "$1" | od -An -v -tx1); do
        case $b in
            22) fmt="$fmt\\134\\042" ;;
            5c) fmt="$fmt\\134\\134" ;;
            08) fmt="$fmt\\134b" ;;
            09) fmt="$fmt\\134t" ;;
            0a) fmt="$fmt\\134n" ;;
            0c) fmt="$fmt\\134f" ;;
            0d) fmt="$fmt\\134r" ;;
            0? | 1?) fmt="$fmt\\134u00$b" ;;
            *)
                n=$((0x$b))
                fmt="$fmt\\$((n / 64))$((n / 8 % 8))$((n % 8))"
                ;;
        esac
    done
    # shellcheck disable=SC2059  # the format is built above from octal escapes only
    printf "$fmt\\042"
}

# json_or_null VALUE: a JSON string literal, or null when VALUE is empty.
json_or_null() {
    if [ -n "$1" ]; then json_str "$1"; else printf null; fi
}

# A random (version 4) UUID: the kernel's, else built from 16 random bytes.
uuid4() {
    if [ -r /proc/sys/kernel/random/uuid ]; then
        cat /proc/sys/kernel/random/uuid
        return 0
    fi
    h=$(openssl rand -hex 16 2>/dev/null) || h=
    [ ${#h} -eq 32 ] || h=$(od -An -v -N16 -tx1 /dev/urandom | tr -d ' \n')
    v=$(printf '%s\n' "$h" | cut -c17)
    v=$(printf '%x' $(((0x$v & 3) | 8)))
    printf '%s\n' "$h" | sed "s/^\\(.\\{8\\}\\)\\(.\\{4\\}\\).\\(.\\{3\\}\\).\\(.\\{3\\}\\)\\(.\\{12\\}\\)\$/\\1-\\2-4\\3-$v\\4-\\5/"
}

# The head commit of a GitHub pull_request event (best effort: sed over the event file), or nothing.
pr_head_sha() {
    f=${GITHUB_EVENT_PATH:-}
    if [ -z "$f" ] || [ ! -r "$f" ]; then return 0; fi
    case ${GITHUB_EVENT_NAME:-pull_request} in pull_request*) ;; *) return 0 ;; esac
    # One line; mark the first "head": { and take the first "sha" inside that object before any nested one.
    tr -d '\n\r' <"$f" | sed -n \
        -e 's/"head"[[:space:]]*:[[:space:]]*{/@@DEKSDENFLOW_HEAD@@/' \
        -e 's/.*@@DEKSDENFLOW_HEAD@@[^{}]*"sha"[[:space:]]*:[[:space:]]*"\([0-9a-fA-F]\{40,64\}\)".*/\1/p'
}

[ $# -eq 1 ] || usage
case $1 in
    success | failure | running) result=$1 ;;
    *) usage ;;
esac

# --- configuration ---------------------------------------------------------------------------------------
base=${DEKSDENFLOW_API_BASE:-}
token=${DEKSDENFLOW_WEBHOOK_TOKEN:-}
if [ -z "$base" ] || [ -z "$token" ]; then
    if [ "${DEKSDENFLOW_REPORT_STRICT:-0}" = 1 ]; then
        say "error: DEKSDENFLOW_API_BASE and DEKSDENFLOW_WEBHOOK_TOKEN must both be set"
        exit 2
    fi
    say "DEKSDENFLOW_API_BASE or DEKSDENFLOW_WEBHOOK_TOKEN is not set: not reporting '$result' to deksdenflow"
    exit 0
fi
while [ "${base%/}" != "$base" ]; do base=${base%/}; done

provider=${DEKSDENFLOW_CI_PROVIDER:-}
if [ -z "$provider" ]; then
    if [ -n "${GITLAB_CI:-}" ]; then provider=gitlab; else provider=github; fi
fi
case $provider in
    github | gitlab) ;;
    *) give_up 2 "DEKSDENFLOW_CI_PROVIDER must be github or gitlab, not '$provider': not reporting" ;;
esac

command -v curl >/dev/null 2>&1 || give_up 1 "curl is not installed: not reporting '$result'"
if [ "$provider" = github ] && ! command -v openssl >/dev/null 2>&1; then
    give_up 1 "openssl is not installed (it signs the report): not reporting '$result'"
fi

retries=${DEKSDENFLOW_REPORT_RETRIES:-3}
case $retries in '' | *[!0-9]*) give_up 2 "DEKSDENFLOW_REPORT_RETRIES must be a number, not '$retries'" ;; esac

# --- what is reported ------------------------------------------------------------------------------------
branch=
for v in "${DEKSDENFLOW_BRANCH:-}" "${GITHUB_HEAD_REF:-}" "${GITHUB_REF_NAME:-}" \
    "${CI_MERGE_REQUEST_SOURCE_BRANCH_NAME:-}" "${CI_COMMIT_BRANCH:-}" "${CI_COMMIT_REF_NAME:-}"; do
    [ -n "$branch" ] || branch=$v
done
if [ -z "$branch" ]; then
    branch=$(git rev-parse --abbrev-ref HEAD 2>/dev/null) || branch=
    [ "$branch" != HEAD ] || branch= # a detached HEAD names no branch
fi
branch=${branch#refs/heads/}

sha=${DEKSDENFLOW_SHA:-}
[ -n "$sha" ] || sha=$(pr_head_sha) || sha=
for v in "${GITHUB_SHA:-}" "${CI_COMMIT_SHA:-}"; do
    [ -n "$sha" ] || sha=$v
done
if [ -z "$sha" ]; then sha=$(git rev-parse HEAD 2>/dev/null) || sha=; fi
[ -n "$sha" ] || give_up 1 "cannot tell the commit (set DEKSDENFLOW_SHA): not reporting '$result'"

run_url=
if [ -n "${GITHUB_RUN_ID:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
    run_url="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID"
elif [ -n "${CI_PIPELINE_URL:-}" ]; then
    run_url=$CI_PIPELINE_URL
fi
repo=
for v in "${GITHUB_REPOSITORY:-}" "${CI_PROJECT_PATH:-}"; do
    [ -n "$repo" ] || repo=$v
done
run_id=${DEKSDENFLOW_PROTOCOL_RUN_ID:-}
extra=
[ -z "$run_id" ] || extra=",\"protocol_run_id\":$(json_str "$run_id")"
delivery=$(uuid4)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/deksdenflow-report.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
body=$tmp/body.json
cfg=$tmp/curl.cfg
resp=$tmp/response
(umask 077 && : >"$cfg")

# curl config lines: header = "..." with '\' and '"' escaped (keeps the token off the command line).
header() {
    printf 'header = "%s"\n' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')" >>"$cfg"
}
header "Content-Type: application/json"
header "User-Agent: deksdenflow-report/1"

if [ "$provider" = github ]; then
    case $result in running) state=pending ;; *) state=$result ;; esac
    branches='[]'
    [ -z "$branch" ] || branches="[{\"name\":$(json_str "$branch"),\"commit\":{\"sha\":$(json_str "$sha")}}]"
    printf '{"sha":%s,"state":"%s","target_url":%s,"context":"deksdenflow/report","description":%s,"branches":%s,"repository":{"full_name":%s}%s}' \
        "$(json_str "$sha")" "$state" "$(json_or_null "$run_url")" "$(json_str "CI $result")" \
        "$branches" "$(json_or_null "$repo")" "$extra" >"$body"
    mac=$(openssl dgst -sha256 -hmac "$token" <"$body") || give_up 1 "openssl could not sign the report"
    mac=${mac##*= } # "(stdin)= <hex>" or "HMAC-SHA256(stdin)= <hex>"
    case $mac in
        *[!0-9a-f]*) give_up 1 "could not read openssl's HMAC output" ;;
    esac
    [ ${#mac} -eq 64 ] || give_up 1 "could not read openssl's HMAC output"
    header "X-GitHub-Event: status"
    header "X-GitHub-Delivery: $delivery"
    header "X-Hub-Signature-256: sha256=$mac"
    url=$base/webhooks/github
else
    case $result in failure) status=failed ;; *) status=$result ;; esac
    pipeline_id=${CI_PIPELINE_ID:-0}
    case $pipeline_id in '' | *[!0-9]* | 0?*) pipeline_id=0 ;; esac
    if [ -n "${CI_COMMIT_TAG:-}" ]; then tag=true; else tag=false; fi
    printf '{"object_kind":"pipeline","object_attributes":{"id":%s,"ref":%s,"tag":%s,"sha":%s,"status":"%s","url":%s},"project":{"path_with_namespace":%s}%s}' \
        "$pipeline_id" "$(json_or_null "$branch")" "$tag" "$(json_str "$sha")" "$status" \
        "$(json_or_null "$run_url")" "$(json_or_null "$repo")" "$extra" >"$body"
    header "X-Gitlab-Event: Pipeline Hook"
    header "X-Gitlab-Token: $token"
    header "Idempotency-Key: $delivery"
    url=$base/webhooks/gitlab
fi

# --- send ------------------------------------------------------------------------------------------------
help=$(curl --help all 2>/dev/null) || help=$(curl --help 2>/dev/null) || help=
has() { case $help in *"$1"*) return 0 ;; esac; return 1; }

set -- --silent --show-error --max-time 30 --config "$cfg" --request POST --data-binary "@$body" \
    --output "$resp" --write-out '%{http_code}'
if has --fail-with-body; then set -- "$@" --fail-with-body; else set -- "$@" --fail; fi
if [ "$retries" -gt 0 ]; then
    set -- "$@" --retry "$retries"
    if has --retry-connrefused; then set -- "$@" --retry-connrefused; fi
fi
if [ -n "${DEKSDENFLOW_CA_BUNDLE:-}" ]; then set -- "$@" --cacert "$DEKSDENFLOW_CA_BUNDLE"; fi

if code=$(curl "$@" "$url"); then rc=0; else rc=$?; fi
case $code in
    2??)
        say "reported '$result' for $sha${branch:+ on $branch} to $url (HTTP $code)"
        exit 0
        ;;
esac
if [ -s "$resp" ]; then
    say "the API answered:"
    head -c 2000 "$resp" >&2
    echo >&2
fi
give_up 1 "the report of '$result' to $url failed (HTTP ${code:-000}, curl exit $rc)"
