#!/usr/bin/env bash
# Run MPR locally: infrastructure (scripts/infra.sh up), database migrations, then the
# four services in the foreground under scripts/supervise.py, with prefixed, coloured logs.
# A service that dies is restarted (with backoff and a log line) while the others keep
# running, as compose and Kubernetes do. Ctrl-C (or SIGTERM to this script) stops every
# service; the infrastructure keeps running for the next start (scripts/infra.sh down stops it).
#
#   scripts/dev.sh                       gateway, catalog, transcoder, notifier
#   TRANSCODERS=3 scripts/dev.sh         three transcoder replicas
#   scripts/dev.sh gateway catalog       only some services (Procfile.dev's names)
#
# Environment (then .env, then defaults): TRANSCODERS [1], GATEWAY_PORT [8000],
# NOTIFIER_PORT [8001], CORS_ORIGINS [the gateway's origins], PUBLIC_EVENTS_URL [the notifier's
# URL], MPR_API_KEYS [dev:<key kept in var/dev-api-key>],
# DATABASE_URL [SQLite var/mpr.db], PROCFILE [Procfile.dev],
# MPR_SKIP_MIGRATIONS=1 to skip `python -m mpr_shared.db upgrade`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/install.sh
source "$ROOT/scripts/install.sh"
load_dotenv "$ROOT/.env"

die() { printf '%s✗%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; exit 1; }

[[ "${TRANSCODERS:-1}" =~ ^[1-9][0-9]*$ ]] || die "TRANSCODERS must be a positive integer"

"$ROOT/scripts/infra.sh" up

VENV="${UV_PROJECT_ENVIRONMENT:-$ROOT/.venv}"
export MPR_PYTHON="${MPR_PYTHON:-$VENV/bin/python}"
[[ -x "$MPR_PYTHON" ]] || die "no project environment at $VENV; run: uv sync --all-packages"

# DATABASE_URL unset means the embedded SQLite file var/mpr.db (the services' default);
# DATABASE_URL=postgresql://postgres@127.0.0.1:5432/mpr uses the PostgreSQL infra.sh runs.
# The S3 server infra.sh started, also when only S3_PORT moved it.
export S3_ENDPOINT_URL="${S3_ENDPOINT_URL:-http://127.0.0.1:${S3_PORT:-9000}}"
# SeaweedFS sends no S3 bucket notifications, so locally a periodic reconcile scan stands in
# for auto-ingest (MinIO in compose, and AWS via a bridge, notify instead).
export SCAN_INTERVAL_SECONDS="${SCAN_INTERVAL_SECONDS:-15}"
export GATEWAY_PORT="${GATEWAY_PORT:-8000}"
export NOTIFIER_PORT="${NOTIFIER_PORT:-8001}"
# The dashboard (the gateway's page) reads the notifier's SSE stream across origins.
export CORS_ORIGINS="${CORS_ORIGINS:-http://127.0.0.1:$GATEWAY_PORT,http://localhost:$GATEWAY_PORT}"
export PUBLIC_EVENTS_URL="${PUBLIC_EVENTS_URL-http://127.0.0.1:$NOTIFIER_PORT}"
# Logs reach the supervisor line by line instead of in 8 KiB blocks.
export PYTHONUNBUFFERED=1
# On Ctrl-C a transcoder with a job hands it back to the queue within this grace (the
# default is 30 s: a quick stop matters more here). The supervisor signals the service
# process alone first, and what is left of its process group (FFmpeg) once it has exited,
# or 5 s after this grace at the latest.
export SHUTDOWN_GRACE_SECONDS="${SHUTDOWN_GRACE_SECONDS:-3}"
stop_grace="$(awk -v grace="$SHUTDOWN_GRACE_SECONDS" 'BEGIN { print grace + 5 }')"

if [[ -z "${MPR_API_KEYS:-}" ]]; then
    key_file="$ROOT/var/dev-api-key"
    if [[ ! -s "$key_file" ]]; then
        mkdir -p "$ROOT/var"
        (umask 077 && "$MPR_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$key_file")
    fi
    api_key="$(<"$key_file")"
    export MPR_API_KEYS="dev:$api_key"
    printf '\n  %sAPI key: %s%s   (kept in var/dev-api-key)\n' "$C_GREEN" "$api_key" "$C_OFF"
    printf "  use: curl -H 'Authorization: Bearer %s' http://127.0.0.1:%s/api/assets\n\n" "$api_key" "$GATEWAY_PORT"
else
    printf '\n  API keys from MPR_API_KEYS (%s)\n\n' "${MPR_API_KEYS%%:*}:…"
fi

# A one-shot step runs in the background so that a Ctrl-C or SIGTERM arriving meanwhile
# is passed on to it and nothing outlives this script.
run_step() {
    "$@" &
    local pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 130' INT TERM
    wait "$pid"
    trap - INT TERM
}

if [[ "${MPR_SKIP_MIGRATIONS:-}" != 1 ]]; then
    echo "dev: migrations (python -m mpr_shared.db upgrade)"
    run_step "$MPR_PYTHON" -m mpr_shared.db upgrade || die "migrations failed"
fi

base_port="${PORT:-5000}"
echo "dev: dashboard http://127.0.0.1:$GATEWAY_PORT/  notifier http://127.0.0.1:$NOTIFIER_PORT  transcoders ${TRANSCODERS:-1}"
echo "dev: health/metrics: catalog :$((base_port + 100)), transcoders :$((base_port + 200))+  (Ctrl-C stops all)"
# exec: the supervisor takes this pid, so signals sent to the script reach it. The
# environment (.env merged above, environment first) is complete: it reads no .env itself.
exec "$MPR_PYTHON" "$ROOT/scripts/supervise.py" -f "${PROCFILE:-$ROOT/Procfile.dev}" \
    -c "transcoder=${TRANSCODERS:-1}" --grace "$stop_grace" "$@"
