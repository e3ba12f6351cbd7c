"""run_demo.py — the main job (tools/demo.sh runs it): prot protecting a real Redis behind a real
pre-fork HTTP server.

It starts, each by pid and on loopback only: redis-server on a free port, protd on
examples/protd.ini (a private segment name and control socket), and gunicorn with 4 workers running
app.py, whose requests call Redis through execute_protected("redis", entity="user:U"): the
per-user rate limit, the breaker and the pool of Redis connections. Then it drives paced load
from 8 client threads (one "heavy" user above its limit, seven below), and:
  1. healthy: the heavy user gets 429s, the others 200s;
  2. hangs Redis (SIGSTOP): a few calls time out after 250 ms (502), the breaker opens, and the
     answers fail fast (503 in about a millisecond) instead of each waiting 250 ms;
  3. stops Redis (SIGTERM): connections are refused; the breaker's probes fail, it stays open;
  4. starts Redis again on the same port: a half-open probe succeeds and closes the breaker;
  5. kills (SIGKILL) a worker while it holds a pool lease: protd gives the lease back.
It prints request counts per status and phase, latencies, the breaker's timeline, the lease
reclaim, and the protctl views; then stops everything it started, by pid, and checks that the
segment is gone. Exit status 0 when every step did what it says, 1 otherwise.

usage: run_demo.py --protd PATH --protctl PATH --ini FILE
"""
import argparse
import collections
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def say(msg):
    print(f"[{now():6.2f}s] {msg}", flush=True)


def until(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise RuntimeError(f"{what}: not within {timeout} s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Procs:
    """Processes this run started, stopped by pid in reverse order."""

    def __init__(self):
        self.started = []

    def start(self, name, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.started.append((name, p))
        return p

    def stop(self, p, name, sig=signal.SIGTERM, timeout=8):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                say(f"{name} ({p.pid}) did not stop within {timeout} s: SIGKILL")
                p.kill()
                p.wait(timeout=5)
        return p.returncode

    def stop_all(self):
        for name, p in reversed(self.started):
            if p.poll() is None:
                rc = self.stop(p, name)
                say(f"stopped {name} (pid {p.pid}, exit {rc})")


class Load:
    """Paced clients: thread 0 is user "heavy" at ~40 req/s (limit 10/s), threads 1..7 are users
    u1..u7 at ~5 req/s. Each result: (t, phase, user, status, kind, latency_ms, worker)."""

    def __init__(self, port):
        self.port, self.phase, self.results = port, "healthy", []
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.workers = set()

    def one(self, user):
        t = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", f"/hit?user={user}")
            r = c.getresponse()
            r.read()
            status, kind, worker = r.status, r.getheader("X-Prot", ""), r.getheader("X-Worker", "")
            c.close()
        except OSError as e:
            status, kind, worker = 0, type(e).__name__, ""
        ms = (time.monotonic() - t) * 1000
        with self.lock:
            self.results.append((now(), self.phase, user, status, kind, ms, worker))
            if worker:
                self.workers.add(int(worker))

    def client(self, i):
        user, period = ("heavy", 1 / 40) if i == 0 else (f"u{i}", 1 / 5)
        nxt = time.monotonic()
        while not self.stopping.is_set():
            self.one(user)
            nxt += period
            time.sleep(max(0, nxt - time.monotonic()))

    def start(self):
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(8)]
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=10)


def label(status, kind):
    return {200: "200 ok", 429: "429 rate-limited", 502: "502 redis failed",
            504: "504 too slow"}.get(status) or (
        f"503 {'breaker open' if kind == 'blown' else 'no connection'}" if status == 503 else
        f"{status} {kind}")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protd", required=True)
    ap.add_argument("--protctl", required=True)
    ap.add_argument("--ini", required=True)
    a = ap.parse_args()
    # a SIGTERM (demo.sh's timeout) still runs the finally below: everything is stopped by pid
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("run_demo: terminated"))
    redis_exe = shutil.which("redis-server")
    gunicorn = shutil.which("gunicorn")
    for what, exe in (("redis-server", redis_exe), ("gunicorn", gunicorn)):
        if not exe:
            print(f"run_demo: {what} not found (Debian packages redis-server, gunicorn)", file=sys.stderr)
            return 1
    tmp = tempfile.mkdtemp(prefix="prot-demo-")
    seg = f"/prot-demo-{os.getpid()}"
    procs, problems = Procs(), []
    rport, hport = free_port(), free_port()
    env = dict(os.environ, PROT_SEGMENT=seg, REDIS_PORT=str(rport), DEMO_BIND=f"127.0.0.1:{hport}",
               PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    import prot  # PROT_LIBRARY and PYTHONPATH are set by demo.sh

    def start_redis():
        p = procs.start("redis-server", [redis_exe, "--port", str(rport), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", tmp,
                                         "--loglevel", "warning"],
                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "redis.log"), "a"))
        until(lambda: redis_ping(rport), 5, "redis-server answering PING")
        return p

    def protctl(*args):
        r = subprocess.run([a.protctl, "--segment", seg, *args], capture_output=True, text=True,
                           timeout=10)
        return r.stdout + r.stderr

    load = None
    try:
        redis = start_redis()
        say(f"redis-server pid {redis.pid} on 127.0.0.1:{rport}")
        plog = open(os.path.join(tmp, "protd.log"), "w")
        protd = procs.start("protd", [a.protd, "-c", a.ini, "--segment", seg, "--control",
                                      os.path.join(tmp, "ctl.sock")], stderr=plog)
        until(lambda: subprocess.run([a.protctl, "--segment", seg, "status"], capture_output=True,
                                     timeout=5).returncode == 0 or protd.poll() is not None, 5,
              "protd serving")
        if protd.poll() is not None:
            raise RuntimeError(f"protd exited ({protd.returncode}): see {plog.name}")
        say(f"protd pid {protd.pid} on {a.ini}, segment {seg}")
        glog = open(os.path.join(tmp, "gunicorn.log"), "w")
        guni = procs.start("gunicorn", [gunicorn, "-c", os.path.join(HERE, "gunicorn.conf.py"),
                                        "--chdir", HERE, "app:application"],
                           env=env, stdout=glog, stderr=glog)

        def http_up():
            if guni.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({guni.returncode}): {open(glog.name).read()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", hport, timeout=1)
                c.request("GET", "/hit?user=warmup")
                return c.getresponse().status == 200
            except OSError:
                return False
        until(http_up, 15, "gunicorn answering")
        say(f"gunicorn master pid {guni.pid}, 4 workers on 127.0.0.1:{hport}")

        mon = prot.open(seg, readonly=True)
        timeline, tl_stop = [], threading.Event()

        def watch():
            last = None
            while not tl_stop.is_set():
                s = mon.breaker_status("redis")["state_name"]
                if s != last:
                    timeline.append((now(), s))
                    last = s
                time.sleep(0.005)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        load = Load(hport)
        load.start()
        say("phase 1 healthy: 8 clients (user heavy ~40/s against a limit of 10/s, u1..u7 ~5/s)")
        time.sleep(3)

        load.phase = "redis hung"
        redis.send_signal(signal.SIGSTOP)
        say(f"phase 2: redis-server hung (pid {redis.pid}, SIGSTOP): calls time out after 250 ms")
        time.sleep(3)

        load.phase = "redis stopped"
        redis.send_signal(signal.SIGCONT)
        procs.stop(redis, "redis-server")
        say(f"phase 3: redis-server stopped (pid {redis.pid}, SIGCONT + SIGTERM): connections refused")
        time.sleep(3)

        load.phase = "redis back"
        redis = start_redis()
        say(f"phase 4: redis-server started again, pid {redis.pid}, same port")
        time.sleep(3)

        load.phase = "worker killed"
        before = mon.pool_status("redis")
        holder = {}

        def hold():
            c = http.client.HTTPConnection("127.0.0.1", hport, timeout=30)
            c.request("GET", "/hold?ms=20000")
            r = c.getresponse()
            holder["pid"] = int(r.readline().split()[1])
            try:
                r.read()
            except (OSError, http.client.HTTPException):
                pass  # the worker is killed mid-response
        threading.Thread(target=hold, daemon=True).start()
        until(lambda: "pid" in holder, 5, "a worker holding a lease")
        held = mon.pool_status("redis")
        os.kill(holder["pid"], signal.SIGKILL)
        t_kill = time.monotonic()
        say(f"phase 5: worker {holder['pid']} holds a lease (pool in use {held['in_use']}): SIGKILL")
        after = until(lambda: (lambda s: s if s["reclaims"] > before["reclaims"] else None)(
            mon.pool_status("redis")), 5, "the killed worker's lease reclaimed")
        reclaim_ms = (time.monotonic() - t_kill) * 1000
        say(f"lease back after {reclaim_ms:.0f} ms: pool reclaims {before['reclaims']} -> "
            f"{after['reclaims']}, in use {held['in_use']} -> {after['in_use']}")
        time.sleep(2)
        load.stop()
        tl_stop.set()
        watcher.join(timeout=5)

        # ---- what happened -------------------------------------------------------------------
        res = load.results
        phases = ["healthy", "redis hung", "redis stopped", "redis back", "worker killed"]
        labels = sorted({label(r[3], r[4]) for r in res})
        print("\n== requests per phase and status")
        print(f"{'phase':<16}{'total':>7}" + "".join(f"{x:>18}" for x in labels))
        for ph in phases:
            rows = [r for r in res if r[1] == ph]
            cnt = collections.Counter(label(r[3], r[4]) for r in rows)
            print(f"{ph:<16}{len(rows):>7}" + "".join(f"{cnt.get(x, 0):>18}" for x in labels))
        print("\n== per user (all phases)")
        for user in ["heavy"] + [f"u{i}" for i in range(1, 8)]:
            rows = [r for r in res if r[2] == user]
            cnt = collections.Counter(label(r[3], r[4]) for r in rows)
            print(f"  {user:<6} {len(rows):>4} requests: " + ", ".join(f"{v} {k}" for k, v in sorted(cnt.items())))
        print("\n== latency (ms, client side, HTTP round trip)")
        for name, rows in (("200 ok (Redis up)", [r[5] for r in res if r[3] == 200]),
                           ("502 failed, Redis hung", [r[5] for r in res if r[3] == 502 and r[1] == "redis hung"]),
                           ("502 failed, Redis stopped", [r[5] for r in res if r[3] == 502 and r[1] != "redis hung"]),
                           ("503 breaker open (fail fast)", [r[5] for r in res if r[3] == 503 and r[4] == "blown"]),
                           ("429 rate-limited", [r[5] for r in res if r[3] == 429])):
            if rows:
                print(f"  {name:<30} n={len(rows):<5} p50 {statistics.median(rows):6.2f}  "
                      f"p99 {pct(rows, 0.99):6.2f}  max {max(rows):6.2f}")
        print("\n== breaker 'redis' timeline (polled every 5 ms)")
        for t, s in timeline:
            print(f"  {t:6.2f}s  {s}")
        print(f"\n== worker kill: pid {holder['pid']} held a lease; protd reclaimed it in {reclaim_ms:.0f} ms "
              f"(reclaims {before['reclaims']} -> {after['reclaims']}); workers seen: {len(load.workers)} pids")
        for title, args in (("protctl status redis", ["status", "redis"]),
                            ("protctl breaker show redis", ["breaker", "show", "redis"]),
                            ("protctl pool show redis", ["pool", "show", "redis"]),
                            ("protctl stats redis", ["stats", "redis"]),
                            ("protctl events (last 12)", ["events"])):
            out = protctl(*args)
            if args == ["events"]:
                out = "\n".join(out.splitlines()[-12:]) + "\n"
            print(f"\n== {title}\n{out}", end="")
        mon.close()

        # ---- did each step do what it says ----------------------------------------------------
        def phase_has(ph, pred):
            return any(pred(r) for r in res if r[1] == ph)
        if not phase_has("healthy", lambda r: r[2] == "heavy" and r[3] == 429):
            problems.append("the heavy user was never rate-limited")
        if phase_has("healthy", lambda r: r[2] != "heavy" and r[3] != 200):
            problems.append("a user under its limit got a non-200 while Redis was up")
        if not phase_has("redis stopped", lambda r: r[3] == 503 and r[4] == "blown"):
            problems.append("the breaker never failed fast while Redis was down")
        if not phase_has("redis hung", lambda r: r[3] == 503 and r[4] == "blown"):
            problems.append("the breaker never failed fast while Redis hung")
        states = [s for _, s in timeline]
        if "open" not in states or states[-1] != "closed":
            problems.append(f"breaker timeline {states}: expected it to open and end closed")
        if not phase_has("worker killed", lambda r: r[3] == 200):
            problems.append("no request succeeded after the worker was killed")
        if not any(r[3] == 200 for r in res if r[1] == "redis back" and r[0] > res[0][0]):
            problems.append("nothing succeeded after Redis came back")
    except Exception as e:  # noqa: BLE001 — reported, then everything is stopped
        problems.append(f"{type(e).__name__}: {e}")
        if load:
            load.stop()
    finally:
        print("\n== stopping everything this run started, by pid")
        procs.stop_all()
        workers = load.workers if load else set()
        try:
            until(lambda: not any(os.path.exists(f"/proc/{w}") for w in workers), 10,
                  "gunicorn workers gone")
        except RuntimeError as e:
            problems.append(str(e))
        if os.path.exists("/dev/shm" + seg):
            problems.append(f"segment {seg} left behind")
        else:
            say(f"clean: no {seg} in /dev/shm, no process left")
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ndemo finished in {now():.1f} s: " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
