"""The registry benchmark's servers: PostgreSQL with migrated registry databases (`tests.bench.common`), and
`python -m registry` processes under `eventbus.stack.supervisor` (the working tree's, or `registry/` exported
from a git revision for --against)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

from eventbus.stack.supervisor import ProcessSpec, Supervisor, python_module
from tests.bench.common import drop_databases, postgres
from tests.bench.registry_common import REPO, say
from tests.waiting import free_port


def server_stack() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"1 uvicorn process, loop={loop}, http={http}"


class Postgres:
    """`tests.bench.common.postgres` (embedded in the work dir, or DATABASE_URL's server) with migrated registry
    databases; on DATABASE_URL's server they are dropped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server_url = ""
        self.databases: list[str] = []
        self._server = contextlib.ExitStack()

    def start(self) -> str:
        if os.environ.get("DATABASE_URL"):
            say("http: PostgreSQL from DATABASE_URL (bench databases are created and dropped)")
        self.server_url = self._server.enter_context(postgres(self.workdir, lambda message: say(f"http: {message}")))
        return self.server_url

    def migrated_database(self) -> str:
        from eventbus.migrate import upgrade

        name = f"bench_registry_{uuid.uuid4().hex[:8]}"
        self.databases.append(name)
        say(f"http: migrating {name} (eventbus.migrate.upgrade('registry', 'heads'))")
        return upgrade("registry", self.server_url, "heads", database=name)

    def stop(self) -> None:
        if os.environ.get("DATABASE_URL") and self.server_url and self.databases:
            with contextlib.suppress(Exception):
                asyncio.run(drop_databases(self.server_url, self.databases))
        self._server.close()


class Registry:
    """`python -m registry` on a free port against its own migrated database, run by `supervisor`. `cwd` is where
    `registry` is imported from: None for the working tree, or an exported older revision (--against)."""

    def __init__(self, label: str, postgres: Postgres, supervisor: Supervisor, cwd: Path | None = None) -> None:
        self.label = label
        self.postgres = postgres
        self.supervisor = supervisor
        self.cwd = cwd
        self.name = "registry-" + re.sub(r"[^A-Za-z0-9_.-]", "_", label)
        self.url = ""

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.supervisor.processes.get(self.name)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> str:
        db_url = self.postgres.migrated_database()
        port = free_port()
        env = {"DATABASE_URL": self.postgres.server_url, "REGISTRY_DATABASE_URL": db_url,
               "REGISTRY_PORT": str(port), "REGISTRY_TOKEN": uuid.uuid4().hex, "LOG_LEVEL": "WARNING",
               "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
        argv = python_module("registry") if self.cwd is None else module_in(self.cwd, "registry")
        process = self.supervisor.start(ProcessSpec(self.name, argv, port, env))
        self.url = f"http://127.0.0.1:{port}"
        say(f"http: started `python -m registry` [{self.label}] (pid {process.pid}) on {self.url}; "
            "waiting for /health")
        self.supervisor.wait_healthy([self.name], timeout=60)
        return self.url

    def tail(self) -> str:
        return self.supervisor.log_tail(self.name, 40) if self.process is not None else ""

    def stop(self) -> None:
        self.supervisor.stop(self.name, timeout=15)


def module_in(folder: Path, module: str) -> list[str]:
    """`python -m module` as if started in `folder`, which `module` is imported from first."""
    code = (f"import os, runpy, sys; os.chdir({str(folder)!r}); sys.path.insert(0, {str(folder)!r}); "
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", code]


def export_revision(ref: str, into: Path) -> Path:
    """`registry/` as of git `ref`, in a folder of its own (eventbus etc. stay the working tree's)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "registry"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--against {ref}: git archive failed: {archive.stderr.decode().strip()}")
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into
