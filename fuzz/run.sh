#!/usr/bin/env bash
# Builds and runs dockshim's fuzz targets (see fuzz/README.md).
#
#   fuzz/run.sh build            the plain and the instrumented build
#   fuzz/run.sh replay           every corpus through the plain build
#   fuzz/run.sh short [TARGET..] replay, then afl-fuzz each target for
#                                $DOCKSHIM_FUZZ_SECONDS (default 12) seconds;
#                                fails on any crash or hang
#   fuzz/run.sh long [TARGET..]  afl-fuzz each target for $DOCKSHIM_FUZZ_MINUTES
#                                (default 10) minutes, $DOCKSHIM_FUZZ_JOBS
#                                (default 2) at a time, under nice; prints the
#                                table of figures and writes it to
#                                $DOCKSHIM_FUZZ_FIGURES (default: none)
#   fuzz/run.sh seeds            rewrites the seed corpora from known-good encodings
#   fuzz/run.sh targets          lists the targets
#
# Without TARGET, every target. Needs Debian's afl++ for everything but
# `replay` and `seeds`. The fuzzers' output (queue, crashes, hangs,
# fuzzer_stats) is kept under $DOCKSHIM_FUZZ_WORKDIR (default
# /tmp/dockshim-fuzz)/<mode>/<target>; a crash is reproduced with
# `fuzz/target/release/<target> <that crash file>`.
#
# When afl-fuzz is missing, `short` prints `skipped:` and succeeds, unless
# DOCKSHIM_TEST_STRICT=1 (the test command), when it fails.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORKDIR="${DOCKSHIM_FUZZ_WORKDIR:-/tmp/dockshim-fuzz}"
AFL_LIB_DIR="${DOCKSHIM_FUZZ_AFL_LIB:-/usr/lib/afl}"
SHORT_SECONDS="${DOCKSHIM_FUZZ_SECONDS:-12}"
LONG_MINUTES="${DOCKSHIM_FUZZ_MINUTES:-10}"
JOBS="${DOCKSHIM_FUZZ_JOBS:-2}"
PLAIN_DIR="$FUZZ_DIR/target/release"
HOST_TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
AFL_DIR="$FUZZ_DIR/target/afl/$HOST_TRIPLE/release"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'fuzz/run.sh: %s\n' "$*" >&2; exit 1; }

# The targets, one per line: every file in fuzz_targets/.
all_targets() {
    local file
    for file in "$FUZZ_DIR"/fuzz_targets/*.rs; do
        basename "$file" .rs
    done
}

# How long one input of target $1 may take, in ms, before afl-fuzz calls it
# a hang. The session target sets up a connection and threads per input;
# the Docker client target may wait out its stub's read timeouts.
target_timeout_ms() {
    case "$1" in
    streaming_session) echo 5000 ;;
    docker_client) echo 2000 ;;
    *) echo 1000 ;;
    esac
}

build_plain() {
    log "plain build of the fuzz targets"
    (cd "$FUZZ_DIR" && cargo build --release --bins)
}

# Instrumented for AFL++ on stable Rust: LLVM's SanitizerCoverage pass with
# trace-pc-guard, whose callbacks afl-compiler-rt.o implements, and
# libAFLDriver.a for `main` (persistent mode, shared-memory input). An
# explicit --target keeps these flags off build scripts and proc macros,
# which run on the host and must not link the AFL runtime.
build_afl() {
    local bins=() target
    for target in $(all_targets); do
        bins+=(--bin "$target")
    done
    [ -f "$AFL_LIB_DIR/afl-compiler-rt.o" ] && [ -f "$AFL_LIB_DIR/libAFLDriver.a" ] ||
        die "no AFL++ runtime in $AFL_LIB_DIR (apt-get install afl++)"
    log "instrumented build of the fuzz targets"
    (cd "$FUZZ_DIR" && RUSTFLAGS="--cfg afl \
-C passes=sancov-module \
-C llvm-args=-sanitizer-coverage-level=3 \
-C llvm-args=-sanitizer-coverage-trace-pc-guard \
-C codegen-units=1 \
-C link-arg=$AFL_LIB_DIR/afl-compiler-rt.o \
-C link-arg=$AFL_LIB_DIR/libAFLDriver.a" \
        cargo build --release --target "$HOST_TRIPLE" --target-dir "$FUZZ_DIR/target/afl" "${bins[@]}")
}

# Replays the corpus of every target named (default: all) on the plain build.
replay() {
    local target status=0
    for target in "$@"; do
        [ -d "$FUZZ_DIR/corpus/$target" ] || die "no corpus for $target"
        printf '%-24s ' "$target" >&2
        DOCKSHIM_FUZZ_SCRATCH="$WORKDIR/scratch" "$PLAIN_DIR/$target" "$FUZZ_DIR/corpus/$target" >&2 ||
            status=1
    done
    return "$status"
}

# Runs afl-fuzz on target $1 for $2 seconds with output in $3; `nice`
# is prefixed by the caller when wanted.
afl_run() {
    local target="$1" seconds="$2" out="$3"
    rm -rf "$out"
    mkdir -p "$out" "$WORKDIR/scratch"
    # AFL_SKIP_CPUFREQ / AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES: the host's
    # CPU governor and core_pattern are not ours to change.
    AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
        AFL_NO_AFFINITY=1 \
        DOCKSHIM_FUZZ_SCRATCH="$WORKDIR/scratch" \
        afl-fuzz -i "$FUZZ_DIR/corpus/$target" -o "$out" -V "$seconds" \
        -t "$(target_timeout_ms "$target")" -m none \
        -- "$AFL_DIR/$target" >"$out/afl-fuzz.log" 2>&1
}

# A value from the fuzzer_stats of the run in $1.
stat() {
    sed -n "s/^$2 *: *//p" "$1/default/fuzzer_stats" 2>/dev/null | head -n 1
}

# Prints the row of the run of target $1 in $2 that lasted $3 minutes.
figures_row() {
    local target="$1" out="$2" minutes="$3"
    printf '| %s | %s | %s | %s | %s | %s/%s | %s | %s |\n' "$target" "$minutes" \
        "$(stat "$out" execs_done)" "$(stat "$out" execs_per_sec)" "$(stat "$out" corpus_count)" \
        "$(stat "$out" edges_found)" "$(stat "$out" total_edges)" \
        "$(stat "$out" saved_crashes)" "$(stat "$out" saved_hangs)"
}

figures_header() {
    printf '| target | minutes | executions | execs/s | corpus | edges found/total | crashes | hangs |\n'
    printf '|---|---|---|---|---|---|---|---|\n'
}

# True if the run in $1 saved no crash and no hang; prints them otherwise.
run_is_clean() {
    local out="$1" found
    found="$(find "$out/default/crashes" "$out/default/hangs" -type f ! -name README.txt 2>/dev/null)"
    if [ -z "$found" ] && [ -f "$out/default/fuzzer_stats" ]; then
        return 0
    fi
    if [ ! -f "$out/default/fuzzer_stats" ]; then
        printf 'afl-fuzz did not run; its log:\n' >&2
        tail -n 30 "$out/afl-fuzz.log" >&2 || true
    fi
    printf '%s\n' "$found" >&2
    return 1
}

have_afl() {
    command -v afl-fuzz >/dev/null && [ -f "$AFL_LIB_DIR/libAFLDriver.a" ]
}

short() {
    local targets=("$@") target status=0 out
    build_plain
    log "replaying the corpora"
    replay "${targets[@]}" || status=1
    if ! have_afl; then
        if [ "${DOCKSHIM_TEST_STRICT:-}" = 1 ]; then
            die "afl-fuzz or $AFL_LIB_DIR/libAFLDriver.a is missing (apt-get install afl++)"
        fi
        printf 'skipped: afl-fuzz is not installed (apt-get install afl++); corpora replayed only\n' >&2
        return "$status"
    fi
    build_afl
    figures_header >&2
    for target in "${targets[@]}"; do
        out="$WORKDIR/short/$target"
        afl_run "$target" "$SHORT_SECONDS" "$out" || true
        figures_row "$target" "$out" "$(awk "BEGIN { print $SHORT_SECONDS / 60 }")" >&2
        if ! run_is_clean "$out"; then
            printf 'fuzz/run.sh: %s: crash or hang (reproduce: %s/%s FILE)\n' \
                "$target" "$PLAIN_DIR" "$target" >&2
            status=1
        fi
    done
    rm -rf "$WORKDIR/scratch"
    return "$status"
}

long() {
    local targets=("$@") target status=0 running=0 out figures commit
    have_afl || die "afl-fuzz or $AFL_LIB_DIR/libAFLDriver.a is missing (apt-get install afl++)"
    # The commit the targets are built from, named in the figures.
    commit="$(git -C "$FUZZ_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')"
    build_plain
    build_afl
    log "fuzzing ${#targets[@]} targets for $LONG_MINUTES minutes each, $JOBS at a time"
    for target in "${targets[@]}"; do
        if [ "$running" -ge "$JOBS" ]; then
            wait -n || true
            running=$((running - 1))
        fi
        log "start $target"
        nice -n 10 "$FUZZ_DIR/run.sh" fuzz-one "$target" $((LONG_MINUTES * 60)) "$WORKDIR/long/$target" &
        running=$((running + 1))
    done
    wait || true
    figures="$(figures_header
        for target in "${targets[@]}"; do
            figures_row "$target" "$WORKDIR/long/$target" "$LONG_MINUTES"
        done)"
    printf '%s\n' "$figures"
    if [ -n "${DOCKSHIM_FUZZ_FIGURES:-}" ]; then
        {
            printf 'Fuzzing figures, %s, %s, afl++ %s, %s minutes per target, %s at a time.\n\n' \
                "$(date -u +%Y-%m-%d)" "$commit" \
                "$(dpkg-query -W -f='${Version}' afl++ 2>/dev/null || echo '?')" "$LONG_MINUTES" "$JOBS"
            printf '%s\n' "$figures"
        } >"$DOCKSHIM_FUZZ_FIGURES"
    fi
    for target in "${targets[@]}"; do
        out="$WORKDIR/long/$target"
        if ! run_is_clean "$out"; then
            printf 'fuzz/run.sh: %s: crash or hang in %s\n' "$target" "$out/default" >&2
            status=1
        fi
    done
    rm -rf "$WORKDIR/scratch"
    return "$status"
}

main() {
    local command="${1:-short}"
    shift || true
    local targets=("$@")
    if [ "${#targets[@]}" -eq 0 ]; then
        mapfile -t targets < <(all_targets)
    fi
    case "$command" in
    build)
        build_plain
        build_afl
        ;;
    replay)
        build_plain
        replay "${targets[@]}"
        ;;
    short) short "${targets[@]}" ;;
    long) long "${targets[@]}" ;;
    seeds)
        (cd "$FUZZ_DIR" && cargo run --release --bin seeds -- "$FUZZ_DIR/corpus")
        ;;
    targets) printf '%s\n' "${targets[@]}" ;;
    # `long`'s worker: fuzz-one TARGET SECONDS OUTPUT_DIR, on the last build.
    fuzz-one) afl_run "${targets[@]}" ;;
    *) die "unknown command $command (build, replay, short, long, seeds, targets)" ;;
    esac
}

main "$@"
