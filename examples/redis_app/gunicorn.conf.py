"""gunicorn.conf.py — gunicorn settings for app.py: 4 pre-forked sync workers on
$DEMO_BIND (127.0.0.1:PORT), and the post_fork hook that gives each worker its own prot handle and
a Redis connector ($REDIS_PORT) for the pool "redis"."""
import os

bind = os.environ.get("DEMO_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DEMO_WORKERS", "4"))
worker_class = "sync"
timeout = 30
graceful_timeout = 3
accesslog = None
loglevel = "warning"


def post_fork(server, worker):
    import prot
    import redis

    import app
    port = int(os.environ.get("REDIS_PORT", "6379"))
    app.handle = prot.open()  # $PROT_SEGMENT
    app.handle.pool_register(
        "redis",
        create=lambda: redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.25,
                                   socket_connect_timeout=0.25, retry_on_timeout=False),
        destroy=lambda r: r.close())


def worker_exit(server, worker):
    import app
    if app.handle is not None:
        app.handle.close()  # returns this worker's leases, closes its connections
