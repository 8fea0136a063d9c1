"""Free TCP ports for stacks on ports of their own (tests, chaos, benchmarks)."""

from __future__ import annotations

import socket
import threading

_handed: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, and one this process has not handed out before. The kernel may give back
    a port it gave a moment ago once its socket is closed; a stack planned with two such ports would refuse
    to start (two processes on one port)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        with _lock:
            if port not in _handed:
                _handed.add(port)
                return port
