"""conftest.py — what the Python suites share: a real protd per test (its own segment name
/prot-t-PID-py..., its own control socket in a private directory), stopped by pid; forked Python
workers whose results come back through pipes; every wait bounded.

Paths come from the environment tools/test.sh sets: PROTD, PROTCTL, PROT_LIBRARY (libprot.so.1),
PROT_LAYOUT (the layout helper); PYTHONPATH has python/.
"""
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PROT_BUILDDIR", os.path.join(SRC, "build"))
PROTD = os.environ.get("PROTD", os.path.join(BUILD, "daemon", "protd"))
PROTCTL = os.environ.get("PROTCTL", os.path.join(BUILD, "tools", "protctl"))
os.environ.setdefault("PROT_LIBRARY", os.path.join(BUILD, "lib", "libprot.so.1"))

import prot  # noqa: E402  (after PROT_LIBRARY is known)

_seq = itertools.count()


def until(cond, timeout=5.0, step=0.01, what="condition"):
    """Poll cond() until it is true; fail the test after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    pytest.fail(f"{what} did not hold within {timeout} s")


class Protd:
    """One protd on INI text, with a private segment and control socket."""

    def __init__(self, ini_text, env=None):
        self.dir = tempfile.mkdtemp(prefix="prot-py-")
        self.segment = f"/prot-t-{os.getpid()}-py{next(_seq)}"
        self.control = os.path.join(self.dir, "ctl.sock")
        self.ini = os.path.join(self.dir, "protd.ini")
        with open(self.ini, "w") as f:
            f.write(ini_text)
        self.log = open(os.path.join(self.dir, "protd.log"), "w+")
        self.proc = subprocess.Popen([PROTD, "-c", self.ini, "--segment", self.segment,
                                      "--control", self.control],
                                     stdout=self.log, stderr=self.log, env=env)

    def wait_ready(self):
        def served():
            if self.proc.poll() is not None:
                pytest.fail(f"protd exited with {self.proc.returncode}:\n{self.logtext()}")
            try:
                with prot.open(self.segment, readonly=True) as p:
                    return p.info()["protd_pid"] == self.proc.pid
            except prot.ProtError:
                return False
        until(served, 5, what=f"protd serving {self.segment}")
        return self

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def protctl(self, *args, timeout=10):
        return subprocess.run([PROTCTL, "--segment", self.segment, *args], capture_output=True,
                              text=True, timeout=timeout)

    def stop(self):
        """SIGTERM by pid, bounded wait, SIGKILL as the last resort; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        try:
            os.unlink("/dev/shm" + self.segment)
        except FileNotFoundError:
            pass
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def protd():
    """protd(INI_TEXT) starts a served protd; every one is stopped at the end of the test."""
    started = []

    def start(ini_text, env=None, wait=True):
        d = Protd(ini_text, env)
        started.append(d)
        return d.wait_ready() if wait else d
    yield start
    for d in started:
        d.cleanup()


def fork_run(fn, n, timeout=10.0):
    """Fork n Python processes running fn(i); return [result of fn(0), ...]. A child that raises
    fails the test with its exception; children still running at the timeout are killed by pid."""
    kids = []
    for i in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                out = {"ok": fn(i)}
            except BaseException as e:  # noqa: BLE001 — reported to the parent
                out, code = {"err": f"{type(e).__name__}: {e}"}, 1
            os.write(w, json.dumps(out).encode())
            os._exit(code)
        os.close(w)
        kids.append((pid, r))
    results, end = [], time.monotonic() + timeout
    for pid, r in kids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > end:
                for p, _ in kids:
                    try:
                        os.kill(p, signal.SIGKILL)
                        os.waitpid(p, 0)
                    except (ProcessLookupError, ChildProcessError):
                        pass
                pytest.fail(f"forked worker {pid} did not finish within {timeout} s")
            time.sleep(0.005)
        data = os.read(r, 1 << 16)
        os.close(r)
        out = json.loads(data) if data else {"err": f"exit status {status}"}
        if "err" in out:
            pytest.fail(f"forked worker {pid}: {out['err']}")
        results.append(out["ok"])
    return results
