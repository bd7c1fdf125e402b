#!/usr/bin/env bash
# The one test command: `sudo tests/run.sh` from anywhere in the repository.
#
# On a Debian 12 machine, as root, it makes the test environment exist and then
# runs every check CI runs:
#   1. installs what is missing (docker.io, containernetworking-plugins,
#      docker-registry, busybox-static, apache2-utils, iproute2, curl);
#   2. starts dockerd if /var/run/docker.sock does not answer (no init system is
#      assumed: dockerd runs in the background, its log under $DOCKSHIM_TEST_WORKDIR);
#   3. starts a registry on 127.0.0.1:5000 if none answers;
#   4. builds the busybox and pause test images from busybox-static and pushes
#      them to that registry (tests/images/build.sh);
#   5. cargo fmt --check, clippy, codegen and man page diff checks, cargo test;
#   6. fails if any container created by the tests is left behind.
# Running it again reuses whatever is already there. Needs a Rust toolchain
# (rustup, stable) on PATH; everything else comes from Debian's archive.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=packaging/host-setup.sh
. "$REPO_ROOT/packaging/host-setup.sh"
WORKDIR="${DOCKSHIM_TEST_WORKDIR:-/tmp/dockshim-test}"
REGISTRY=127.0.0.1:5000

export DEBIAN_FRONTEND=noninteractive
export DOCKSHIM_TEST_REGISTRY="$REGISTRY"
export DOCKSHIM_TEST_BUSYBOX_IMAGE="$REGISTRY/dockshim-test/busybox:latest"
export DOCKSHIM_TEST_PAUSE_IMAGE="$REGISTRY/dockshim-test/pause:3.10"

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

# Lists containers the tests may have created, one "id name" line each.
stray_containers() {
    {
        docker ps -a --filter 'name=^k8s_' --format '{{.ID}} {{.Names}} {{.Image}} {{.Status}}'
        docker ps -a --filter 'label=io.kubernetes.docker.type' --format '{{.ID}} {{.Names}} {{.Image}} {{.Status}}'
        docker ps -a --filter 'label=dockshim-test=1' --format '{{.ID}} {{.Names}} {{.Image}} {{.Status}}'
    } | sort -u
}

check_no_stray_containers() {
    local stray
    stray="$(stray_containers)"
    if [ -z "$stray" ]; then
        return 0
    fi
    printf 'tests/run.sh: the tests left these containers behind:\n%s\n' "$stray" >&2
    # Removed so the next run starts clean; the list above is the evidence.
    printf '%s\n' "$stray" | cut -d' ' -f1 | xargs -r docker rm -f >/dev/null || true
    return 1
}

main() {
    local started
    started=$(date +%s)
    install_missing_packages docker.io containernetworking-plugins docker-registry busybox-static \
        apache2-utils iproute2 curl
    start_dockerd "$WORKDIR/dockerd.log"
    start_registry
    ensure_rust_toolchain
    bash "$REPO_ROOT/tests/images/build.sh"

    cd "$REPO_ROOT"
    log "cargo fmt --check"
    cargo fmt --all --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
    log "cargo xtask codegen --check"
    cargo xtask codegen --check
    log "cargo xtask man --check"
    cargo xtask man --check
    log "cargo test"
    local status=0
    cargo test --workspace --all-targets || status=$?

    log "checking for stray containers"
    check_no_stray_containers || status=1
    log "finished in $(( $(date +%s) - started )) s with status $status"
    return "$status"
}

main "$@"
