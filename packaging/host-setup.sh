# Shell functions that prepare a Debian host for dockshim: sourced by
# packaging/run-local.sh and tests/run.sh, never run on their own.
#
#   install_missing_packages PKG...  apt-get installs the ones not installed
#   start_dockerd LOGFILE            starts dockerd unless /var/run/docker.sock answers
#
# No init system is assumed: dockerd is started directly, in its own session.

DOCKER_SOCK=/var/run/docker.sock

host_log() { printf '==> %s\n' "$*" >&2; }
host_die() { printf '%s: %s\n' "$0" "$*" >&2; exit 1; }

install_missing_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi
    host_log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

docker_answers() {
    curl -sf --max-time 2 --unix-socket "$DOCKER_SOCK" http://localhost/_ping >/dev/null 2>&1
}

start_dockerd() {
    local logfile="$1" i
    if docker_answers; then
        return
    fi
    host_log "starting dockerd (log: $logfile)"
    setsid dockerd >>"$logfile" 2>&1 </dev/null &
    for i in $(seq 1 120); do
        if docker_answers; then
            return
        fi
        sleep 0.5
    done
    tail -n 50 "$logfile" >&2 || true
    host_die "dockerd did not answer on $DOCKER_SOCK within 60 s"
}
