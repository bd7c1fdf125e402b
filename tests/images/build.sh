#!/usr/bin/env bash
# Builds the test images from Debian's busybox-static, with no Dockerfile and no
# network access, and pushes them to the local test registry:
#   $DOCKSHIM_TEST_BUSYBOX_IMAGE  busybox with every applet, CMD ["/bin/sh"]
#   $DOCKSHIM_TEST_PAUSE_IMAGE    the same root filesystem, sleeping until SIGTERM,
#                                 standing in for the sandbox ("pause") image
# Both have /etc/passwd and /etc/group with root and nobody (uid/gid 65534).
# An image already known to dockerd is not rebuilt; one already in the registry
# is not pushed again. Called by tests/run.sh, which sets the variables below.
set -euo pipefail

REGISTRY="${DOCKSHIM_TEST_REGISTRY:-127.0.0.1:5000}"
BUSYBOX_IMAGE="${DOCKSHIM_TEST_BUSYBOX_IMAGE:-$REGISTRY/dockshim-test/busybox:latest}"
PAUSE_IMAGE="${DOCKSHIM_TEST_PAUSE_IMAGE:-$REGISTRY/dockshim-test/pause:3.10}"
BUSYBOX_BIN=/bin/busybox

log() { printf '==> %s\n' "$*" >&2; }

# Writes a root filesystem tarball to $1.
build_rootfs_tar() {
    local tarball="$1" rootfs applet
    rootfs="$(mktemp -d)"
    mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev,var/run}
    chmod 1777 "$rootfs/tmp"
    install -m 0755 "$BUSYBOX_BIN" "$rootfs/bin/busybox"
    for applet in $("$BUSYBOX_BIN" --list); do
        if [ "$applet" != busybox ]; then
            ln -sf busybox "$rootfs/bin/$applet"
        fi
    done
    printf '%s\n' \
        'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$rootfs/etc/passwd"
    printf '%s\n' \
        'root:x:0:' \
        'nogroup:x:65534:' >"$rootfs/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$tarball" .
    rm -rf "$rootfs"
}

# Imports the tarball as image $2 with the Dockerfile-style CMD $3, unless an
# image of that name with that CMD is present. Returns 0 when it imported.
import_if_missing() {
    local tarball="$1" image="$2" cmd="$3" current
    current="$(docker image inspect --format '{{json .Config.Cmd}}' "$image" 2>/dev/null || true)"
    if [ "$current" = "$cmd" ]; then
        return 1
    fi
    if [ ! -s "$tarball" ]; then
        build_rootfs_tar "$tarball"
    fi
    log "importing $image"
    docker import --change "CMD $cmd" "$tarball" "$image" >/dev/null
}

# Pushes image $1 unless the registry already has its tag; with $2 = force,
# pushes anyway (the image was just rebuilt).
push_if_missing() {
    local image="$1" force="${2:-}" repo tag
    repo="${image#"$REGISTRY"/}"
    tag="${repo##*:}"
    repo="${repo%:*}"
    if [ "$force" != force ] && curl -sf --max-time 5 -o /dev/null \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY/v2/$repo/manifests/$tag"; then
        return
    fi
    log "pushing $image"
    docker push -q "$image" >/dev/null
}

main() {
    local tarball
    BUILD_DIR="$(mktemp -d)"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    tarball="$BUILD_DIR/rootfs.tar"
    local busybox_force="" pause_force=""
    import_if_missing "$tarball" "$BUSYBOX_IMAGE" '["/bin/sh"]' && busybox_force=force
    # Like the real pause binary, exit at once on SIGTERM: a plain
    # `sleep infinity` as PID 1 ignores it, and every stop would wait out
    # the grace period.
    import_if_missing "$tarball" "$PAUSE_IMAGE" \
        '["/bin/sh","-c","stop() { exit 0; }; trap stop TERM INT; while :; do sleep 3600 & wait; done"]' \
        && pause_force=force
    push_if_missing "$BUSYBOX_IMAGE" "$busybox_force"
    push_if_missing "$PAUSE_IMAGE" "$pause_force"
}

main "$@"
