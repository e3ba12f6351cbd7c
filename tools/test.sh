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

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

passed=0 failed=0
logdir=$(mktemp -d /tmp/prot-tests-XXXXXX)
for dir in build build-asan; do
	for t in "$dir"/tests/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		name="$dir/$(basename "$t")"
		log="$logdir/$(echo "$name" | tr / _).log"
		PROTD="$PWD/$dir/daemon/protd" PROTCTL="$PWD/$dir/tools/protctl" PROTBENCH="$PWD/$dir/tools/protbench" \
			timeout 600 "$t" --jobs 2 >"$log" 2>&1
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
	done
done
leftover=$(ls /dev/shm 2>/dev/null | grep '^prot-t-' | head -5)
if [ -n "$leftover" ]; then
	echo "FAIL: tests left segments in /dev/shm: $leftover"
	failed=$((failed + 1))
fi
rm -rf "$logdir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
