"""app.py — a WSGI app for gunicorn whose workers call Redis through prot: every request runs
through execute_protected("redis", ..., entity="user:U"), i.e. the per-user rate limit, the
breaker and the pool of Redis connections of [key redis] in examples/protd.ini, shared by all
workers. gunicorn.conf.py opens the prot handle in each worker (post_fork).

  GET /hit?user=U    INCR hits:U in Redis      200 count | 429 rate-limited (Retry-After)
                                               | 503 breaker open | 503 no connection in time
                                               | 502 Redis failed (recorded by the breaker)
  GET /hold?ms=N     holds a pool lease for N ms, streaming "holding PID" first (the demo kills
                     such a worker to show its lease coming back)
Every response carries X-Worker: the worker's pid.
"""
import os
import time

import prot

handle = None  # this worker's prot handle (gunicorn.conf.py: post_fork)


def _reply(start, status, body, extra=()):
    start(status, [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid())), *extra])
    return [body.encode()]


def _query(environ):
    q = {}
    for part in environ.get("QUERY_STRING", "").split("&"):
        k, _, v = part.partition("=")
        if k:
            q[k] = v
    return q


def hit(environ, start):
    user = _query(environ).get("user", "anonymous")
    try:
        n = handle.execute_protected("redis", lambda call: call.conn.incr(f"hits:{user}"),
                                     entity=f"user:{user}")
        return _reply(start, "200 OK", f"{n}\n")
    except prot.ERATELIMITED as e:
        secs = str(max(1, (e.retry_after_ms + 999) // 1000))
        return _reply(start, "429 Too Many Requests", "rate limited\n", [("Retry-After", secs)])
    except prot.EBLOWN:
        return _reply(start, "503 Service Unavailable", "breaker open\n", [("X-Prot", "blown")])
    except (prot.ECHECKOUT_TIMEOUT, prot.EPOOLFULL):
        return _reply(start, "503 Service Unavailable", "no connection\n", [("X-Prot", "pool")])
    except prot.ETIMEOUT:
        return _reply(start, "504 Gateway Timeout", "redis too slow\n")
    except Exception as e:  # noqa: BLE001 — Redis itself failed (the breaker counted it)
        return _reply(start, "502 Bad Gateway", f"redis: {type(e).__name__}\n")


def hold(environ, start):
    ms = int(_query(environ).get("ms", "1000"))
    lease = handle.checkout("redis")
    start("200 OK", [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])

    def body():
        try:
            yield f"holding {os.getpid()}\n".encode()
            time.sleep(ms / 1000)
            yield b"released\n"
        finally:
            lease.checkin()
    return body()


def application(environ, start):
    path = environ.get("PATH_INFO", "/")
    if path == "/hit":
        return hit(environ, start)
    if path == "/hold":
        return hold(environ, start)
    return _reply(start, "404 Not Found", "GET /hit?user=U or /hold?ms=N\n")
