#!/usr/bin/env bash
# test.sh — the README's test command: installs what is missing, builds twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), runs every Criterion suite in both builds, and ends
# with one line of its own: "N passed, N failed" over every test case of every suite. Exit 1 if any
# failed.
set -u
cd "$(dirname "$0")/.."
. tools/deps.sh
deps_install test || exit 1

build_dir build || exit 1
build_dir build-asan -Db_sanitize=address,undefined -Db_lundef=false || exit 1
# ThreadSanitizer for the threaded parts: protd (control thread, RCU registry, reload) and clients
# sharing a handle across threads. Criterion's runner cannot start under TSan, so the suites below
# drive a TSan-built protd from the plain test binaries, and tests/tsan_threads runs TSan clients.
TARGETS="daemon/protd tests/tsan_threads" build_dir build-tsan -Db_sanitize=thread -Db_lundef=false || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# liburcu is not instrumented: daemon/tsan.supp hides reports from inside it (see that file)
export TSAN_OPTIONS=${TSAN_OPTIONS:-exitcode=66:suppressions=$PWD/daemon/tsan.supp}

passed=0 failed=0
logdir=$(mktemp -d /tmp/prot-tests-XXXXXX)

# run_suite NAME PROTD-DIR COMMAND...: run one suite and add its Criterion synthesis to the totals
run_suite() {
	local name=$1 pdir=$2
	shift 2
	local log="$logdir/$(echo "$name" | tr '/ []' '____').log"
	PROTD="$PWD/$pdir/daemon/protd" PROTCTL="$PWD/$dir/tools/protctl" PROTBENCH="$PWD/$dir/tools/protbench" \
		timeout 600 "$@" >"$log" 2>&1
	rc=$?
	# Criterion's closing line: "[====] Synthesis: Tested: T | Passing: P | Failing: F | Crashing: C"
	syn=$(grep -a "Synthesis:" "$log" | tail -1)
	tested=$(echo "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
	passing=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	if [ -z "$tested" ]; then
		tested=1 passing=0 # the suite itself died: count it as one failure
	fi
	bad=$((tested - passing))
	passed=$((passed + passing))
	failed=$((failed + bad))
	if [ "$bad" -ne 0 ] || [ "$rc" -ne 0 ]; then
		[ "$bad" -eq 0 ] && { failed=$((failed + 1)); }
		echo "FAIL $name ($passing/$tested passed, exit $rc):"
		grep -av "^\[----\] *$" "$log" | tail -60
	else
		echo "ok   $name ($passing/$tested)"
	fi
}

for dir in build build-asan; do
	for t in "$dir"/tests/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		run_suite "$dir/$(basename "$t")" "$dir" "$t" --jobs 2
	done
done
dir=build
for s in reload restart facade; do
	run_suite "build/test_$s [protd under TSan]" build-tsan build/tests/test_$s --jobs 2
done
run_suite "build-tsan/tsan_threads" build-tsan build-tsan/tests/tsan_threads
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
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
