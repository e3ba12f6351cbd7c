#!/usr/bin/env bash
# fuzz.sh — builds and runs the libFuzzer harnesses of tests/fuzz (INI loader, segment attach and
# read-only views, control-socket requests) with clang, -fsanitize=fuzzer,address,undefined, in
# their own build directory (build-fuzz). The tree's seed corpora (tests/fuzz/corpus/NAME) are
# only read: runs grow a working corpus in build-fuzz/corpus/NAME.
#
#   tools/fuzz.sh build                  configure (once) and build the harnesses
#   tools/fuzz.sh --smoke [SECONDS]      run each harness SECONDS (default 20); one line per harness
#                                        "fuzz NAME: N passed, N failed (...)", then a total line
#                                        "fuzz: N passed, N failed"; exit 1 if any failed. Without
#                                        clang it says so and exits 0.
#   tools/fuzz.sh run NAME [SECONDS] [libFuzzer options...]
#                                        one harness for SECONDS (default 600); crashes and their
#                                        inputs land in build-fuzz/artifacts/
#   tools/fuzz.sh list                   the harness names
set -u
cd "$(dirname "$0")/.."
HARNESSES="fuzz_ini fuzz_segment fuzz_control"
BUILD=build-fuzz
CLANG=${CLANG:-$(command -v clang-14 || command -v clang || true)}

have_clang() {
	[ -n "$CLANG" ] && [ -x "$CLANG" ]
}

build() {
	if ! have_clang; then
		echo "fuzz: clang not found (set CLANG=/path/to/clang)" >&2
		return 1
	fi
	if [ ! -f "$BUILD/build.ninja" ]; then
		CC="$CLANG" meson setup "$BUILD" -Dfuzz=true -Dtests=disabled -Dhiredis=disabled \
			-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link \
			>"$BUILD.setup.log" 2>&1 || { cat "$BUILD.setup.log" >&2; return 1; }
	fi
	ninja -C "$BUILD" $(for h in $HARNESSES; do echo "tests/fuzz/$h"; done) >"$BUILD.build.log" 2>&1 ||
		{ cat "$BUILD.build.log" >&2; return 1; }
}

# run_one NAME SECONDS LOG [libFuzzer options...]: exit status of the harness
run_one() {
	local name=$1 secs=$2 log=$3
	shift 3
	local corpus="$BUILD/corpus/$name" art="$BUILD/artifacts/$name/"
	mkdir -p "$corpus" "$art"
	cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
		timeout $((secs + 120)) "$BUILD/tests/fuzz/$name" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -max_len=65536 -close_fd_mask=3 -artifact_prefix="$art" "$@" \
		"$corpus" >"$log" 2>&1
}

# The leftover segments of harness processes that are gone (a crash skips their clean-up).
clean_shm() {
	local f pid
	for f in $(ls /dev/shm 2>/dev/null | grep '^prot-fuzz-'); do
		pid=${f##*-}
		kill -0 "$pid" 2>/dev/null || rm -f "/dev/shm/$f"
	done
}

smoke() {
	local secs=${1:-20} passed=0 failed=0 name log rc runs
	if ! have_clang; then
		echo "fuzz: skipped: clang not found"
		echo "fuzz: 0 passed, 0 failed"
		return 0
	fi
	build || { echo "fuzz: build failed"; echo "fuzz: 0 passed, 1 failed"; return 1; }
	for name in $HARNESSES; do
		log=$(mktemp /tmp/prot-fuzz-XXXXXX)
		run_one "$name" "$secs" "$log"
		rc=$?
		runs=$(grep -ao 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*')
		if [ "$rc" -eq 0 ]; then
			passed=$((passed + 1))
			echo "fuzz $name: 1 passed, 0 failed (${runs:-?} runs in ${secs} s)"
		else
			failed=$((failed + 1))
			echo "fuzz $name: 0 passed, 1 failed (exit $rc; inputs in $BUILD/artifacts/$name/):"
			grep -av '^#[0-9]' "$log" | tail -40
		fi
		rm -f "$log"
	done
	clean_shm
	echo "fuzz: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

case ${1:-build} in
build) build ;;
--smoke | smoke) shift; smoke "$@" ;;
run)
	[ $# -ge 2 ] || { echo "usage: tools/fuzz.sh run NAME [SECONDS] [libFuzzer options...]" >&2; exit 2; }
	name=$2 secs=${3:-600}
	shift 2; [ $# -gt 0 ] && shift
	build || exit 1
	log="$BUILD/$name.log"
	run_one "$name" "$secs" "$log" "$@"
	rc=$?
	clean_shm
	grep -a 'Done [0-9]* runs' "$log" || tail -40 "$log"
	echo "log: $log"
	exit $rc
	;;
list) echo $HARNESSES ;;
*) echo "usage: tools/fuzz.sh build | --smoke [SECONDS] | run NAME [SECONDS] [options] | list" >&2; exit 2 ;;
esac
