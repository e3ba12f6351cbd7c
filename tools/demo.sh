#!/usr/bin/env bash
# demo.sh — the README's main command: installs what is missing, builds, and runs the main job,
# examples/redis_app/run_demo.py: a real redis-server on a free loopback port, protd on
# examples/protd.ini (a private segment), and gunicorn's pre-forked workers calling Redis through
# prot (per-user rate limit, breaker, pool of Redis connections) under paced load, while Redis
# hangs, stops and comes back and a worker holding a lease is killed. It prints what happened and
# stops everything it started, by pid. Exit status: the demo's (0 when every step did what it said).
set -u
cd "$(dirname "$0")/.."
. tools/deps.sh
deps_install demo || exit 1
build_dir build || exit 1
export PYTHONPATH="$PWD/python" PROT_LIBRARY="$PWD/build/lib/libprot.so.1"
exec timeout 120 /usr/bin/python3 examples/redis_app/run_demo.py --protd build/daemon/protd \
	--protctl build/tools/protctl/protctl --ini examples/protd.ini
