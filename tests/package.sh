#!/usr/bin/env bash
# Builds the Debian package from this tree and checks it the way a
# distribution would: `tests/package.sh` from anywhere in the repository
# (tests/run.sh runs it). Nothing is installed on this machine's /.
#
#   1. copies the working tree (tracked and untracked files, not the ignored
#      ones) to $DOCKSHIM_TEST_WORKDIR/package/dockshim, links debian/ there
#      and runs `dpkg-buildpackage -us -uc -b -d`, so the build writes nothing
#      into the checkout but cargo's target/: CARGO_TARGET_DIR is the
#      repository's target/, whose compiled crates the release build reuses.
#      DEB_BUILD_OPTIONS=nocheck, as `cargo test` runs the unit tests;
#   2. runs lintian on the .changes (and so on the .deb and the .buildinfo):
#      an error or a warning fails; the warnings the package keeps are
#      overridden in packaging/debian/dockshim.lintian-overrides, each with
#      its reason;
#   3. lists the package's files with their owners and modes against the
#      expected list below, checks the conffiles, unpacks the package into a
#      scratch root (dpkg -x) and compares what it installs with the sources
#      in packaging/; runs the installed binary (--version against the
#      package's version; --print-config with the installed configuration
#      file, which must change no default, and whose cni-bin-dir must hold
#      /usr/lib/cni); renders the man page with groff's warnings on;
#   4. `systemd-analyze verify` on both units, offline: --root names a copy of
#      the scratch root to which this machine's systemd units are added, so
#      that the ExecStart= binary, the man page in Documentation= and the
#      units depended on are all found; any message fails.
# The .deb, .changes, .buildinfo and lintian's report stay in
# $DOCKSHIM_TEST_WORKDIR/package until the next run; the copied tree and the
# scratch roots are removed.
#
# Needs cargo and the Debian packages in PACKAGES; as root it installs the
# missing ones. Takes under 2 minutes when target/ holds the release build's
# dependencies (only dockshim itself is compiled, with LTO), about 2.5
# without, and seconds when the tree has not changed since the last run.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=packaging/host-setup.sh
. "$REPO_ROOT/packaging/host-setup.sh"
WORKDIR="${DOCKSHIM_TEST_WORKDIR:-/tmp/dockshim-test}/package"
TREE="$WORKDIR/dockshim"
ROOT="$WORKDIR/root"
VERIFY_ROOT="$WORKDIR/verify-root"
# systemd for systemd-analyze, man-db for the man page checks.
PACKAGES=(dpkg-dev debhelper lintian systemd man-db)

# Every file of the package but directories: mode, owner/group, path as
# `tar -tv` shows them. Directories must all be drwxr-xr-x root/root.
EXPECTED_FILES='-rw-r--r-- root/root ./etc/dockshim/dockshim.toml
-rw-r--r-- root/root ./lib/systemd/system/dockshim.service
-rw-r--r-- root/root ./lib/systemd/system/dockshim.socket
-rwxr-xr-x root/root ./usr/bin/dockshim
-rw-r--r-- root/root ./usr/share/doc/dockshim/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/dockshim/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/dockshim/copyright
-rw-r--r-- root/root ./usr/share/lintian/overrides/dockshim
-rw-r--r-- root/root ./usr/share/man/man8/dockshim.8.gz'
EXPECTED_CONFFILES='/etc/dockshim/dockshim.toml'

log() { printf '==> package: %s\n' "$*" >&2; }
fail() { printf 'tests/package.sh: %s\n' "$*" >&2; exit 1; }

require_tools() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -ne 0 ]; then
        [ "$(id -u)" -eq 0 ] || fail "missing packages (install them, or run as root): ${missing[*]}"
        install_missing_packages "${missing[@]}"
    fi
    command -v cargo >/dev/null || fail "cargo not found; install a stable Rust toolchain with rustup"
}

# The tree as git sees it, deleted files left out; a tree that is not a git
# checkout is copied whole but for target/.
copy_tree() {
    rm -rf "$TREE"
    mkdir -p "$TREE"
    if git -C "$REPO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' path; do
                if [ -e "$path" ] || [ -L "$path" ]; then
                    printf '%s\0' "$path"
                fi
            done | tar --null -T - -cf -) | tar -C "$TREE" -xf -
    else
        tar -C "$REPO_ROOT" --exclude=./target -cf - . | tar -C "$TREE" -xf -
    fi
    ln -sfn packaging/debian "$TREE/debian"
}

build() {
    local started
    started=$(date +%s)
    log "dpkg-buildpackage (log: $WORKDIR/build.log)"
    if ! (cd "$TREE" && CARGO_TARGET_DIR="$REPO_ROOT/target" DEB_BUILD_OPTIONS=nocheck \
        dpkg-buildpackage -us -uc -b -d) >"$WORKDIR/build.log" 2>&1; then
        tail -n 40 "$WORKDIR/build.log" >&2
        fail "dpkg-buildpackage failed"
    fi
    log "built in $(( $(date +%s) - started )) s: $(cd "$WORKDIR" && echo *.deb)"
}

# lintian refuses nothing as root but says it should not run so; the files
# are world-readable, so it runs as nobody when it can.
run_lintian() {
    local changes="$1" as_nobody=()
    if [ "$(id -u)" -eq 0 ]; then
        as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/nonexistent)
    fi
    log "lintian"
    if ! "${as_nobody[@]}" lintian --fail-on error,warning --display-info "$changes" \
        >"$WORKDIR/lintian.log" 2>&1; then
        cat "$WORKDIR/lintian.log" >&2
        fail "lintian found errors or warnings (overrides: packaging/debian/dockshim.lintian-overrides)"
    fi
    sed 's/^/    /' "$WORKDIR/lintian.log" >&2
}

check_file_list() {
    local deb="$1" listing files dirs
    listing="$(dpkg-deb --fsys-tarfile "$deb" | tar -tvf - | awk '{ print $1, $2, $6 }')"
    files="$(printf '%s\n' "$listing" | grep -v '^d' | LC_ALL=C sort -k 3)"
    dirs="$(printf '%s\n' "$listing" | grep '^d' | grep -v '^drwxr-xr-x root/root ' || true)"
    if [ "$files" != "$EXPECTED_FILES" ]; then
        diff <(printf '%s\n' "$EXPECTED_FILES") <(printf '%s\n' "$files") >&2 || true
        fail "the package's files differ from the expected list (< expected, > packaged)"
    fi
    [ -z "$dirs" ] || fail "directories not drwxr-xr-x root/root: $dirs"
    [ "$(dpkg-deb --info "$deb" conffiles)" = "$EXPECTED_CONFFILES" ] ||
        fail "conffiles: $(dpkg-deb --info "$deb" conffiles)"
}

check_installed_files() {
    local deb="$1" version printed defaults warnings
    rm -rf "$ROOT"
    dpkg -x "$deb" "$ROOT"
    cmp "$ROOT/etc/dockshim/dockshim.toml" "$REPO_ROOT/packaging/dockshim.toml"
    cmp "$ROOT/lib/systemd/system/dockshim.service" "$REPO_ROOT/packaging/systemd/dockshim.service"
    cmp "$ROOT/lib/systemd/system/dockshim.socket" "$REPO_ROOT/packaging/systemd/dockshim.socket"
    zcat "$ROOT/usr/share/man/man8/dockshim.8.gz" | cmp - "$REPO_ROOT/packaging/dockshim.8"

    version="$(dpkg-deb --field "$deb" Version)"
    [ "$("$ROOT/usr/bin/dockshim" --version)" = "dockshim ${version%-*}" ] ||
        fail "dockshim --version says $("$ROOT/usr/bin/dockshim" --version), the package is $version"
    printed="$("$ROOT/usr/bin/dockshim" --config "$ROOT/etc/dockshim/dockshim.toml" --print-config)" ||
        fail "dockshim --print-config refuses the installed configuration file"
    defaults="$("$ROOT/usr/bin/dockshim" --config '' --print-config)"
    # The first line names the file read.
    [ "$(printf '%s\n' "$printed" | tail -n +2)" = "$(printf '%s\n' "$defaults" | tail -n +2)" ] ||
        fail "the installed configuration file changes the defaults"
    printf '%s\n' "$printed" | grep -qx 'cni-bin-dir = \[.*"/usr/lib/cni".*\]' ||
        fail "the packaged configuration does not search /usr/lib/cni for CNI plugins"

    warnings="$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$ROOT/usr/share/man/man8/dockshim.8.gz" 2>&1 >/dev/null)"
    [ -z "$warnings" ] || fail "the man page renders with warnings: $warnings"
}

verify_units() {
    local output
    rm -rf "$VERIFY_ROOT"
    cp -a "$ROOT" "$VERIFY_ROOT"
    cp -rn /lib/systemd/system/. "$VERIFY_ROOT/lib/systemd/system/"
    log "systemd-analyze verify"
    output="$(MANPATH="$VERIFY_ROOT/usr/share/man" systemd-analyze verify --root="$VERIFY_ROOT" \
        "$VERIFY_ROOT/lib/systemd/system/dockshim.socket" \
        "$VERIFY_ROOT/lib/systemd/system/dockshim.service" 2>&1)" ||
        fail "systemd-analyze verify failed: $output"
    [ -z "$output" ] || fail "systemd-analyze verify: $output"
    # For the record: systemd's own score of the unit's hardening.
    systemd-analyze security --offline=yes --root="$VERIFY_ROOT" --no-pager dockshim.service 2>&1 |
        awk '/Overall exposure/ { print "    systemd-analyze security: exposure " $(NF-2) " " $(NF-1) }' >&2
}

cleanup() {
    rm -rf "$TREE" "$ROOT" "$VERIFY_ROOT"
}

main() {
    local changes deb
    require_tools
    rm -rf "$WORKDIR"
    mkdir -p "$WORKDIR"
    trap cleanup EXIT
    copy_tree
    build
    changes="$(echo "$WORKDIR"/dockshim_*.changes)"
    deb="$(echo "$WORKDIR"/dockshim_*.deb)"
    if [ ! -f "$changes" ] || [ ! -f "$deb" ]; then
        fail "dpkg-buildpackage made no single .changes and .deb"
    fi
    run_lintian "$changes"
    log "files, conffiles, binary, man page"
    check_file_list "$deb"
    check_installed_files "$deb"
    verify_units
    log "ok"
}

main "$@"
