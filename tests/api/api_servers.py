"""Throwaway real servers for the API tests: PostgreSQL 15, RabbitMQ and moto's SQS, each on a free
loopback port in its own temporary directory, stopped (and their directory removed) at the end.

PostgreSQL refuses to run as root: when the tests run as root (CI does), initdb and the server run as
the ``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
HOOKED_API = Path(__file__).with_name("hooked_api.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s\n{tail}")


def _demote(user: str) -> dict[str, object]:
    """Popen arguments that run the child as `user` when we are root."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


@dataclass
class Postgres:
    port: int
    datadir: Path
    user: str = "puente"

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def postgres(settings: dict[str, str] | None = None) -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="puente-pg-"))
    run_as = _demote("postgres")
    if run_as:
        shutil.chown(root, "postgres", "postgres")
    datadir, log = root / "data", root / "server.log"
    subprocess.run(
        [PG_BIN / "initdb", "-D", datadir, "-U", "puente", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=root,
        **run_as,  # type: ignore[arg-type]
    )
    port = free_port()
    conf = {
        "port": str(port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{root}'",
        "max_connections": "200",
        "fsync": "off",  # a test database: durability is not what these tests measure
        "synchronous_commit": "off",
        "full_page_writes": "off",
        **(settings or {}),
    }
    with (datadir / "postgresql.conf").open("a") as f:
        f.writelines(f"{k} = {v}\n" for k, v in conf.items())
    subprocess.run(
        [PG_BIN / "pg_ctl", "-D", datadir, "-l", log, "-w", "-t", "60", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=root,
        **run_as,  # type: ignore[arg-type]
    )
    try:
        yield Postgres(port, datadir)
    finally:
        subprocess.run(
            [PG_BIN / "pg_ctl", "-D", datadir, "-m", "immediate", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=root,
            **run_as,  # type: ignore[arg-type]
        )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RabbitMQ:
    port: int

    def url(self) -> str:
        return f"amqp://guest@127.0.0.1:{self.port}/%2F"


@contextlib.contextmanager
def rabbitmq() -> Iterator[RabbitMQ]:
    """A node of its own: own name, ports, Mnesia/log dirs, Erlang cookie and epmd port."""
    root = Path(tempfile.mkdtemp(prefix="puente-rmq-"))
    home = root / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text(os.urandom(10).hex().upper())
    cookie.chmod(0o400)
    (root / "enabled_plugins").write_text("[].\n")
    port, dist, epmd = free_port(), free_port(), free_port()
    (root / "rabbitmq.conf").write_text(
        f"listeners.tcp.1 = 127.0.0.1:{port}\n"
        # the default alarm is a fraction of the HOST's memory (lab notes): pin it
        "vm_memory_high_watermark.absolute = 512MiB\n"
        "disk_free_limit.absolute = 50MB\n"
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "RABBITMQ_NODENAME": f"puente-test-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "ERL_EPMD_PORT": str(epmd),
        "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
        "RABBITMQ_LOG_BASE": str(root / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
        "RABBITMQ_PID_FILE": str(root / "pid"),
    }
    log = root / "server.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [RABBITMQ_SERVER], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
        )
    try:
        wait_port(port, 90, proc, log)
        yield RabbitMQ(port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # the node started an epmd of its own on ERL_EPMD_PORT: stop that one only
        subprocess.run(["epmd", "-kill"], env=env, check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def moto_sqs() -> Iterator[str]:
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="puente-moto-"))
    log = root / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 30, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


class APIServer:
    """``puente-api serve`` as a real process (uvicorn), so tests can kill -9 it."""

    def __init__(self, env: dict[str, str], workers: int = 1) -> None:
        self.env = env
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="puente-api-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self, extra_env: dict[str, str] | None = None, pause_after: tuple[str, float] | None = None
    ) -> APIServer:
        """``pause_after=("lock"|"commit", seconds)`` starts it through the tests' launcher (hooked_api.py),
        the only way to hold a write there: the API itself reads no setting for it."""
        command: list[str | Path] = [Path(sys.executable).with_name("puente-api")]
        if pause_after is not None:
            command = [sys.executable, HOOKED_API, f"--pause-after-{pause_after[0]}", str(pause_after[1])]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *command,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env={**os.environ, **self.env, **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_port(self.port, 30, self.proc, self.log)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, keep_log: bool = False) -> None:
        if not keep_log:
            self.log.unlink(missing_ok=True)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")
