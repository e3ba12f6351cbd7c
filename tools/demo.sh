#!/usr/bin/env bash
# demo.sh — the README's main command: installs what is missing, builds, starts protd on the
# shipped example INI under a private segment name, runs forked demo workers against it, prints
# `protctl status`, and stops protd cleanly. Leaves nothing in /dev/shm and no process running.
set -u
cd "$(dirname "$0")/.."
. tools/deps.sh
deps_install build || exit 1
build_dir build || exit 1

seg="/prot-demo-$$"
log=$(mktemp /tmp/protd-demo-XXXXXX.log)
protd=build/daemon/protd protctl=build/tools/protctl
export PROT_SEGMENT=$seg

echo "== protd -c examples/protd.ini --segment $seg"
$protd -c examples/protd.ini --segment "$seg" 2>"$log" &
pd=$!
stop() {
	if kill -0 "$pd" 2>/dev/null; then
		kill -TERM "$pd"
		for _ in $(seq 50); do kill -0 "$pd" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pd" 2>/dev/null && { echo "protd did not stop; killing it" >&2; kill -KILL "$pd"; }
	fi
	wait "$pd" 2>/dev/null
}
trap stop EXIT
for _ in $(seq 100); do
	$protctl status >/dev/null 2>&1 && break
	kill -0 "$pd" 2>/dev/null || { cat "$log"; echo "protd failed to start" >&2; exit 1; }
	sleep 0.05
done

echo "== prot-demo: 4 forked workers"
build/tools/prot-demo 4 3000
demo_rc=$?

echo "== protctl status"
$protctl status
echo "== protctl stats"
$protctl stats
echo "== protctl breaker show api"
$protctl breaker show api
echo "== protctl pool show api"
$protctl pool show api
echo "== protctl events (last 10)"
$protctl events | tail -n 10

echo "== stopping protd ($pd)"
stop
trap - EXIT
echo "== protd log"
cat "$log"
rm -f "$log"
if [ -e "/dev/shm${seg}" ]; then echo "error: segment $seg left behind" >&2; exit 1; fi
echo "== clean shutdown: /dev/shm has no $seg, protd $pd has exited"
exit $demo_rc
