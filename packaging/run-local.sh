#!/usr/bin/env bash
# Runs dockshim on this machine: `sudo packaging/run-local.sh [dockshim flags]`.
#
# On a Debian 12 machine, as root, it installs what dockshim needs if missing
# (docker.io, containernetworking-plugins, curl), starts dockerd if it does
# not answer, builds the release binary and runs it in the foreground on
# unix:///run/dockshim.sock (Debian's CNI plugins in /usr/lib/cni are found
# by default). While /etc/cni/net.d holds no configuration, pods join
# dockshim's built-in network (bridge dockshim0, 10.86.0.0/16 or the
# --pod-cidr given; see --default-network), so a pod with a pod network runs
# at once. Extra arguments go to dockshim. Stop it with Ctrl-C.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=packaging/host-setup.sh
. "$REPO_ROOT/packaging/host-setup.sh"

[ "$(id -u)" -eq 0 ] || host_die "must run as root (dockshim manages containers and networks): sudo $0"
command -v cargo >/dev/null || host_die "cargo not found; install a stable Rust toolchain with rustup"

install_missing_packages docker.io containernetworking-plugins curl
start_dockerd /var/log/dockerd.log

cd "$REPO_ROOT"
cargo build --release --bin dockshim
exec target/release/dockshim "$@"
