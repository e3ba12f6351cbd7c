# deps.sh — sourced by tools/demo.sh and tools/test.sh: install the Debian packages that are missing
# (deps_install build|demo|test|bench ...) and configure + build a build directory (build_dir).
# build: compiler, meson, libraries (hiredis: protd's global limits), scdoc (man pages) and python3 (the binding's install);
# demo: the main job's real Redis, gunicorn and the Redis client its workers use;
# test: Criterion, redis-server (tests/test_global.c, the bench), pytest, clang and its fuzzer runtime (tests/fuzz), man (man --warnings), tmux (protctl top in a terminal), systemd
# (systemd-analyze verify; procps: the unit's /bin/kill), binutils (objdump: exported symbols), and what the demo needs.
deps_build="gcc libc6-dev meson ninja-build pkg-config liburcu-dev libinih-dev libhiredis-dev scdoc python3"
deps_demo="redis-server gunicorn python3-redis"
deps_test="libcriterion-dev redis-server libhiredis-dev prometheus clang libclang-rt-14-dev python3-pytest man-db groff-base tmux systemd procps binutils $deps_demo"

deps_install() {
	local want="" missing="" p
	for set in "$@"; do
		case $set in
		build) want="$want $deps_build" ;;
		demo) want="$want $deps_build $deps_demo" ;;
		test | bench) want="$want $deps_build $deps_test" ;;
		esac
	done
	for p in $want; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "installing:$missing" >&2
	if [ "$(id -u)" != 0 ]; then
		echo "error: missing packages:$missing (run as root, or install them)" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $missing >&2
}

# Configure and build one build directory: build_dir DIR [meson options...]
# A new directory is set up; an existing one is reconfigured with the same options
# (`meson setup --reconfigure`), so options and dependencies installed since its first set-up (for
# example Criterion, installed by test.sh after demo.sh configured build/) take effect. Options not
# given keep the directory's previous values.
build_dir() {
	local dir=$1
	shift
	local how=""
	[ -f "$dir/build.ninja" ] && how=--reconfigure
	meson setup $how "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; return 1; }
	# $TARGETS (optional): build only these targets of the directory
	ninja -C "$dir" ${TARGETS:-} >"$dir.build.log" 2>&1 || { cat "$dir.build.log" >&2; return 1; }
}
