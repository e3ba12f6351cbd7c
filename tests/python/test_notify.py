"""test_notify.py — protd speaks systemd's readiness protocol: with $NOTIFY_SOCKET (a datagram
socket this test binds) it sends READY=1 once it serves, RELOADING=1 then READY=1 around a SIGHUP
reload, and STOPPING=1 on SIGTERM; without it, it sends nothing and runs as before."""
import os
import signal
import socket

from test_binding import INI


def recv(sock, timeout=5.0):
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_ready_reloading_stopping(protd, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        d = protd(INI, env=dict(os.environ, NOTIFY_SOCKET=path), wait=False)
        msg = recv(sock)
        assert "READY=1" in msg.splitlines() and f"MAINPID={d.proc.pid}" in msg
        assert "STATUS=serving " + d.segment in msg
        d.wait_ready()
        d.proc.send_signal(signal.SIGHUP)
        assert recv(sock) == "RELOADING=1"
        assert recv(sock) == "READY=1"
        d.proc.send_signal(signal.SIGTERM)
        assert recv(sock) == "STOPPING=1"
        assert d.stop() == 0
    finally:
        sock.close()


def test_abstract_socket_name(protd):
    name = "@prot-t-%d-notify" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    try:
        protd(INI, env=dict(os.environ, NOTIFY_SOCKET=name), wait=False)
        assert "READY=1" in recv(sock).splitlines()
    finally:
        sock.close()
