#!/usr/bin/env bash
# test.sh — the README's test command: installs what is missing, builds three times (plain,
# AddressSanitizer + UndefinedBehaviorSanitizer, and ThreadSanitizer for protd and the threaded
# clients), runs every Criterion suite in the first two, the fuzz harnesses briefly, the ABI,
# man page and install checks (tests/sh/) and the Python binding's pytest suites, and ends
# with one line of its own: "N passed, N failed" over every test case of every suite. Exit 1 if any
# failed.
#
# Every build directory is configured with -Dtests=enabled (a missing Criterion is then an error,
# not a quietly test-less build) and an existing one is reconfigured (tools/deps.sh build_dir), so
# `demo.sh` then `test.sh` runs every suite. The expected suites are the list in tests/meson.build
# (`foreach t : [...]`): a suite that list names but a build did not produce is a failure that
# names it. `bash tools/test.sh --check-built DIR` only checks DIR for the expected suites.
set -u
cd "$(dirname "$0")/.."
. tools/deps.sh

# The suites tests/meson.build builds, one name a line (test_segment, ...).
expected_suites() {
	sed -n "s/^foreach t : \[\(.*\)\]\s*$/\1/p" tests/meson.build | tr -d "' " | tr ',' '\n' |
		sed -n 's/^\(.\+\)$/test_\1/p'
}

# check_built DIR: print each expected suite missing from DIR/tests; exit status 1 when any is.
check_built() {
	local s missing=0 list
	list=$(expected_suites)
	[ -n "$list" ] || { echo "FAIL: no suite list found in tests/meson.build" >&2; return 1; }
	for s in $list; do
		[ -f "$1/tests/$s" ] && [ -x "$1/tests/$s" ] && continue
		echo "FAIL $1/tests/$s: expected suite was not built" >&2
		missing=1
	done
	return $missing
}

if [ "${1:-}" = --check-built ]; then
	check_built "${2:?usage: test.sh --check-built DIR}"
	exit
fi

deps_install test || exit 1

build_dir build -Dtests=enabled -Dman=enabled || exit 1
build_dir build-asan -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false || exit 1
# ThreadSanitizer for the threaded parts: protd (control thread, RCU registry, reload) and clients
# sharing a handle across threads. Criterion's runner cannot start under TSan, so the suites below
# drive a TSan-built protd from the plain test binaries, and tests/tsan_threads runs TSan clients.
TARGETS="daemon/protd tests/tsan_threads" build_dir build-tsan -Dtests=enabled -Db_sanitize=thread -Db_lundef=false || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# liburcu is not instrumented: daemon/tsan.supp hides reports from inside it (see that file)
export TSAN_OPTIONS=${TSAN_OPTIONS:-exitcode=66:suppressions=$PWD/daemon/tsan.supp}

passed=0 failed=0 skipped=0
logdir=$(mktemp -d /tmp/prot-tests-XXXXXX)

# run_suite NAME PROTD-DIR COMMAND...: run one suite and add its Criterion synthesis to the totals
run_suite() {
	local name=$1 pdir=$2
	shift 2
	local log="$logdir/$(echo "$name" | tr '/ []' '____').log"
	local try
	for try in 1 2; do
		PROT_SRCDIR="$PWD" PROTD="$PWD/$pdir/daemon/protd" PROTCTL="$PWD/$dir/tools/protctl/protctl" PROTBENCH="$PWD/$dir/tools/bench/protbench" \
			timeout 600 "$@" >"$log" 2>&1
		rc=$?
		# Criterion's runner itself (not a test) sometimes fails to fork a test instance on a
		# loaded machine; that, and only that, is run once more, and said so.
		grep -aq "Could not spawn test instance" "$log" || break
		[ "$try" = 1 ] && echo "note $name: criterion could not spawn a test instance; running it again"
	done
	# Criterion's closing line: "[====] Synthesis: Tested: T | Passing: P | Failing: F | Crashing: C"
	syn=$(grep -a "Synthesis:" "$log" | tail -1)
	tested=$(echo "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
	passing=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	if [ -z "$tested" ]; then
		tested=1 passing=0 # the suite itself died: count it as one failure
	fi
	bad=$((tested - passing))
	# a skipped case (an environment without what it needs) is neither passed nor failed: said
	skips=$(grep -ac '^\[SKIP\]' "$log")
	skipped=$((skipped + skips))
	passed=$((passed + passing))
	failed=$((failed + bad))
	if [ "$bad" -ne 0 ] || [ "$rc" -ne 0 ]; then
		[ "$bad" -eq 0 ] && { failed=$((failed + 1)); }
		echo "FAIL $name ($passing/$tested passed, exit $rc):"
		grep -av "^\[----\] *$" "$log" | tail -60
	else
		echo "ok   $name ($passing/$tested)"
		[ "$skips" -eq 0 ] || grep -a '^\[SKIP\]' "$log" | sed 's/^/     /'
	fi
}

# Criterion jobs per suite: 2, except the suites whose every test is a fleet of its own (test_global:
# three protd hosts, a redis-server and twelve busy workers): two of those at once on two cores
# starve protd's sync thread past its Redis timeout, and a host that falls back to its local share
# over-admits, as documented; the suite measures accuracy, so it runs one test at a time.
jobs_of() {
	case "$1" in
	test_global) echo 1 ;;
	*) echo 2 ;;
	esac
}

for dir in build build-asan; do
	missing=$(check_built "$dir" 2>&1) || { echo "$missing"; failed=$((failed + $(echo "$missing" | grep -c '^FAIL'))); }
	for s in $(expected_suites); do
		t=$dir/tests/$s
		[ -x "$t" ] && run_suite "$dir/$s" "$dir" "$t" --jobs "$(jobs_of "$s")" --verbose
	done
done
dir=build
for s in reload restart facade global; do
	run_suite "build/test_$s [protd under TSan]" build-tsan build/tests/test_$s --jobs "$(jobs_of "test_$s")" --verbose
done
run_suite "build-tsan/tsan_threads" build-tsan build-tsan/tests/tsan_threads
# libFuzzer harnesses (tests/fuzz), 10 s each: one case per harness. tools/fuzz.sh says how to run
# them longer; without clang it says so and counts nothing.
fuzz_log="$logdir/fuzz.log"
bash tools/fuzz.sh --smoke "${PROT_FUZZ_SECONDS:-10}" >"$fuzz_log" 2>&1
frc=$?
fline=$(grep -a '^fuzz: [0-9]* passed, [0-9]* failed' "$fuzz_log" | tail -1)
fp=$(echo "$fline" | sed -n 's/^fuzz: \([0-9]*\) passed.*/\1/p')
ff=$(echo "$fline" | sed -n 's/^fuzz: [0-9]* passed, \([0-9]*\) failed.*/\1/p')
if [ -n "$fp" ]; then
	passed=$((passed + fp))
	failed=$((failed + ff))
	if [ "$ff" -ne 0 ] || [ "$frc" -ne 0 ]; then
		echo "FAIL fuzz ($fp passed, $ff failed, exit $frc):"
		tail -40 "$fuzz_log"
	else
		echo "ok   fuzz ($fp/$((fp + ff)))"
	fi
else
	echo "skip fuzz: $(tail -1 "$fuzz_log")"
fi

# run_check NAME COMMAND...: a check that is one test case (exit 0 passes)
run_check() {
	local name=$1 log="$logdir/check.log"
	shift
	timeout 300 "$@" >"$log" 2>&1
	local rc=$?
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok   $name ($(tail -1 "$log"))"
	else
		failed=$((failed + 1))
		echo "FAIL $name (exit $rc):"
		tail -40 "$log"
	fi
}
run_check "ABI: exports = prot.h = PROT_1.0 version script" bash tests/sh/abi_symbols.sh build
run_check "man pages" bash tests/sh/man_pages.sh build
run_check "meson install --destdir" bash tests/sh/install.sh build

# The Python binding's suites (pytest), counted case by case from pytest's closing line
# ("3 failed, 9 passed, 1 error in 2.1s"). Exit 5 (no test collected) is a failure: the suites exist.
pylog="$logdir/pytest.log"
PYTHONPATH="$PWD/python:$PWD/tests/python" PROT_LIBRARY="$PWD/build/lib/libprot.so.1" \
	PROTD="$PWD/build/daemon/protd" PROTCTL="$PWD/build/tools/protctl/protctl" \
	PROT_LAYOUT="$PWD/build/python/prot-layout" PROT_BUILDDIR="$PWD/build" \
	timeout 600 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python >"$pylog" 2>&1
rc=$?
summary=$(grep -aE '^(=+ )?[0-9]+ (passed|failed|error)|no tests ran' "$pylog" | tail -1)
py_pass=$(echo "$summary" | grep -o '[0-9]* passed' | grep -o '[0-9]*')
py_fail=$(( $(echo "$summary" | grep -o '[0-9]* failed' | grep -o '[0-9]*' || echo 0) + \
	$(echo "$summary" | grep -o '[0-9]* error' | grep -o '[0-9]*' || echo 0) ))
py_pass=${py_pass:-0}
if [ $rc -eq 5 ]; then
	echo "FAIL python (pytest exit 5: no test collected in tests/python)"
	py_fail=$((py_fail + 1))
elif [ $rc -ne 0 ] && [ $py_fail -eq 0 ]; then
	echo "FAIL python (pytest exit $rc):"; tail -40 "$pylog"
	py_fail=1
elif [ $rc -ne 0 ]; then
	echo "FAIL python ($py_pass passed, $py_fail failed):"; grep -av '^\s*$' "$pylog" | tail -60
else
	echo "ok   python ($py_pass passed: $summary)"
fi
passed=$((passed + py_pass))
failed=$((failed + py_fail))
# A segment is left behind when the test process named in it (prot-t-PID-...) has exited; one whose
# process still runs belongs to a suite running beside this one.
leftover=$(for f in $(ls /dev/shm 2>/dev/null | grep '^prot-t-'); do
	pid=${f#prot-t-}
	pid=${pid%%-*}
	kill -0 "$pid" 2>/dev/null || echo "$f"
done | head -5)
if [ -n "$leftover" ]; then
	echo "FAIL: tests left segments in /dev/shm: $leftover"
	failed=$((failed + 1))
fi
rm -rf "$logdir"
[ "$skipped" -eq 0 ] || echo "$skipped skipped (listed above: neither passed nor failed)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
