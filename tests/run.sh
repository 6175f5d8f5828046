#!/usr/bin/env bash
# run.sh — build qqmgr and run every test: unit tests (cmocka) and end-to-end
# tests (pytest, real QEMU under TCG) against a sanitizer build (ASan+UBSan),
# a gcc and a clang -Werror build, toml-test conformance, and bounded fuzzing.
#
# Each phase prints "=== PHASE (estimate: ~N s)" before it starts and
# "--- PHASE: N s" when it ends, and a table of every phase's time at the end.
# The estimates are this machine's times of the last full run (kept in
# build/run-times.txt), or the table below (a 2-core machine with the test
# guests cached) before there was one.
#
# Only the sanitizer build comes first (every test runs it). The gcc and clang
# -Werror builds, the fuzzers' build and the fuzzing run after it in the
# background at nice 19, on what the tests leave idle (the end-to-end tests wait
# for guests and timeouts much of the time); their results come last. The
# end-to-end tests run in three lanes at once (see the e2e phase below).
#
# Usage: tests/run.sh [PYTEST_ARGS...]   (with arguments: one pytest, no lanes)
# Env:   QQ_FUZZ_SECONDS (default 60 per target, both at once; 0 skips fuzzing)
#        QQ_TOML_TEST    a toml-test folder (its run.py DECODER runs the TOML 1.0.0
#                        cases); unset or missing: that step is skipped, said so
#        QQ_UPSTREAM_CONFIGS  the original qqmgr's example and test configs
#                        (qqmgr.example.toml, test-config.toml); unset or missing:
#                        the two e2e tests that load them are skipped, said so
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ=${QQ_FUZZ_SECONDS:-60}

# ------------------------------------------------------------------ phases and their times
# A phase's estimate: its time in the last full run on this machine, else this table's
# (seconds; a 2-core machine shared with nothing, test guests cached).
declare -A EST=([deps]=1 [asan]=40 [unit]=5 [toml]=7 [e2e]=550 [background]=5)
TIMES=$ROOT/build/run-times.txt
if [ -f "$TIMES" ]; then
    while read -r k v; do [ -n "${EST[$k]+x}" ] && [[ $v =~ ^[0-9]+$ ]] && EST[$k]=$v; done <"$TIMES"
fi
declare -A TOOK=()
ORDER=()
cur= ; cur_t0=0
phase_end() {
    [ -n "$cur" ] || return 0
    local took=$((SECONDS - cur_t0))
    TOOK[$cur]=$took
    printf -- '--- %s: %d s\n' "$cur_title" "$took"
    cur=
}
phase() {  # phase KEY TITLE: end the current phase, start KEY
    phase_end
    cur=$1; cur_title=$2; cur_t0=$SECONDS; ORDER+=("$1")
    printf '\n=== %s (estimate: ~%d s)\n' "$2" "${EST[$1]}"
}
save_times() {  # the phases that ran in full, for the next run's estimates
    mkdir -p "$ROOT/build"
    local k tmp=$TIMES.tmp
    { for k in "${!EST[@]}"; do
          if [ -n "${TOOK[$k]+x}" ] && { [ "$k" != e2e ] || [ $full_e2e = 1 ]; }; then
              echo "$k ${TOOK[$k]}"
          else
              echo "$k ${EST[$k]}"
          fi
      done; } >"$tmp" && mv "$tmp" "$TIMES"
}
total_est=0
for k in "${!EST[@]}"; do total_est=$((total_est + EST[$k])); done
T0=$SECONDS
printf '=== tests/run.sh: every phase, estimate ~%d s (~%d min) in all\n' $total_est $(((total_est + 30) / 60))

fail=0
full_e2e=0
[ $# -eq 0 ] && full_e2e=1
setup() {  # setup DIR [meson args...]
    local d=$1; shift
    if [ -f "$d/build.ninja" ]; then meson setup --reconfigure "$d" "$@" >/dev/null
    else meson setup "$d" "$@" >/dev/null; fi
}

phase deps "dependencies (tools/deps.sh: installs only what is missing)"
tools/deps.sh || exit 1

phase asan "build: sanitizers (ASan + UBSan, gcc; what the tests run)"
CC=gcc setup build-asan -Db_sanitize=address,undefined -Db_lundef=false || exit 1
ninja -C build-asan >/dev/null || { ninja -C build-asan; exit 1; }

# ------------------------------------------------------------------ in the background
# -Werror builds with gcc (release) and clang, the fuzzers' build, then both fuzzers at
# once; each part's output and exit status in $BG/, reported after the tests.
BG=$(mktemp -d)
bg_pid=
lane_pids=()
cleanup() {  # an interrupted run: the background work and the other test lanes end with it
    [ -z "$bg_pid" ] || { kill -TERM -- -"$bg_pid" 2>/dev/null; wait "$bg_pid"; }
    for p in "${lane_pids[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p"; done
    rm -rf "$BG"
}
trap cleanup EXIT
part() {  # part NAME CMD...: run CMD; its output, exit status and wall time in $BG/NAME.*
    local t0=$SECONDS
    "${@:2}" >"$BG/$1.log" 2>&1
    echo "$? $((SECONDS - t0))" >"$BG/$1.rc"
}
build_gcc() { CC=gcc setup build && ninja -C build; }
build_clang() { CC=clang setup build-clang && ninja -C build-clang; }
build_fuzz() {
    CC=clang setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false &&
        ninja -C build-fuzz tests/fuzz_toml tests/fuzz_tmpl
}
fuzz_one() {  # fuzz_one TARGET
    mkdir -p "$BG/corpus-$1"
    cp tests/fuzz/corpus/$1/* "$BG/corpus-$1"/ 2>/dev/null || true
    build-fuzz/tests/fuzz_$1 -max_total_time="$FUZZ" -max_len=4096 -print_final_stats=1 "$BG/corpus-$1"
}
background() {
    part gcc build_gcc
    part clang build_clang
    [ "$FUZZ" != 0 ] || return 0
    part fuzzbuild build_fuzz
    read -r rc _ <"$BG/fuzzbuild.rc"
    [ "$rc" = 0 ] || return 0
    part fuzz_toml fuzz_one toml &
    part fuzz_tmpl fuzz_one tmpl &
    wait
}
export BG FUZZ
export -f setup part build_gcc build_clang build_fuzz fuzz_one background
# its own process group (the cleanup ends all of it), at nice 19
setsid nice -n 19 bash -c background &
bg_pid=$!
echo "(from here on in the background, at nice 19: the gcc and clang -Werror builds, the fuzzers'" \
     "build and fuzzing, ${FUZZ} s per target; their results come after the tests)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

phase unit "unit tests (cmocka, sanitizer build)"
# the runners' summaries on success; the whole log of what failed otherwise
meson test -C build-asan --suite unit --verbose >build-asan/unit.log 2>&1
urc=$?
grep -E "^\[ *(PASSED|FAILED|SKIPPED) *\]|^\[==========\] [0-9]+ test|^ *[0-9]+/[0-9]+ +[a-z_]+ +(OK|FAIL|SKIP|TIMEOUT)|^(Ok|Fail|Skipped|Timeout):" build-asan/unit.log
if [ $urc -ne 0 ]; then fail=1; tail -n 150 build-asan/unit.log; fi

TT=${QQ_TOML_TEST:-}
if [ -n "$TT" ] && [ -f "$TT/run.py" ]; then
    phase toml "toml-test conformance ($TT)"
    /usr/bin/python3 "$TT/run.py" build-asan/tests/toml-test-decoder || fail=1
else
    phase toml "toml-test: skipped (QQ_TOML_TEST=${TT:-<unset>} has no run.py)"
fi
[ -n "${QQ_UPSTREAM_CONFIGS:-}" ] ||
    echo "(QQ_UPSTREAM_CONFIGS unset: the e2e tests of the original's configs will be skipped)"

phase e2e "end-to-end tests (pytest, real QEMU under TCG, sanitizer build)"
e2e() {  # pytest, with SIGINT at its default (bash leaves it ignored in a background job)
    QQ_BUILD_DIR=$ROOT/build-asan /usr/bin/python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]])' -ra -p no:cacheprovider "$@"
}
if [ $full_e2e = 1 ]; then
    # Three lanes at once (two cores; much of a test is waiting for a TCG guest or for
    # a fixed bound of qqmgr's, so a third lane fills the idle time):
    #  2: the Debian cloud guest's tests (one image build for the lane's session, shared by
    #     test_img_cloud and test_mapped_debian, and boots of minutes) with the tests that
    #     mostly wait for fixed timeouts (30 s lock and login bounds, stalled peers, a
    #     silent guest) and the debugging kit's;
    #  3: the snapshot and copy tests (many saves and restores of tiny guests), the
    #     engines' (GNU parallel, a Slurm cluster) and run --json's;
    #  1: all the others (tiny guests and no guest at all; a new file lands here).
    # Lanes 2 and 3 print after lane 1; each lane is one pytest session (its own golden).
    LANE2=(tests/e2e/test_img_cloud.py tests/e2e/test_mapped_debian.py tests/e2e/test_init.py
           tests/e2e/test_wait_why.py tests/e2e/test_lock_bounds.py tests/e2e/test_bounded.py
           tests/e2e/test_debug.py)
    LANE3=(tests/e2e/test_snapshot.py tests/e2e/test_mapped.py tests/e2e/test_copies.py
           tests/e2e/test_engines.py tests/e2e/test_run_json.py)
    e2e --junitxml=build-asan/e2e-lane2.xml "${LANE2[@]}" >build-asan/e2e-lane2.log 2>&1 &
    lane_pids+=($!)
    e2e --junitxml=build-asan/e2e-lane3.xml "${LANE3[@]}" >build-asan/e2e-lane3.log 2>&1 &
    lane_pids+=($!)
    echo "(beside these run lane 2: ${LANE2[*]#tests/e2e/}; and lane 3: ${LANE3[*]#tests/e2e/};" \
         "their output follows)"
    ignore=("${LANE2[@]/#/--ignore=}" "${LANE3[@]/#/--ignore=}")
    e2e --junitxml=build-asan/e2e-lane1.xml tests/e2e "${ignore[@]}" || fail=1
    for p in "${lane_pids[@]}"; do wait "$p" || fail=1; done
    lane_pids=()
    printf '\n--- lane 2 (%s)\n' "${LANE2[*]#tests/e2e/}"
    cat build-asan/e2e-lane2.log
    printf '\n--- lane 3 (%s)\n' "${LANE3[*]#tests/e2e/}"
    cat build-asan/e2e-lane3.log
    printf '\n--- where the end-to-end minutes went (test time per file, slowest first)\n'
    /usr/bin/python3 tests/tools/e2e-times.py build-asan/e2e-lane[123].xml
else
    e2e tests/e2e "$@" || fail=1
fi

phase background "results of the background work (-Werror builds, fuzzing)"
renice -n 0 -g "$bg_pid" >/dev/null 2>&1   # nothing else to wait for now (root only; else it stays niced)
wait "$bg_pid"
bg_pid=
for p in gcc clang fuzzbuild fuzz_toml fuzz_tmpl; do
    [ -f "$BG/$p.rc" ] || continue
    read -r rc took <"$BG/$p.rc"
    case $p in
        gcc) what="build: gcc (release), -Werror" ;;
        clang) what="build: clang, -Werror" ;;
        fuzzbuild) what="build: the fuzzers (clang, libFuzzer, ASan/UBSan)" ;;
        *) what="$p: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$BG/$p.log" | grep -o '[0-9]*$') runs, no crash" ;;
    esac
    if [ "$rc" = 0 ]; then
        printf '  %-52s ok   (%d s)\n' "$what" "$took"
    else
        printf '  %s FAILED (exit %s):\n' "$p" "$rc"; tail -n 40 "$BG/$p.log"; fail=1
    fi
done
[ "$FUZZ" != 0 ] || echo "  fuzzing: skipped (QQ_FUZZ_SECONDS=0)"
phase_end
save_times

printf '\n=== result (%d s in all; estimate was ~%d s)\n' $((SECONDS - T0)) $total_est
for k in "${ORDER[@]}"; do printf '  %-10s %5d s  (estimate ~%d s)\n' "$k" "${TOOK[$k]}" "${EST[$k]}"; done
if [ $fail -eq 0 ]; then echo "all tests passed"; else echo "SOME TESTS FAILED"; fi
exit $fail
