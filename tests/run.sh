#!/usr/bin/env bash
# run.sh — build qqmgr and run every test: unit tests (cmocka) and end-to-end
# tests (pytest, real QEMU under TCG) against a sanitizer build (ASan+UBSan),
# a gcc and a clang -Werror build, toml-test conformance, and bounded fuzzing.
#
# Usage: tests/run.sh [PYTEST_ARGS...]
# Env:   QQ_FUZZ_SECONDS (default 60; 0 skips fuzzing)
#        QQ_TOML_TEST    a toml-test folder (its run.py DECODER runs the TOML 1.0.0
#                        cases); unset or missing: that step is skipped, said so
#        QQ_UPSTREAM_CONFIGS  the original qqmgr's example and test configs
#                        (qqmgr.example.toml, test-config.toml); unset or missing:
#                        the two e2e tests that load them are skipped, said so
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
tools/deps.sh || exit 1

fail=0
step() { printf '\n=== %s\n' "$*"; }
setup() {  # setup DIR [meson args...]
    local d=$1; shift
    if [ -f "$d/build.ninja" ]; then meson setup --reconfigure "$d" "$@" >/dev/null
    else meson setup "$d" "$@" >/dev/null; fi
}

step "build: gcc (release) and clang, -Wall -Wextra -Werror"
CC=gcc setup build || exit 1
ninja -C build >/dev/null || { ninja -C build; exit 1; }
CC=clang setup build-clang || exit 1
ninja -C build-clang >/dev/null || { ninja -C build-clang; exit 1; }

step "build: sanitizers (ASan + UBSan)"
CC=gcc setup build-asan -Db_sanitize=address,undefined -Db_lundef=false || exit 1
ninja -C build-asan >/dev/null || { ninja -C build-asan; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

step "unit tests (cmocka, sanitizer build)"
# the runners' summaries on success; the whole log of what failed otherwise
meson test -C build-asan --suite unit --verbose >build-asan/unit.log 2>&1
urc=$?
grep -E "^\[ *(PASSED|FAILED|SKIPPED) *\]|^\[==========\] [0-9]+ test|^ *[0-9]+/[0-9]+ +[a-z_]+ +(OK|FAIL|SKIP|TIMEOUT)|^(Ok|Fail|Skipped|Timeout):" build-asan/unit.log
if [ $urc -ne 0 ]; then fail=1; tail -n 150 build-asan/unit.log; fi

TT=${QQ_TOML_TEST:-}
if [ -n "$TT" ] && [ -f "$TT/run.py" ]; then
    step "toml-test conformance ($TT)"
    /usr/bin/python3 "$TT/run.py" build-asan/tests/toml-test-decoder || fail=1
else
    step "toml-test: skipped (QQ_TOML_TEST=${TT:-<unset>} has no run.py)"
fi
[ -n "${QQ_UPSTREAM_CONFIGS:-}" ] ||
    echo "(QQ_UPSTREAM_CONFIGS unset: the e2e tests of the original's configs will be skipped)"

FUZZ=${QQ_FUZZ_SECONDS:-60}
if [ "$FUZZ" != 0 ]; then
    step "fuzzing (libFuzzer + ASan/UBSan, ${FUZZ}s per target)"
    CC=clang setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false || exit 1
    ninja -C build-fuzz tests/fuzz_toml tests/fuzz_tmpl >/dev/null || { ninja -C build-fuzz tests/fuzz_toml tests/fuzz_tmpl; exit 1; }
    for t in toml tmpl; do
        corpus=$(mktemp -d)
        cp tests/fuzz/corpus/$t/* "$corpus"/ 2>/dev/null || true
        if build-fuzz/tests/fuzz_$t -max_total_time="$FUZZ" -max_len=4096 -print_final_stats=1 \
               "$corpus" >"$corpus.log" 2>&1; then
            echo "fuzz_$t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$corpus.log" | grep -o '[0-9]*$') runs, no crash"
        else
            echo "fuzz_$t: FAILED"; tail -n 40 "$corpus.log"; fail=1
        fi
        rm -rf "$corpus" "$corpus.log"
    done
fi

step "end-to-end tests (pytest, real QEMU under TCG, sanitizer build)"
QQ_BUILD_DIR=$ROOT/build-asan /usr/bin/python3 -m pytest -ra -p no:cacheprovider tests/e2e "$@"
rc=$?
[ $rc -eq 0 ] || fail=1

step "result"
if [ $fail -eq 0 ]; then echo "all tests passed"; else echo "SOME TESTS FAILED"; fi
exit $fail
