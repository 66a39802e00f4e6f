#!/usr/bin/env bash
# Local infrastructure for MPR without Docker: RabbitMQ, PostgreSQL and an S3
# server (SeaweedFS `weed mini`), all on 127.0.0.1.
#
#   scripts/infra.sh up       install prerequisites, start what is not running, create DBs/buckets
#   scripts/infra.sh down     stop what `up` started (weed always; RabbitMQ/PostgreSQL only if `up` started them)
#   scripts/infra.sh status   one line per component; exit 1 if any is down
#   scripts/infra.sh up --defaults   the same on the default endpoints, whatever the environment
#                             and .env say: those the tests use (make test)
#
# Endpoints (defaults in brackets) are read from the environment, then from .env:
#   AMQP_URL         [amqp://guest:guest@127.0.0.1:5672/]
#   DATABASE_URL     [postgresql://postgres@127.0.0.1:5432/mpr]; a sqlite URL skips PostgreSQL
#   S3_ENDPOINT_URL  [http://127.0.0.1:$S3_PORT], S3_PORT [9000]
#   S3_BUCKET_IN/S3_BUCKET_OUT [mpr-media-in/mpr-media-out], AWS_REGION [us-east-1]
#   AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY [minioadmin/minioadmin]
#   RABBITMQ_CONSUMER_TIMEOUT_SECONDS [21600]
#   WEED_MASTER_PORT [9333], WEED_VOLUME_PORT [9340], WEED_FILER_PORT [8888], WEED_ADMIN_PORT [23646]:
#                    weed's other listeners (each also opens gRPC on port+10000)
#   WEED_ARGS        extra `weed mini` flags
# A non-loopback endpoint is only checked, never started or stopped.
# State (pidfile, log, data, "started by us" markers) lives in var/infra/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/install.sh
source "$ROOT/scripts/install.sh"

usage() {
    echo "usage: $0 up|down|status [--defaults]" >&2
    exit 2
}
[[ -z "${2:-}" || "$2" == --defaults ]] || usage

# Environment first, then .env, then the defaults below. The tests use the defaults unless
# MPR_TEST_* say otherwise, so `make test` must not follow what a developer exported (or put
# in .env) for `make dev`: it passes --defaults.
if [[ "${2:-}" == --defaults ]]; then
    unset AMQP_URL DATABASE_URL S3_ENDPOINT_URL S3_PORT S3_BUCKET_IN S3_BUCKET_OUT AWS_REGION \
        AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY RABBITMQ_CONSUMER_TIMEOUT_SECONDS
else
    load_dotenv "$ROOT/.env"
fi

STATE="$ROOT/var/infra"
WEED_PID="$STATE/weed.pid"
WEED_LOG="$STATE/weed.log"
WEED_DATA="$STATE/seaweedfs"

AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/mpr}"
S3_PORT="${S3_PORT:-9000}"
S3_ENDPOINT_URL="${S3_ENDPOINT_URL:-http://127.0.0.1:$S3_PORT}"
S3_BUCKET_IN="${S3_BUCKET_IN:-mpr-media-in}"
S3_BUCKET_OUT="${S3_BUCKET_OUT:-mpr-media-out}"
AWS_REGION="${AWS_REGION:-us-east-1}"
AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-minioadmin}"
AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-minioadmin}"

# Six hours, in ms: the longest transcode we accept. RabbitMQ closes the channel of a
# consumer that holds an unacked delivery longer than consumer_timeout (30 min by
# default) and the job would be redelivered mid-transcode. Debian's RabbitMQ 3.10 has
# no per-queue x-consumer-timeout (3.12+), so raise the node-wide value at runtime.
# It applies to channels opened afterwards and is lost on a RabbitMQ restart, which is
# why every `up` sets it again.
# https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout
# RABBITMQ_CONSUMER_TIMEOUT_SECONDS is the name the transcoder's settings check it by.
CONSUMER_TIMEOUT_MS="$((${RABBITMQ_CONSUMER_TIMEOUT_SECONDS:-21600} * 1000))"

START_TIMEOUT=60

ok() { printf '%s✓%s %s\n' "$C_GREEN" "$C_OFF" "$*"; }
info() { printf '%s…%s %s\n' "$C_YELLOW" "$C_OFF" "$*"; }
warn() { printf '%s!%s %s\n' "$C_YELLOW" "$C_OFF" "$*" >&2; }
down_line() { printf '%s✗%s %s\n' "$C_RED" "$C_OFF" "$*"; }
die() { printf '%s✗%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; exit 1; }

# --- helpers --------------------------------------------------------------------

# url_parts URL DEFAULT_PORT -> "scheme host port user password database", tab-separated, "-" if absent
url_parts() {
    local url="$1" default_port="$2" re
    re='^([A-Za-z0-9+.-]+)://(([^:@/]*)(:([^@/]*))?@)?(\[[^]]*\]|[^:/?]*)(:([0-9]+))?(/([^?]*))?'
    [[ "$url" =~ $re ]] || die "cannot parse URL: $url"
    local host="${BASH_REMATCH[6]#[}"
    host="${host%]}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${BASH_REMATCH[1]}" "${host:-127.0.0.1}" \
        "${BASH_REMATCH[8]:-$default_port}" "${BASH_REMATCH[3]:--}" "${BASH_REMATCH[5]:--}" \
        "${BASH_REMATCH[10]:--}"
}

is_local() { [[ "$1" == localhost || "$1" == 127.* || "$1" == ::1 ]]; }

# shellcheck disable=SC2016 # $0/$1 are the inner shell's arguments
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.3
    done
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# S3 request signed with SigV4 by curl itself (no Python needed); prints the HTTP status.
s3() { # s3 METHOD PATH [curl args...]
    local method="$1" path="$2"
    shift 2
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X "$method" \
        --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        "$@" "${S3_ENDPOINT_URL%/}/$path" 2>/dev/null || true
}

# Our credentials are accepted: 200 (bucket exists) or 404 (not yet); 403 means rejected.
s3_answers() { [[ "$(s3 HEAD "$S3_BUCKET_IN" -I)" == @(200|404) ]]; }
s3_up() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "${S3_ENDPOINT_URL%/}/" || true)" != 000 ]]; }

pid_alive() { # pid_alive PIDFILE NAME_IN_CMDLINE
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# --- RabbitMQ -------------------------------------------------------------------

parts="$(url_parts "$AMQP_URL" 5672)"
IFS=$'\t' read -r _ AMQP_HOST AMQP_PORT _ _ _ <<<"$parts"

rabbitmq_up() {
    local how="already running"
    if ! port_open "$AMQP_HOST" "$AMQP_PORT"; then
        is_local "$AMQP_HOST" || die "rabbitmq $AMQP_HOST:$AMQP_PORT not reachable (external, not managed here)"
        info "starting rabbitmq (rabbitmq-server -detached)"
        # Recorded first, so that `down` also stops a server that started too slowly.
        date -u +%FT%TZ >"$STATE/rabbitmq.started"
        # setsid: a Ctrl-C in the terminal that ran `up` (e.g. dev.sh) must not reach it.
        as_root setsid -w rabbitmq-server -detached >/dev/null 2>&1 ||
            die "rabbitmq-server failed to start; see /var/log/rabbitmq/"
        wait_for "$START_TIMEOUT" port_open "$AMQP_HOST" "$AMQP_PORT" ||
            die "rabbitmq did not open $AMQP_HOST:$AMQP_PORT within ${START_TIMEOUT}s; see /var/log/rabbitmq/"
        how="started"
    fi
    if is_local "$AMQP_HOST"; then
        if [[ "$how" == started ]]; then
            as_root rabbitmqctl -q await_startup --timeout "$START_TIMEOUT" >/dev/null
        fi
        as_root rabbitmqctl -q eval "application:set_env(rabbit, consumer_timeout, $CONSUMER_TIMEOUT_MS)." >/dev/null
        ok "rabbitmq $AMQP_HOST:$AMQP_PORT ($how; consumer_timeout $((CONSUMER_TIMEOUT_MS / 3600000))h)"
    else
        ok "rabbitmq $AMQP_HOST:$AMQP_PORT (external; set consumer_timeout=$CONSUMER_TIMEOUT_MS there)"
    fi
}

rabbitmq_down() {
    if [[ -f "$STATE/rabbitmq.started" ]]; then
        info "stopping rabbitmq (started by infra.sh up)"
        # shutdown, unlike stop, returns only once the Erlang VM has exited.
        as_root rabbitmqctl -q shutdown >/dev/null 2>&1 || true
        rm -f "$STATE/rabbitmq.started"
        ok "rabbitmq stopped"
    else
        ok "rabbitmq left running (not started by infra.sh)"
    fi
}

rabbitmq_status() {
    local owner=""
    [[ -f "$STATE/rabbitmq.started" ]] && owner=", started by infra.sh"
    if port_open "$AMQP_HOST" "$AMQP_PORT"; then
        local timeout=""
        if is_local "$AMQP_HOST"; then
            timeout="$(as_root rabbitmqctl -q eval 'application:get_env(rabbit, consumer_timeout).' 2>/dev/null |
                tr -dc '0-9' || true)"
            [[ -n "$timeout" ]] && timeout=", consumer_timeout ${timeout}ms"
        fi
        ok "rabbitmq $AMQP_HOST:$AMQP_PORT (running$owner$timeout)"
    else
        down_line "rabbitmq $AMQP_HOST:$AMQP_PORT (not running$owner)"
        return 1
    fi
}

# --- PostgreSQL -----------------------------------------------------------------

parts="$(url_parts "$DATABASE_URL" 5432)"
IFS=$'\t' read -r DB_SCHEME DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME <<<"$parts"
[[ "$DB_USER" == - ]] && DB_USER=postgres
[[ "$DB_NAME" == - ]] && DB_NAME=mpr
[[ "$DB_PASSWORD" != - ]] && export PGPASSWORD="$DB_PASSWORD"
DB_NAMES=("$DB_NAME" "${DB_NAME}_test")
uses_postgres() { [[ "$DB_SCHEME" == postgres* ]]; }

psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres "$@"; }
pg_ready() { pg_isready -q -h "$DB_HOST" -p "$DB_PORT" -t 2; }

postgres_up() {
    uses_postgres || { ok "postgresql skipped (DATABASE_URL is ${DB_SCHEME})"; return 0; }
    local how="already running" cluster name created=()
    if ! pg_ready; then
        is_local "$DB_HOST" || die "postgresql $DB_HOST:$DB_PORT not reachable (external, not managed here)"
        # The cluster configured for our port (pg_createcluster picks 5433 when 5432 is taken).
        cluster="$(pg_lsclusters -h 2>/dev/null | awk -v port="$DB_PORT" '$3 == port {print $1, $2; exit}')"
        [[ -n "$cluster" ]] || die "no PostgreSQL cluster on port $DB_PORT (pg_lsclusters: $(
            pg_lsclusters -h 2>/dev/null | awk '{printf "%s/%s:%s ", $1, $2, $3}'))"
        info "starting postgresql ${cluster/ //}"
        # Recorded first, so that `down` also stops a server that started too slowly.
        printf '%s\n' "$cluster" >"$STATE/postgresql.started"
        # shellcheck disable=SC2086 # "$version $name"
        as_root setsid -w pg_ctlcluster --skip-systemctl-redirect $cluster start ||
            die "pg_ctlcluster $cluster start failed; see /var/log/postgresql/"
        wait_for "$START_TIMEOUT" pg_ready ||
            die "postgresql did not accept connections on $DB_HOST:$DB_PORT within ${START_TIMEOUT}s"
        how="started"
    fi
    for name in "${DB_NAMES[@]}"; do
        if [[ -z "$(psql_ -Atc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]]; then
            psql_ -c "CREATE DATABASE \"$name\"" >/dev/null
            created+=("$name")
        fi
    done
    local dbs="databases ${DB_NAMES[*]}"
    [[ ${#created[@]} -gt 0 ]] && dbs="$dbs; created ${created[*]}"
    ok "postgresql $DB_HOST:$DB_PORT ($how; $dbs)"
}

postgres_down() {
    uses_postgres || return 0
    if [[ -f "$STATE/postgresql.started" ]]; then
        local cluster
        cluster="$(cat "$STATE/postgresql.started")"
        info "stopping postgresql ${cluster/ //} (started by infra.sh up)"
        # shellcheck disable=SC2086 # "$version $name"
        as_root pg_ctlcluster --skip-systemctl-redirect $cluster stop || true
        rm -f "$STATE/postgresql.started"
        ok "postgresql stopped"
    else
        ok "postgresql left running (not started by infra.sh)"
    fi
}

postgres_status() {
    uses_postgres || { ok "postgresql skipped (DATABASE_URL is ${DB_SCHEME})"; return 0; }
    local owner="" name present=() missing=()
    [[ -f "$STATE/postgresql.started" ]] && owner=", started by infra.sh"
    if ! pg_ready; then
        down_line "postgresql $DB_HOST:$DB_PORT (not running$owner)"
        return 1
    fi
    for name in "${DB_NAMES[@]}"; do
        if [[ -n "$(psql_ -Atc "SELECT 1 FROM pg_database WHERE datname = '$name'" 2>/dev/null)" ]]; then
            present+=("$name")
        else
            missing+=("$name")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        down_line "postgresql $DB_HOST:$DB_PORT (running$owner; missing databases ${missing[*]})"
        return 1
    fi
    ok "postgresql $DB_HOST:$DB_PORT (running$owner; databases ${present[*]})"
}

# --- S3 (SeaweedFS) -------------------------------------------------------------

parts="$(url_parts "$S3_ENDPOINT_URL" 80)"
IFS=$'\t' read -r _ S3_HOST S3_EP_PORT _ _ _ <<<"$parts"

# Ports `weed mini` opens besides S3, all bound to 127.0.0.1; each one's gRPC port is
# +10000 (S3's too). None collides with 5672/5432/6379/3306/4222/1883/8000-8003.
WEED_MASTER_PORT="${WEED_MASTER_PORT:-9333}"
WEED_VOLUME_PORT="${WEED_VOLUME_PORT:-9340}"
WEED_FILER_PORT="${WEED_FILER_PORT:-8888}"
WEED_ADMIN_PORT="${WEED_ADMIN_PORT:-23646}"
weed_ports() {
    local port
    for port in "$S3_EP_PORT" "$WEED_MASTER_PORT" "$WEED_VOLUME_PORT" "$WEED_FILER_PORT" "$WEED_ADMIN_PORT"; do
        echo "$port" "$((port + 10000))"
    done
}

ensure_buckets() {
    local bucket code created=()
    for bucket in "$S3_BUCKET_IN" "$S3_BUCKET_OUT"; do
        code="$(s3 HEAD "$bucket" -I)"
        if [[ "$code" == 404 ]]; then
            code="$(s3 PUT "$bucket")"
            [[ "$code" == 200 || "$code" == 409 ]] || die "creating bucket $bucket failed (HTTP $code)"
            created+=("$bucket")
        elif [[ "$code" != 200 ]]; then
            die "bucket $bucket: HEAD answered HTTP $code"
        fi
    done
    BUCKETS_MSG="buckets $S3_BUCKET_IN, $S3_BUCKET_OUT"
    [[ ${#created[@]} -gt 0 ]] && BUCKETS_MSG="$BUCKETS_MSG; created ${created[*]}"
    return 0
}

s3_start() {
    local weed port busy=()
    weed="$(find_weed)" || die "weed not found (run scripts/install.sh)"
    for port in $(weed_ports); do
        port_open 127.0.0.1 "$port" && busy+=("$port")
    done
    [[ ${#busy[@]} -eq 0 ]] ||
        die "port(s) ${busy[*]} already in use; weed mini needs them (move them with WEED_*_PORT, see $0)"
    mkdir -p "$WEED_DATA" "$STATE/seaweedfs-config"
    # Keep one previous log once it passes 10 MB.
    if [[ -f "$WEED_LOG" && $(stat -c %s "$WEED_LOG") -gt 10485760 ]]; then
        mv -f "$WEED_LOG" "$WEED_LOG.1"
    fi
    info "starting s3 (weed mini, log: ${WEED_LOG#"$ROOT"/})"
    # The options cover every listener `weed mini` opens: all on loopback; WebDAV, the
    # admin UI, Iceberg/Lance catalogs and telemetry are off; an empty -config_dir keeps
    # a developer's ~/.seaweedfs or /etc/seaweedfs out. setsid detaches it from the
    # terminal; the inner shell writes its own pid, which exec hands to weed.
    # Every bucket is a SeaweedFS collection with volumes of its own, and the volume
    # count is free disk / volume size: 256 MB volumes (mini picks 1 GB) allow ~4x as many
    # buckets, which the tests create and delete by the pair. Objects are chunked, so
    # their size is not limited by it. Deleting a non-empty bucket fails as on AWS
    # (BucketNotEmpty), not silently recursive as weed's default.
    # shellcheck disable=SC2016,SC2086
    AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
        setsid bash -c 'echo $$ >"$0"; exec "$@"' "$WEED_PID" \
        "$weed" -logtostderr -config_dir="$STATE/seaweedfs-config" mini \
        -dir="$WEED_DATA" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$S3_EP_PORT" -master.port="$WEED_MASTER_PORT" -volume.port="$WEED_VOLUME_PORT" \
        -filer.port="$WEED_FILER_PORT" -admin.port="$WEED_ADMIN_PORT" \
        -bucket="$S3_BUCKET_IN,$S3_BUCKET_OUT" \
        -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.telemetry=false -master.volumeSizeLimitMB=256 \
        -s3.allowDeleteBucketNotEmpty=false ${WEED_ARGS:-} \
        >>"$WEED_LOG" 2>&1 </dev/null &
    if ! wait_for 30 s3_answers; then
        tail -n 20 "$WEED_LOG" >&2 || true
        die "s3 did not answer on $S3_ENDPOINT_URL within 30s (log: $WEED_LOG)"
    fi
}

s3_up_cmd() {
    local how
    if pid_alive "$WEED_PID" weed && s3_answers; then
        how="already running, pid $(cat "$WEED_PID")"
    elif s3_up; then
        # Somebody else's S3 server (a MinIO, a weed from another checkout): reuse it
        # if it takes our credentials, refuse otherwise.
        s3_answers || die "something on $S3_ENDPOINT_URL answers but rejects AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
        how="reusing the server already on $S3_HOST:$S3_EP_PORT"
    else
        is_local "$S3_HOST" || die "s3 $S3_ENDPOINT_URL not reachable (external, not managed here)"
        s3_start
        how="started, pid $(cat "$WEED_PID")"
    fi
    ensure_buckets
    ok "s3 $S3_ENDPOINT_URL ($how; $BUCKETS_MSG)"
}

s3_down() {
    if ! pid_alive "$WEED_PID" weed; then
        rm -f "$WEED_PID"
        ok "s3 not running (no weed started by infra.sh)"
        return 0
    fi
    local pid
    pid="$(cat "$WEED_PID")"
    info "stopping s3 (weed pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 15 pid_gone "$pid"; then
        warn "weed pid $pid ignored SIGTERM for 15s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$WEED_PID"
    ok "s3 stopped"
}

s3_status() {
    local owner="not started by infra.sh"
    pid_alive "$WEED_PID" weed && owner="weed pid $(cat "$WEED_PID")"
    if ! s3_up; then
        down_line "s3 $S3_ENDPOINT_URL (not running)"
        return 1
    fi
    if ! s3_answers; then
        down_line "s3 $S3_ENDPOINT_URL (answers but rejects our credentials; $owner)"
        return 1
    fi
    local bucket missing=()
    for bucket in "$S3_BUCKET_IN" "$S3_BUCKET_OUT"; do
        [[ "$(s3 HEAD "$bucket" -I)" == 200 ]] || missing+=("$bucket")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        down_line "s3 $S3_ENDPOINT_URL (running, $owner; missing buckets ${missing[*]})"
        return 1
    fi
    ok "s3 $S3_ENDPOINT_URL (running, $owner; buckets $S3_BUCKET_IN, $S3_BUCKET_OUT)"
}

# --- commands -------------------------------------------------------------------

prepare_state() {
    mkdir -p "$STATE"
    # var/ holds runtime state only; keep it out of git even without a .gitignore entry.
    [[ -e "$ROOT/var/.gitignore" ]] || printf '*\n' >"$ROOT/var/.gitignore"
}

cmd_up() {
    prepare_state
    echo "infra: prerequisites"
    install_main
    echo "infra: services"
    rabbitmq_up
    postgres_up
    s3_up_cmd
}

cmd_down() {
    prepare_state
    s3_down
    postgres_down
    rabbitmq_down
}

cmd_status() {
    local rc=0 weed
    rabbitmq_status || rc=1
    postgres_status || rc=1
    s3_status || rc=1
    if weed="$(find_weed)"; then ok "weed binary $weed"; else down_line "weed binary missing"; rc=1; fi
    if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
        ok "ffmpeg $(ffmpeg -version | head -n1 | cut -d' ' -f3)"
    else
        down_line "ffmpeg/ffprobe missing"
        rc=1
    fi
    return "$rc"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) usage ;;
esac
