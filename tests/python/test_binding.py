"""test_binding.py — the Python binding against a real protd, in forked Python processes: rate
limits shared exactly across processes (token and leaky buckets, the sliding window and Hammer's
counters too), the breaker (execute, allow/record, ask, status), the pool with a Python connector (leases across processes, a killed holder's lease reclaimed),
execute_protected, configure/status/list, and errors as exceptions named after prot's codes."""
import errno
import os
import signal
import time

import pytest

import prot
from conftest import fork_run, until

INI = """
[segment]
max_keys = 8
max_breakers = 8
max_pools = 4
pool_max_slots = 8
rate_entities = 1024
events = 64
[daemon]
tick = 10ms
reclaim_interval = 50ms
[key api]
rate_limit = 40
rate_window = 60s
rate_algorithm = fixed_window
breaker = dep
pool = conns
timeout = 2s
[breaker dep]
tolerance = 2
window = 10s
refresh = 300ms
[pool conns]
size = 2
max_overflow = 0
checkout_timeout = 200ms
"""


def test_rate_limit_is_exact_across_forked_processes(protd):
    d = protd(INI)

    def worker(i):
        with prot.open(d.segment) as p:
            return sum(p.rate_check_key("api", "user:1")[0] for _ in range(25))
    assert sum(fork_run(worker, 4)) == 40  # 100 attempts, the key's limit of 40 per window
    with prot.open(d.segment) as p:
        allowed, info = p.rate_check_key("api", "user:2")
        assert allowed and info["remaining"] == 39
        allowed, info = p.rate_check("search", "user:1", limit=2, window_ms=60000)
        assert allowed
        p.rate_check("search", "user:1", limit=2, window_ms=60000)
        allowed, info = p.rate_check("search", "user:1", limit=2, window_ms=60000)
        assert not allowed and info["retry_after_ms"] > 0
        assert p.rate_status("search", "user:1", 2, 60000)["remaining"] == 0
        p.rate_reset("search", "user:1")
        assert p.rate_status("search", "user:1", 2, 60000)["remaining"] == 2
        with pytest.raises(prot.ETOOLONG):
            p.rate_check_key("api", "u" * 65)
        with pytest.raises(prot.ENOKEY):
            p.rate_check_key("nokey", "user:1")


def test_binary_entities_and_status_by_key(protd):
    d = protd(INI)
    ent = (12345).to_bytes(8, "little")

    def worker(i):
        with prot.open(d.segment) as p:
            return sum(p.rate_check_bin("ids", ent, limit=3, window_ms=3600000)[0] for _ in range(5))
    assert sum(fork_run(worker, 2)) == 3  # one bucket for the 8 bytes, exact across processes
    with prot.open(d.segment) as p:
        assert p.rate_check_bin("ids", b"90", limit=3, window_ms=3600000)[0], "not the same bucket"
        assert p.rate_status_key("api", "user:9")["exists"] == 0
        p.rate_check_key("api", "user:9", 2)
        st = p.rate_status_key("api", b"user:9")
        assert st["exists"] == 1 and st["info"]["used"] >= 1
        assert st["created_ms"] > 0 and st["updated_ms"] >= st["created_ms"]
        assert st["expires_at_ms"] > st["updated_ms"]


def test_token_and_leaky_buckets_in_hammers_terms(protd):
    d = protd(INI)

    def worker(i):
        with prot.open(d.segment) as p:  # a budget of 5 that never refills (refill_rate 0)
            return sum(p.rate_check("quota", "acct", 0, 0, algo="token_bucket", burst=5)[0]
                       for _ in range(4))
    assert sum(fork_run(worker, 4)) == 5
    with prot.open(d.segment) as p:
        allowed, info = p.rate_check("tb", "u", 10, 0, cost=3, algo="token_bucket", burst=10)
        assert allowed and info["remaining"] == 7 and info["limit"] == 10  # tokens left, capacity
        allowed, info = p.rate_check("lb", "u", 1, 0, cost=4, algo="leaky_bucket", burst=10)
        assert allowed and info["used"] == 4  # the fill level
        assert p.rate_status("lb", "u", 1, 0, algo="leaky_bucket", burst=10)["used"] == 4


def test_counters_and_sliding_window_across_forked_processes(protd):
    d = protd(INI)

    def worker(i):
        with prot.open(d.segment) as p:
            for _ in range(50):
                p.rate_inc("jobs", "q", 1000, 3600 * 1000)
            return sum(p.rate_check("sw", "u", 30, 3600 * 1000, algo="sliding_window")[0]
                       for _ in range(20))
    assert sum(fork_run(worker, 4)) == 30  # 80 attempts, exactly the limit in the window
    with prot.open(d.segment) as p:
        assert p.rate_get("jobs", "q", 1000, 3600 * 1000) == 200
        assert p.rate_set("jobs", "q", 1000, 3600 * 1000, 5) == 5
        assert p.rate_inc("jobs", "q", 1000, 3600 * 1000, n=2) == 7
        assert p.rate_get("none", "q", 1000, 3600 * 1000) == 0
        allowed, info = p.rate_check("sw", "u", 30, 3600 * 1000, algo="sliding_window")
        assert not allowed and info["used"] == 30 and info["retry_after_ms"] > 3500 * 1000
        with pytest.raises(prot.ECOST):
            p.rate_check("sw", "u", 30, 3600 * 1000, cost=2, algo="sliding_window")
        with pytest.raises(prot.SystemError_) as e:
            p.rate_inc("g", "q", 10, 1000, algo="gcra")
        assert e.value.errno == errno.EINVAL  # GCRA has no count


def test_breaker_opens_on_failures_of_other_processes_and_a_probe_closes_it(protd):
    d = protd(INI)

    def fail(i):
        with prot.open(d.segment) as p:
            try:
                p.breaker_execute("dep", lambda: 1 / 0)
            except ZeroDivisionError:
                return "raised"
    assert fork_run(fail, 3) == ["raised"] * 3  # the 3rd failure within the window trips it
    with prot.open(d.segment) as p:
        assert p.breaker_status("dep")["state_name"] == "open"
        assert p.breaker_ask("dep") == "blown"
        called = []
        with pytest.raises(prot.EBLOWN):
            p.breaker_execute("dep", lambda: called.append(1))
        assert called == []
        until(lambda: p.breaker_status("dep")["state"] != 1, 3, what="half-open after refresh")
        assert p.breaker_execute("dep", lambda x: x * 2, 21) == 42  # the probe succeeds
        assert p.breaker_status("dep")["state_name"] == "closed"
        tok = p.breaker_allow("dep")
        tok.record(prot.Token.SUCCESS)
        p.breaker_blow("dep")
        with pytest.raises(prot.EBLOWN):
            p.breaker_allow("dep")
        with pytest.raises(prot.EDISABLED):  # disabled dominates reset (fuse's circuit_disable)
            p.breaker_reset("dep")
        p.breaker_enable("dep")
        assert p.breaker_ask("dep") == "ok"
        st = p.breaker_status("dep")
        assert st["failures"] == 3 and st["rejections"] >= 2 and st["opts"]["tolerance"] == 2
        with pytest.raises(prot.ENOBREAKER):
            p.breaker_status("nobreaker")


def test_pool_leases_are_shared_and_a_killed_holders_lease_comes_back(protd):
    d = protd(INI)
    r, w = os.pipe()
    holder = os.fork()
    if holder == 0:  # holds both leases until killed
        try:
            p = prot.open(d.segment)
            p.pool_register("conns", create=lambda: {"pid": os.getpid()})
            a, b = p.checkout("conns"), p.checkout("conns")
            assert a.conn["pid"] == os.getpid() and b.conn is not a.conn
            os.write(w, b"x")
            time.sleep(30)
        finally:
            os._exit(1)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x"
        with prot.open(d.segment) as p:
            made, closed = [], []
            p.pool_register("conns", create=lambda: made.append(1) or object(),
                            destroy=lambda c: closed.append(c))
            assert p.pool_status("conns")["in_use"] == 2
            with pytest.raises(prot.EPOOLFULL):
                p.checkout("conns", timeout_ms=0)
            t0 = time.monotonic()
            with pytest.raises(prot.ECHECKOUT_TIMEOUT):
                p.checkout("conns")  # the pool's 200 ms
            assert 0.15 < time.monotonic() - t0 < 2
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)
            holder = 0
            until(lambda: p.pool_status("conns")["in_use"] == 0, 3, what="dead holder's leases back")
            assert p.pool_status("conns")["reclaims"] == 2
            with p.pool("conns") as conn:
                assert conn is not None and made == [1]
            with pytest.raises(RuntimeError):
                with p.pool("conns"):
                    raise RuntimeError("broken connection")
            assert len(closed) == 1  # checked in broken: destroyed
            with pytest.raises(prot.ENOPOOL):
                p.checkout("nopool")
    finally:
        os.close(r)
        if holder:
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)


def test_execute_protected_applies_every_layer(protd):
    d = protd(INI)
    with prot.open(d.segment) as p:
        p.pool_register("conns", create=lambda: "conn-of-%d" % os.getpid())
        seen = []

        def call(c):
            seen.append((c.key, c.conn, c.deadline_ns > 0))
            return "value"
        assert p.execute_protected("api", call, entity="user:7") == "value"
        assert seen == [("api", "conn-of-%d" % os.getpid(), True)]
        with pytest.raises(KeyError):  # fn's own exception, recorded as a breaker failure
            p.execute_protected("api", lambda c: {}["x"], entity="user:7")
        st = p.status("api")
        assert st["calls"] == 2 and st["ok"] == 1 and st["failed"] == 1
        assert st["has_rate"] and st["has_breaker"] and st["has_pool"]
        assert st["breaker"]["name"] == "dep" and st["pool"]["name"] == "conns"
        for _ in range(38):
            p.execute_protected("api", lambda c: None, entity="user:8")
        p.execute_protected("api", lambda c: None, entity="user:8")
        p.execute_protected("api", lambda c: None, entity="user:8")
        with pytest.raises(prot.ERATELIMITED) as e:
            p.execute_protected("api", lambda c: None, entity="user:8")
        assert e.value.retry_after_ms > 0 and e.value.layer == 1
        with pytest.raises(prot.ENOKEY):
            p.execute_protected("nokey", lambda c: None)


def test_configure_status_and_list(protd):
    d = protd(INI)
    with prot.open(d.segment) as p:
        assert p.list() == {"keys": ["api"], "breakers": ["dep"], "pools": ["conns"]}
        changes = p.configure("api", {"rate_limit": 3})
        assert [(c["kind"], c["setting"], c["new"], c["changed"]) for c in changes] == \
            [("key", "rate_limit", "3", True)]
        assert p.status("api")["rate"]["limit"] == 3
        with pytest.raises(prot.EINVAL_CONFIG) as e:
            p.configure("api", "rate_limit=banana")
        assert "rate_limit" in str(e.value)
        info = p.info()
        assert info["segment"] == d.segment and info["protd_alive"] == 1


def test_configure_returns_every_change_of_a_long_reply(protd):
    """protd's whole reply, longer than prot_detail.message: one change per setting."""
    d = protd(INI)
    with prot.open(d.segment) as p:
        settings = " ".join(f"rate_limit={20 + i}" for i in range(40))
        changes = p.configure("api", settings)
        assert len(changes) == 40
        assert changes[-1]["new"] == "59" and changes[-1]["name"] == "api"
        assert p.configure("api", "rate_limit=59")[0]["changed"] is False


def test_a_handle_opened_before_fork_works_in_the_children(protd):
    d = protd(INI)
    p = prot.open(d.segment)
    p.pool_register("conns", create=lambda: os.getpid())
    lease = p.checkout("conns")  # the parent's: the children inherit neither it nor its conn

    def child(i):
        with p.pool("conns", timeout_ms=1000) as conn:
            assert conn == os.getpid(), "a child makes its own connection"
        return p.rate_check_key("api", "user:fork")[0]
    assert fork_run(child, 3) == [True, True, True]
    assert p.pool_status("conns")["in_use"] == 1
    lease.checkin()
    assert p.rate_check_key("api", "user:fork")[1]["remaining"] == 36
    p.close()


def test_missing_segment_is_ENOSEG():
    with pytest.raises(prot.ENOSEG) as e:
        prot.open("/prot-t-%d-nosuch" % os.getpid())
    assert "nosuch" in str(e.value)
