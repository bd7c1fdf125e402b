#!/usr/bin/env bash
# The one test command: `sudo tests/run.sh` from anywhere in the repository.
#
# On a Debian 12 machine, as root, it makes the test environment exist and then
# runs every check CI runs:
#   1. installs what is missing (docker.io, containernetworking-plugins,
#      docker-registry, busybox-static, apache2-utils, iproute2, curl, afl++);
#   2. starts dockerd if /var/run/docker.sock does not answer (no init system is
#      assumed: dockerd runs in the background, its log under $DOCKSHIM_TEST_WORKDIR);
#   3. refuses to go on, removing nothing, if that dockerd holds Kubernetes
#      containers (named k8s_* or labelled io.kubernetes.docker.type) that no
#      test run made: a kubelet may own them, and the dockshim the tests start
#      takes every pod on its engine for its own (`sudo tests/run.sh
#      --check-host` runs this check alone; exit status 2 when it refuses);
#   4. starts a registry on 127.0.0.1:5000 if none answers;
#   5. builds the busybox and pause test images from busybox-static and pushes
#      them to that registry (tests/images/build.sh);
#   6. cargo fmt --check, clippy, codegen and man page diff checks, cargo test;
#      every test binary gets at most $DOCKSHIM_TEST_BINARY_TIMEOUT (15m; a
#      timeout(1) duration), then it is killed (SIGTERM, SIGKILL 30 s later)
#      and fails with exit status 124 or 137, so one hung test cannot eat the
#      whole CI budget (the run takes 14 to 18 minutes, CI gives it 90);
#   7. fails if a container of this run is left behind, and removes it: every
#      container the tests make carries the label dockshim-test-run=<run ID>
#      (DOCKSHIM_TEST_RUN_ID, fresh per run), and nothing else is touched;
#   8. the engine matrix: when ../shared/engines/engine.sh exists beside the
#      repository (DOCKSHIM_TEST_ENGINES_DIR names another folder), runs the
#      suites that talk to dockerd again against each Docker Engine there
#      (DOCKSHIM_TEST_ENGINES="27.5.1 29.7.2" picks some; default: every
#      docker-VERSION folder): starts it (`engine.sh VERSION start`, log under
#      $DOCKSHIM_TEST_WORKDIR/engines) with tests/engines/runtime-wrapper.sh
#      registered as the default runtime `wrapped`, pulls the test images into
#      it from the registry, runs the suites with DOCKSHIM_TEST_DOCKER_SOCKET
#      and DOCKER_HOST pointing at it, and checks it for this run's leftovers.
#      The tests learn the wrapper from DOCKSHIM_TEST_RUNTIME_WRAPPER_HANDLER
#      (`wrapped`) and DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG (one line per call,
#      the arguments runc got); both are unset for the machine's dockerd.
#      An engine already running without that wrapper is restarted;
#   9. builds the Debian package from this tree, runs lintian on it, unpacks
#      it into a scratch root, checks its files and runs `systemd-analyze
#      verify` on its units (tests/package.sh; installs dpkg-dev, debhelper,
#      lintian, systemd and man-db if missing; nothing goes onto /);
#  10. the fuzz targets: every corpus under fuzz/corpus replayed, then a
#      short afl-fuzz run of each target (fuzz/run.sh short); a crash or a
#      hang fails the run.
# A failure on any engine fails the run, yet every engine is tested; a table
# of engines, results and seconds ends the output. The tests run with
# DOCKSHIM_TEST_STRICT=1: a test that finds its environment missing (no
# dockerd, no test image, no registry) fails instead of printing `skipped:`
# and passing; one that finds the engine without a feature still skips.
# Running it again reuses whatever is already there. Needs a Rust toolchain (rustup, stable) on PATH;
# everything else comes from Debian's archive.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=packaging/host-setup.sh
. "$REPO_ROOT/packaging/host-setup.sh"
WORKDIR="${DOCKSHIM_TEST_WORKDIR:-/tmp/dockshim-test}"
REGISTRY=127.0.0.1:5000
ENGINES_DIR="${DOCKSHIM_TEST_ENGINES_DIR:-$REPO_ROOT/../shared/engines}"
# The runtime name the engines know the wrapper by, as engine.sh registers it.
WRAPPED_RUNTIME=wrapped

export DEBIAN_FRONTEND=noninteractive
export DOCKSHIM_TEST_REGISTRY="$REGISTRY"
export DOCKSHIM_TEST_BUSYBOX_IMAGE="$REGISTRY/dockshim-test/busybox:latest"
export DOCKSHIM_TEST_PAUSE_IMAGE="$REGISTRY/dockshim-test/pause:3.10"
export DOCKSHIM_TEST_STRICT=1
DOCKSHIM_TEST_RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
export DOCKSHIM_TEST_RUN_ID
# The label tests/common/mod.rs (TEST_RUN_LABEL) puts on every container.
TEST_RUN_LABEL=dockshim-test-run
# The label of a test's own sandboxes and containers (tests/common/pod.rs),
# which runs made before TEST_RUN_LABEL existed carry alone.
TEST_POD_LABEL=dockshim-e2e
TEST_BINARY_TIMEOUT="${DOCKSHIM_TEST_BINARY_TIMEOUT:-15m}"
# The first pass tests the machine's dockerd, whatever the caller's shell says.
unset DOCKER_HOST DOCKSHIM_TEST_DOCKER_SOCKET DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG \
    DOCKSHIM_TEST_RUNTIME_WRAPPER_HANDLER

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'tests/run.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it manages dockerd and creates containers): sudo $0"
mkdir -p "$WORKDIR"

registry_answers() {
    curl -sf --max-time 2 "http://$REGISTRY/v2/" >/dev/null 2>&1
}

start_registry() {
    if registry_answers; then
        return
    fi
    log "starting docker-registry on $REGISTRY (log: $WORKDIR/registry.log)"
    mkdir -p "$WORKDIR/registry"
    cat >"$WORKDIR/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORKDIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
YAML
    setsid docker-registry serve "$WORKDIR/registry.yml" >>"$WORKDIR/registry.log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 60); do
        if registry_answers; then
            return
        fi
        sleep 0.5
    done
    tail -n 50 "$WORKDIR/registry.log" >&2 || true
    die "registry did not answer on $REGISTRY within 30 s"
}

ensure_rust_toolchain() {
    command -v cargo >/dev/null || die "cargo not found; install a stable Rust toolchain with rustup"
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        command -v rustup >/dev/null || die "cargo fmt and cargo clippy are needed (rustup component add rustfmt clippy)"
        rustup component add rustfmt clippy
    fi
}

# Lists the Kubernetes containers of the engine DOCKER_HOST (or the default)
# names that carry no test label, one "id name image status" line each: a
# kubelet's, or anyone's but a test run's. Fails if dockerd cannot be asked.
foreign_kubernetes_containers() {
    local listing
    listing="$(docker ps -a --format "{{.ID}}|{{.Names}}|{{.Image}}|{{.Status}}|\
{{.Label \"io.kubernetes.docker.type\"}}|{{.Label \"$TEST_RUN_LABEL\"}}{{.Label \"$TEST_POD_LABEL\"}}")" ||
        return 1
    printf '%s\n' "$listing" | awk -F'|' '
        ($2 ~ /^k8s_/ || $5 != "") && $6 == "" { print $1 " " $2 " " $3 " " $4 }'
}

# Refuses (exit status 2) to test on a dockerd that holds Kubernetes
# containers no test run made; removes nothing. The leak check touches only
# this run's containers, but the dockshim the tests start lists and answers
# for every pod on its engine: a kubelet's pods would be open to the tests'
# calls and would disturb their counts.
check_host() {
    local foreign
    foreign="$(foreign_kubernetes_containers)" ||
        die "cannot list the containers of dockerd ($(docker context show 2>/dev/null || echo default))"
    if [ -z "$foreign" ]; then
        return 0
    fi
    printf 'tests/run.sh: refusing to run: this dockerd holds Kubernetes containers that no\n' >&2
    printf 'test run made (named k8s_* or labelled io.kubernetes.docker.type, without the\n' >&2
    printf 'label %s or %s); a kubelet may own them. Nothing was removed.\n' \
        "$TEST_RUN_LABEL" "$TEST_POD_LABEL" >&2
    printf '%s\n' "$foreign" >&2
    printf 'Run the tests on a machine without a kubelet, or remove these containers yourself.\n' >&2
    exit 2
}

# Lists the containers this run created on the engine DOCKER_HOST (or the
# default) names, one "id name image status" line each.
run_containers() {
    docker ps -a --filter "label=$TEST_RUN_LABEL=$DOCKSHIM_TEST_RUN_ID" \
        --format '{{.ID}} {{.Names}} {{.Image}} {{.Status}}'
}

check_no_stray_containers() {
    local stray
    stray="$(run_containers)" || { printf 'tests/run.sh: cannot list containers\n' >&2; return 1; }
    if [ -z "$stray" ]; then
        return 0
    fi
    printf 'tests/run.sh: the tests left these containers behind:\n%s\n' "$stray" >&2
    # Removed so the next run starts clean; the list above is the evidence.
    printf '%s\n' "$stray" | cut -d' ' -f1 | xargs -r docker rm -f -v >/dev/null || true
    return 1
}

# `cargo test "$@"`, each test binary run under timeout(1): cargo runs a
# target's test binaries through its runner, which the environment sets for
# the host's target triple.
cargo_test() {
    local triple
    triple="$(rustc -vV | sed -n 's/^host: //p')"
    triple="$(printf '%s' "$triple" | tr '[:lower:]-' '[:upper:]_')"
    env "CARGO_TARGET_${triple}_RUNNER=timeout --kill-after=30s $TEST_BINARY_TIMEOUT" \
        cargo test --features failpoints "$@"
}

# The suites that talk to dockerd, as `--test NAME` arguments: every e2e suite
# (together they call every CRI method) and the ones that test the Docker
# client, the index, exec, logs, stats and streaming sessions directly.
engine_suite_args() {
    local suite
    for suite in "$REPO_ROOT"/tests/e2e_*.rs; do
        suite="$(basename "$suite" .rs)"
        printf -- '--test\n%s\n' "$suite"
    done
    for suite in docker_client exec index logs port_forward stats streaming_sessions; do
        printf -- '--test\n%s\n' "$suite"
    done
}

# The engine versions to test besides the machine's dockerd, one per line.
engine_versions() {
    local dir
    if [ -n "${DOCKSHIM_TEST_ENGINES:-}" ]; then
        printf '%s\n' $DOCKSHIM_TEST_ENGINES
        return
    fi
    for dir in "$ENGINES_DIR"/docker-*/; do
        if [ -d "$dir" ]; then
            dir="$(basename "$dir")"
            printf '%s\n' "${dir#docker-}"
        fi
    done
}

# Prints $1 single-quoted for sh.
sh_quote() {
    printf "'%s'" "${1//\'/\'\\\'\'}"
}

# Writes the runtime wrapper for engine $1 and prints its path: a two-line
# script that fixes where the calls are logged and execs the repository's
# wrapper. Rewritten only when it changes, by rename, because the engine may
# be running containers through it.
write_runtime_wrapper() {
    local version="$1" dir wrapper content
    dir="$WORKDIR/engines/docker-$version"
    wrapper="$dir/runtime-wrapper"
    mkdir -p "$dir"
    content="$(printf '#!/bin/sh\nDOCKSHIM_RUNTIME_WRAPPER_LOG=%s exec %s "$@"' \
        "$(sh_quote "$dir/runtime-wrapper.log")" \
        "$(sh_quote "$REPO_ROOT/tests/engines/runtime-wrapper.sh")")"
    if [ "$(cat "$wrapper" 2>/dev/null || true)" != "$content" ]; then
        printf '%s\n' "$content" >"$wrapper.new"
        chmod 0755 "$wrapper.new"
        mv -f "$wrapper.new" "$wrapper"
    fi
    printf '%s\n' "$wrapper"
}

# The path of the runtime `wrapped` the engine at $1 (a socket) has
# registered, or nothing.
registered_wrapper() {
    docker -H "unix://$1" info --format "{{with index .Runtimes \"$WRAPPED_RUNTIME\"}}{{.Path}}{{end}}" \
        2>/dev/null || true
}

# The default bridge of the machine's dockerd. A dockerd started with
# `--bridge none`, as engine.sh starts the engines, deletes any link of this
# name at start, in the one network namespace all the daemons share: the
# machine's dockerd then cannot start a container on its default network,
# and its running ones lose their bridge.
DEFAULT_BRIDGE=docker0

# Prints the default bridge's MTU, addresses and ports, one "mtu N",
# "addr CIDR" or "port IFNAME" line each; nothing if there is no bridge.
default_bridge_state() {
    ip link show dev "$DEFAULT_BRIDGE" >/dev/null 2>&1 || return 0
    ip -o link show dev "$DEFAULT_BRIDGE" | sed -n 's/.* mtu \([0-9]*\) .*/mtu \1/p'
    ip -o addr show dev "$DEFAULT_BRIDGE" scope global | awk '{ print "addr " $4 }'
    ip -o link show master "$DEFAULT_BRIDGE" | awk -F': ' '{ sub(/@.*/, "", $2); print "port " $2 }'
}

# Makes the default bridge again from what default_bridge_state printed
# ($1), unless it exists: same MTU and addresses, the same ports enslaved.
restore_default_bridge() {
    local state="$1" kind value
    if [ -z "$state" ] || ip link show dev "$DEFAULT_BRIDGE" >/dev/null 2>&1; then
        return 0
    fi
    log "restoring $DEFAULT_BRIDGE, which a --bridge none engine deleted"
    ip link add "$DEFAULT_BRIDGE" type bridge || return 1
    while read -r kind value; do
        case "$kind" in
        mtu) ip link set dev "$DEFAULT_BRIDGE" mtu "$value" ;;
        addr) ip addr add "$value" dev "$DEFAULT_BRIDGE" ;;
        port) ip link set dev "$value" master "$DEFAULT_BRIDGE" 2>/dev/null || true ;;
        esac
    done <<<"$state"
    ip link set dev "$DEFAULT_BRIDGE" up
}

# The machine's dockerd has a default bridge network but its link is gone
# (an earlier run was cut off between an engine's start and the restore):
# makes the link again from the network's subnet and gateway.
repair_default_bridge() {
    local subnet gateway
    if ip link show dev "$DEFAULT_BRIDGE" >/dev/null 2>&1; then
        return 0
    fi
    subnet="$(docker network inspect bridge --format \
        '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{"\n"}}{{end}}' 2>/dev/null | head -n 1)" || return 0
    read -r subnet gateway <<<"$subnet"
    if [ -z "$subnet" ] || [ "$(docker network inspect bridge --format \
        '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null)" != "$DEFAULT_BRIDGE" ]; then
        return 0
    fi
    if [ -z "$gateway" ]; then
        # dockerd's own choice: the subnet's first address.
        local a b c d n
        IFS=. read -r a b c d <<<"${subnet%/*}"
        n=$(( ((a << 24) | (b << 16) | (c << 8) | d) + 1 ))
        gateway="$(( n >> 24 & 255 )).$(( n >> 16 & 255 )).$(( n >> 8 & 255 )).$(( n & 255 ))"
    fi
    restore_default_bridge "addr $gateway/${subnet#*/}"
}

# Starts engine $1 with wrapper $2 registered, restarting it if it runs
# without that wrapper (engine.sh applies the wrapper only at start). The
# machine's default bridge survives the start.
start_engine() {
    local bridge
    bridge="$(default_bridge_state)"
    start_engine_as_asked "$@" || { restore_default_bridge "$bridge"; return 1; }
    restore_default_bridge "$bridge"
}

start_engine_as_asked() {
    local version="$1" wrapper="$2" engine socket
    engine="$ENGINES_DIR/engine.sh"
    socket="$(sh "$engine" "$version" endpoint)" || return 1
    socket="${socket#unix://}"
    if sh "$engine" "$version" status >/dev/null 2>&1 &&
        [ "$(registered_wrapper "$socket")" != "$wrapper" ]; then
        log "restarting docker-$version: it runs without the runtime $WRAPPED_RUNTIME = $wrapper"
        sh "$engine" "$version" stop >&2 || return 1
    fi
    ENGINE_LOG_DIR="$WORKDIR/engines" ENGINE_RUNTIME_WRAPPER="$wrapper" \
        sh "$engine" "$version" start >&2 || return 1
    if [ "$(registered_wrapper "$socket")" != "$wrapper" ]; then
        printf 'tests/run.sh: docker-%s does not list the runtime %s = %s\n' \
            "$version" "$WRAPPED_RUNTIME" "$wrapper" >&2
        return 1
    fi
}

# Pulls the test images into the engine DOCKER_HOST names.
pull_test_images() {
    local image
    for image in "$DOCKSHIM_TEST_BUSYBOX_IMAGE" "$DOCKSHIM_TEST_PAUSE_IMAGE"; do
        docker pull -q "$image" >/dev/null || return 1
    done
}

# Runs the dockerd suites against engine $1 and checks it for strays; run in
# a subshell, so the exported variables stay with this engine. `set -e` does
# not hold where a caller tests the status, hence the explicit returns.
test_engine() {
    local version="$1" wrapper socket status=0
    wrapper="$(write_runtime_wrapper "$version")"
    start_engine "$version" "$wrapper" || return 1
    socket="$(sh "$ENGINES_DIR/engine.sh" "$version" endpoint)" || return 1
    socket="${socket#unix://}"
    export DOCKSHIM_TEST_DOCKER_SOCKET="$socket"
    export DOCKER_HOST="unix://$socket"
    export DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG="$WORKDIR/engines/docker-$version/runtime-wrapper.log"
    export DOCKSHIM_TEST_RUNTIME_WRAPPER_HANDLER="$WRAPPED_RUNTIME"
    # Every container of the engine passes through the wrapper: the log holds
    # this run's calls only, or it would grow with each run.
    : >"$DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG"
    log "docker-$version: pulling the test images"
    pull_test_images || return 1
    log "docker-$version: cargo test (the suites that talk to dockerd)"
    local suites
    mapfile -t suites < <(engine_suite_args)
    cargo_test --workspace --no-fail-fast "${suites[@]}" || status=$?
    log "docker-$version: checking for containers this run left behind"
    check_no_stray_containers || status=1
    return "$status"
}

# Runs tests/package.sh, its output on stderr, and prints its row of the
# results table: "name|status|seconds".
package_result() {
    local started status=0
    started=$(date +%s)
    log "Debian package: build, lintian, files, systemd-analyze verify"
    bash "$REPO_ROOT/tests/package.sh" >&2 || status=$?
    printf 'Debian package (tests/package.sh)|%s|%s\n' "$status" "$(( $(date +%s) - started ))"
}

# The fuzz targets (fuzz/README.md): every corpus replayed on a plain build,
# then afl-fuzz runs each target for $DOCKSHIM_FUZZ_SECONDS (12 s here); a
# crash or a hang fails. Strict mode makes a missing afl++ fatal.
run_fuzz_targets() {
    log "fuzz: corpora replayed, then a short run of every target"
    DOCKSHIM_FUZZ_WORKDIR="$WORKDIR/fuzz" DOCKSHIM_FUZZ_SECONDS="${DOCKSHIM_FUZZ_SECONDS:-12}" \
        bash "$REPO_ROOT/fuzz/run.sh" short
}

# The server version of the engine DOCKER_HOST (or the default) names.
engine_server_version() {
    docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown
}

main() {
    local started
    started=$(date +%s)
    install_missing_packages docker.io containernetworking-plugins docker-registry busybox-static \
        apache2-utils iproute2 curl afl++
    start_dockerd "$WORKDIR/dockerd.log"
    log "checking dockerd for Kubernetes containers no test run made"
    check_host
    log "test run $DOCKSHIM_TEST_RUN_ID"
    repair_default_bridge
    start_registry
    ensure_rust_toolchain
    bash "$REPO_ROOT/tests/images/build.sh"

    cd "$REPO_ROOT"
    log "cargo fmt --check"
    cargo fmt --all --check
    cargo fmt --manifest-path fuzz/Cargo.toml --all --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy --all-targets --features failpoints -- -D warnings
    cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
    log "cargo xtask codegen --check"
    cargo xtask codegen --check
    log "cargo xtask man --check"
    cargo xtask man --check
    log "cargo test"
    local status=0 results=() engine_started engine_status=0 version
    engine_started=$(date +%s)
    cargo_test --workspace --all-targets --no-fail-fast || engine_status=$?
    log "checking for containers this run left behind"
    check_no_stray_containers || engine_status=1
    results+=("dockerd $(engine_server_version) (/var/run/docker.sock)|$engine_status|$(( $(date +%s) - engine_started ))")

    if [ -f "$ENGINES_DIR/engine.sh" ]; then
        for version in $(engine_versions); do
            log "engine matrix: docker-$version"
            engine_started=$(date +%s)
            engine_status=0
            ( test_engine "$version" ) || engine_status=$?
            results+=("docker-$version|$engine_status|$(( $(date +%s) - engine_started ))")
        done
    fi
    results+=("$(package_result)")

    engine_started=$(date +%s)
    engine_status=0
    run_fuzz_targets || engine_status=$?
    results+=("fuzz: every target, short run|$engine_status|$(( $(date +%s) - engine_started ))")

    printf '\n%-48s %-6s %s\n' engine result seconds >&2
    local row name result seconds
    for row in "${results[@]}"; do
        IFS='|' read -r name result seconds <<<"$row"
        if [ "$result" -eq 0 ]; then
            printf '%-48s %-6s %s\n' "$name" pass "$seconds" >&2
        else
            printf '%-48s %-6s %s\n' "$name" FAIL "$seconds" >&2
            status=1
        fi
    done
    log "finished in $(( $(date +%s) - started )) s with status $status"
    return "$status"
}

case "${1:-}" in
--check-host)
    check_host
    log "no Kubernetes containers but the tests' own on this dockerd"
    ;;
"") main ;;
*) die "unknown argument $1 (usage: $0 [--check-host])" ;;
esac
