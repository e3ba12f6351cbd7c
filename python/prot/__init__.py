"""prot — Python binding of libprot (ctypes over libprot.so.1): shared-memory rate limits, circuit
breakers and connection pools for pre-fork servers (gunicorn, uWSGI, multiprocessing workers).

    import prot
    p = prot.open()                                  # $PROT_SEGMENT, else "/prot"
    allowed, info = p.rate_check("api_calls", "user:123", limit=100, window_ms=60000)
    value = p.breaker_execute("db", lambda: query())  # raises prot.EBLOWN while open
    p.pool_register("db", create=connect, destroy=lambda c: c.close())
    with p.pool("db") as conn: ...
    value = p.execute_protected("api", lambda call: call.conn.get("x"), entity="user:123")

Every failure is an exception named after prot's code (prot.ERATELIMITED, prot.EBLOWN, ...),
subclasses of prot.ProtError. A function passed in fails by raising: the breaker records the
failure and the exception reaches the caller unchanged.

Fork: a handle opened before fork() keeps working in the child (libprot takes on the child's
identity; the child inherits neither leases nor pooled connections). With gunicorn, open in the
post_fork hook so that each worker has its own handle (examples/gunicorn_app/).
"""
import ctypes
import threading
import urllib.parse

from ._abi import (CALL_FN, CHECK_FN, CREATE_FN, DESTROY_FN, INT_FN, NAME_FN, REPLY_MAX,
                   BreakerStatus, CallOpts, Connector, Detail, Info, Opaque3, PoolStatus,
                   ProtectionStatus, RateInfo, RateLimit, RateStatus, lib)
from .errors import *  # noqa: F401,F403  (the exception classes are part of the module)
from .errors import CODES, ProtError, error

BREAKER_STATES = {0: "closed", 1: "open", 2: "half_open", 3: "blown"}  # as prot_breaker_state_name
LAYERS = {0: None, 1: "rate", 2: "breaker", 4: "pool", 8: "call"}
OPEN_RDONLY = 1


def _b(s):
    return None if s is None else (s.encode() if isinstance(s, str) else bytes(s))


def _records(text):
    """protd's reply records (man/prot-control.7.scd): [(type, {field: value})], one a line,
    "TYPE name=value ...", values %XX-escaped."""
    out = []
    for line in text.splitlines():
        words = line.split(" ")
        if words[0]:
            out.append((words[0], {k: urllib.parse.unquote(v) for k, sep, v in
                                   (w.partition("=") for w in words[1:]) if sep}))
    return out


def _dict(st):
    """A ctypes structure as a dict (names decoded, nested structures as dicts)."""
    out = {}
    for name, _ in st._fields_:
        v = getattr(st, name)
        if isinstance(v, bytes):
            v = v.decode(errors="replace")
        elif isinstance(v, ctypes.Structure):
            v = _dict(v)
        elif isinstance(v, ctypes.Array):
            v = list(v)
        out[name] = v
    return out


class Call:
    """What execute_protected's function receives."""
    __slots__ = ("conn", "deadline_ns", "key")

    def __init__(self, conn, deadline_ns, key):
        self.conn, self.deadline_ns, self.key = conn, deadline_ns, key


class Lease:
    """A pool lease held by this process (Prot.checkout); give it back with checkin()."""

    def __init__(self, prot, raw, conn):
        self._prot, self._raw, self.conn = prot, raw, conn

    def checkin(self, broken=False):
        rc = lib.prot_pool_checkin(self._prot._h(), ctypes.byref(self._raw), 1 if broken else 0)
        if rc < 0:
            raise error(rc)


class Token:
    """A breaker admission (Prot.breaker_allow); report the outcome with record()."""
    SUCCESS, FAILURE, CANCEL = 0, 1, 2

    def __init__(self, prot, raw):
        self._prot, self._raw = prot, raw

    def record(self, outcome, duration_ns=0):
        rc = lib.prot_breaker_record(self._prot._h(), ctypes.byref(self._raw), outcome, duration_ns)
        if rc < 0:
            raise error(rc)


# This process's pooled connections: C sees an integer handle, unique across all connectors.
_CONNS = {}
_CONNS_LOCK = threading.Lock()
_NEXT = [1]


class _Connector:
    """A Python connector: create/destroy/check callables behind C callbacks."""

    def __init__(self, create, destroy=None, check=None):
        self.objs, self.lock = _CONNS, _CONNS_LOCK
        self.create, self.destroy, self.check = create, destroy, check
        self.c_create, self.c_destroy = CREATE_FN(self._create), DESTROY_FN(self._destroy)
        self.c_check = CHECK_FN(self._check) if check else ctypes.cast(None, CHECK_FN)
        self.struct = Connector(self.c_create, self.c_destroy, self.c_check, None)

    def _create(self, _ctx, out):
        try:
            obj = self.create()
        except Exception:  # noqa: BLE001 — any failure of create() is PROT_ECONNECTOR
            return -1
        with self.lock:
            h = _NEXT[0]
            _NEXT[0] += 1
            self.objs[h] = obj
        out[0] = h
        return 0

    def _destroy(self, _ctx, h):
        with self.lock:
            obj = self.objs.pop(h or 0, None)
        if obj is not None and self.destroy:
            try:
                self.destroy(obj)
            except Exception:  # noqa: BLE001 — a connection that fails to close is gone anyway
                pass

    def _check(self, _ctx, h):
        try:
            return 0 if self.check(self.objs.get(h or 0)) else -1
        except Exception:  # noqa: BLE001
            return -1

    @staticmethod
    def get(h):
        return _CONNS.get(h or 0)


class Prot:
    """A handle on protd's segment (prot_open). Share it between threads; close() detaches."""

    def __init__(self, segment=None, readonly=False):
        h = ctypes.c_void_p()
        rc = lib.prot_open(_b(segment), OPEN_RDONLY if readonly else 0, ctypes.byref(h))
        if rc < 0:
            raise error(rc, segment)
        self._handle = h
        self._connectors = {}

    def _h(self):
        if self._handle is None:
            raise ValueError("prot handle is closed")
        return self._handle

    def close(self):
        if self._handle is not None:
            lib.prot_close(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- segment ------------------------------------------------------------------------------
    def info(self):
        out = Info()
        rc = lib.prot_get_info(self._h(), ctypes.byref(out))
        if rc < 0:
            raise error(rc)
        return _dict(out)

    def _names(self, fn):
        names = []

        def each(name, _arg):
            names.append(name.decode(errors="replace"))
            return 0
        rc = fn(self._h(), NAME_FN(each), None)
        if rc < 0:
            raise error(rc)
        return names

    def list(self):
        """{"keys": [...], "breakers": [...], "pools": [...]}"""
        return {"keys": self._names(lib.prot_list_keys),
                "breakers": self._names(lib.prot_list_breakers),
                "pools": self._names(lib.prot_list_pools)}

    # -- rate limiter -------------------------------------------------------------------------
    # enum prot_rate_algo by its names (lib/names.c); None: the fixed window (token and leaky
    # bucket: limit is the refill or leak rate per window_ms, 0 = per second, and burst the
    # capacity, as in struct prot_rate_limit)
    _ALGOS = {None: 1, "fixed_window": 1, "gcra": 2, "sliding_window": 3, "token_bucket": 4,
              "leaky_bucket": 5}

    def rate_check(self, operation, entity, limit, window_ms, cost=1, algo=None, burst=0):
        """(allowed, info): one decision, charged when allowed. algo: None or a name of _ALGOS."""
        info = RateInfo()
        if algo is None and cost == 1:
            rc = lib.prot_rate_check(self._h(), _b(operation), _b(entity), limit, window_ms,
                                     ctypes.byref(info))
        else:
            lim = RateLimit(self._ALGOS[algo], limit, window_ms, burst)
            rc = lib.prot_rate_check_n(self._h(), _b(operation), _b(entity), ctypes.byref(lim),
                                       cost, ctypes.byref(info))
        if rc < 0:
            raise error(rc, f"{operation} {entity}")
        return rc == 1, _dict(info)

    def rate_check_key(self, key, entity, cost=1):
        """(allowed, info) with the limits of protection key KEY."""
        info = RateInfo()
        rc = lib.prot_rate_check_key(self._h(), _b(key), _b(entity), cost, ctypes.byref(info))
        if rc < 0:
            raise error(rc, f"{key} {entity}")
        return rc == 1, _dict(info)

    def rate_status(self, operation, entity, limit, window_ms, algo=None, burst=0):
        info = RateInfo()
        lim = RateLimit(self._ALGOS[algo], limit, window_ms, burst)
        rc = lib.prot_rate_status(self._h(), _b(operation), _b(entity), ctypes.byref(lim),
                                  ctypes.byref(info))
        if rc < 0:
            raise error(rc, f"{operation} {entity}")
        return _dict(info)

    def rate_check_bin(self, operation, entity, limit, window_ms, cost=1, algo=None, burst=0):
        """rate_check with entity as any bytes (NUL included), up to 64."""
        info, ent = RateInfo(), bytes(entity)
        lim = RateLimit(2 if algo == "gcra" else 1, limit, window_ms, burst)
        rc = lib.prot_rate_check_bin(self._h(), _b(operation), ent, len(ent), ctypes.byref(lim),
                                     cost, ctypes.byref(info))
        if rc < 0:
            raise error(rc, f"{operation} {ent!r}")
        return rc == 1, _dict(info)

    def rate_status_key(self, key, entity):
        """Hammer's inspect_bucket for KEY's bucket of entity (str or bytes), under the key's own
        limits: exists, algo, info, expires_at_ms, created_ms, updated_ms (CLOCK_MONOTONIC ms)."""
        st, ent = RateStatus(), _b(entity)
        rc = lib.prot_rate_status_key(self._h(), _b(key), ent, len(ent), ctypes.byref(st))
        if rc < 0:
            raise error(rc, f"{key} {ent!r}")
        return _dict(st)

    def rate_reset(self, operation, entity):
        rc = lib.prot_rate_reset(self._h(), _b(operation), _b(entity))
        if rc < 0:
            raise error(rc, f"{operation} {entity}")

    def _rate_count(self, fn, operation, entity, limit, window_ms, algo, *n):
        lim = RateLimit(self._ALGOS[algo], limit, window_ms, 0)
        out = ctypes.c_uint64()
        rc = fn(self._h(), _b(operation), _b(entity), ctypes.byref(lim), *n, ctypes.byref(out))
        if rc < 0:
            raise error(rc, f"{operation} {entity}")
        return out.value

    def rate_inc(self, operation, entity, limit, window_ms, n=1, algo=None):
        """Hammer's inc: add n to the bucket's count (no limit check); returns the count after."""
        return self._rate_count(lib.prot_rate_inc, operation, entity, limit, window_ms, algo, n)

    def rate_get(self, operation, entity, limit, window_ms, algo=None):
        """Hammer's get: the count in the current window (0 for no bucket)."""
        return self._rate_count(lib.prot_rate_get, operation, entity, limit, window_ms, algo)

    def rate_set(self, operation, entity, limit, window_ms, count, algo=None):
        """Hammer's set: make the count `count`; returns it."""
        return self._rate_count(lib.prot_rate_set, operation, entity, limit, window_ms, algo, count)

    # -- circuit breaker ----------------------------------------------------------------------
    def breaker_execute(self, name, fn, *args, **kwargs):
        """Run fn(*args, **kwargs) if the breaker admits it; an exception is a failure (recorded,
        then re-raised). Raises EBLOWN without calling fn while the breaker is open."""
        box = {}

        def run(_arg):
            try:
                box["value"] = fn(*args, **kwargs)
                return 0
            except BaseException as e:  # noqa: BLE001 — handed back to the caller below
                box["exc"] = e
                return -1
        fn_result = ctypes.c_int()
        rc = lib.prot_breaker_execute(self._h(), _b(name), INT_FN(run), None, ctypes.byref(fn_result))
        if "exc" in box:
            raise box["exc"]
        if rc < 0:
            raise error(rc, name)
        return box.get("value")

    def breaker_allow(self, name):
        """The split form: a Token when admitted (report with token.record()), else EBLOWN."""
        tok = Opaque3()
        rc = lib.prot_breaker_allow(self._h(), _b(name), ctypes.byref(tok))
        if rc < 0:
            raise error(rc, name)
        return Token(self, tok)

    def breaker_status(self, name):
        out = BreakerStatus()
        rc = lib.prot_breaker_status(self._h(), _b(name), ctypes.byref(out))
        if rc < 0:
            raise error(rc, name)
        d = _dict(out)
        d["state_name"] = BREAKER_STATES.get(d["state"], str(d["state"]))
        return d

    def breaker_ask(self, name):
        """fuse's ask: "ok" if a call would be admitted now, "blown" otherwise. No side effect:
        no probe is taken, nothing is counted (prot_breaker_ask)."""
        rc = lib.prot_breaker_ask(self._h(), _b(name))
        if rc == -CODES["EBLOWN"]:
            return "blown"
        if rc < 0:
            raise error(rc, name)
        return "ok"

    def breaker_enable(self, name):
        """Enable a disabled (blown) breaker: closed, with an empty history (fuse's circuit_enable)."""
        rc = lib.prot_breaker_enable(self._h(), _b(name))
        if rc < 0:
            raise error(rc, name)

    def breaker_remove(self, name):
        """Remove a breaker through protd; defined again, it comes back fresh."""
        rc = lib.prot_breaker_remove(self._h(), _b(name))
        if rc < 0:
            raise error(rc, name)

    def breaker_reset(self, name):
        rc = lib.prot_breaker_reset(self._h(), _b(name))
        if rc < 0:
            raise error(rc, name)

    def breaker_blow(self, name):
        rc = lib.prot_breaker_blow(self._h(), _b(name))
        if rc < 0:
            raise error(rc, name)

    # -- pool -----------------------------------------------------------------------------------
    def pool_register(self, pool, create, destroy=None, check=None):
        """This process's connector for POOL: create() -> connection, destroy(conn),
        check(conn) -> bool (is an idle connection still usable)."""
        c = _Connector(create, destroy, check)
        rc = lib.prot_pool_register(self._h(), _b(pool), ctypes.byref(c.struct))
        if rc < 0:
            raise error(rc, pool)
        self._connectors[pool] = c  # keeps the callbacks alive as long as the handle

    def checkout(self, pool, timeout_ms=-1):
        """A Lease (lease.conn is this process's connection); raises ECHECKOUT_TIMEOUT, ..."""
        raw, h = Opaque3(), ctypes.c_void_p()
        rc = lib.prot_pool_checkout(self._h(), _b(pool), timeout_ms, ctypes.byref(raw), ctypes.byref(h))
        if rc < 0:
            raise error(rc, pool)
        c = self._connectors.get(pool)
        return Lease(self, raw, c.get(h.value) if c else None)

    def pool(self, pool, timeout_ms=-1):
        """`with p.pool("db") as conn:` — checked in as broken when the block raises."""
        prot = self

        class _Ctx:
            def __enter__(self):
                self.lease = prot.checkout(pool, timeout_ms)
                return self.lease.conn

            def __exit__(self, et, ev, tb):
                self.lease.checkin(broken=et is not None)
        return _Ctx()

    def pool_status(self, pool):
        out = PoolStatus()
        rc = lib.prot_pool_status(self._h(), _b(pool), ctypes.byref(out))
        if rc < 0:
            raise error(rc, pool)
        return _dict(out)

    # -- the facade -----------------------------------------------------------------------------
    def execute_protected(self, key, fn, entity=None, operation=None, cost=1, timeout_ms=-1):
        """prot_execute: rate limit (per entity) -> breaker -> pool -> fn(call). Returns what fn
        returns; fn fails by raising (the breaker records it; the exception is re-raised).
        Refusals raise ERATELIMITED (.retry_after_ms), EBLOWN, ECHECKOUT_TIMEOUT, ...; a call that
        overran its timeout raises ETIMEOUT (.result has what fn returned)."""
        box = {}
        def run(c):
            try:
                call = c.contents
                conn = _CONNS.get(call.conn) if call.conn else None
                box["value"] = fn(Call(conn, call.deadline_ns, key))
                return 0
            except BaseException as e:  # noqa: BLE001 — handed back to the caller below
                box["exc"] = e
                return -1
        opts = CallOpts(_b(entity), _b(operation), cost, timeout_ms, 0)
        d = Detail()
        rc = lib.prot_execute(self._h(), _b(key), ctypes.byref(opts), CALL_FN(run), None, ctypes.byref(d))
        if "exc" in box:
            raise box["exc"]
        if rc < 0:
            raise error(rc, key, retry_after_ms=d.retry_after_ms, layer=d.layer,
                        result=box.get("value"))
        return box.get("value")

    def configure(self, key, settings):
        """Runtime change through protd: settings "rate_limit=50 ..." or a dict. Returns what
        changed, one dict per setting, from protd's change records (prot_configure_reply, the
        whole reply): {"kind", "name", "option", "setting", "old", "new", "changed"} (old or new
        None when there was none). Raises EINVAL_CONFIG (with protd's message), ENOTCONNECTED..."""
        if isinstance(settings, dict):
            settings = " ".join(f"{k}={v}" for k, v in settings.items())
        buf = ctypes.create_string_buffer(REPLY_MAX + 1)
        n = ctypes.c_size_t(0)
        rc = lib.prot_configure_reply(self._h(), _b(key), _b(settings), buf, len(buf), ctypes.byref(n))
        reply = buf.value.decode(errors="replace")
        if rc < 0:
            raise error(rc, reply or key)
        keys = ("kind", "name", "option", "setting", "old", "new")
        return [dict({k: f.get(k) for k in keys}, changed=f.get("changed") == "true")
                for t, f in _records(reply) if t == "change"]

    def status(self, key):
        """Every layer of protection key KEY (prot_get_protection_status) as a dict."""
        out = ProtectionStatus()
        rc = lib.prot_get_protection_status(self._h(), _b(key), ctypes.byref(out))
        if rc < 0:
            raise error(rc, key)
        d = _dict(out)
        d["breaker"]["state_name"] = BREAKER_STATES.get(d["breaker"]["state"], "?")
        return d


def open(segment=None, readonly=False):  # noqa: A001 — prot.open() mirrors prot_open()
    """Attach to protd's segment (None: $PROT_SEGMENT, else "/prot")."""
    return Prot(segment, readonly)
