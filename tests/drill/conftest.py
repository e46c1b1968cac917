"""Fixtures of the drill's tests: a real PowerDNS (Debian's pdns_server, sqlite3 backend) on loopback,
a throwaway CA and server certificate made with openssl."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
ZONE = "drill.test"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (pdns binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@dataclass
class Pdns:
    port: int
    db: Path
    log: Path

    def set_a(self, name: str, address: str, ttl: int) -> None:
        """Replace the A record of ``name`` (caches are off, the next query sees it)."""
        with sqlite3.connect(self.db) as con:
            zone_id = con.execute("SELECT id FROM domains WHERE name = ?", (ZONE,)).fetchone()[0]
            con.execute("DELETE FROM records WHERE name = ? AND type = 'A'", (name,))
            con.execute(
                "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled, auth)"
                " VALUES (?, ?, 'A', ?, ?, 0, 0, 1)",
                (zone_id, name, address, ttl),
            )


@pytest.fixture(scope="session")
def pdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pdns]:
    if shutil.which("pdns_server") is None or not SCHEMA.exists():
        pytest.fail(
            "pdns-server and pdns-backend-sqlite3 are not installed (scripts/bootstrap.sh installs them)"
        )
    d = tmp_path_factory.mktemp("pdns")
    db = d / "pdns.sqlite3"
    with sqlite3.connect(db) as con:
        con.executescript(SCHEMA.read_text())
        con.execute("INSERT INTO domains (name, type) VALUES (?, 'NATIVE')", (ZONE,))
        zone_id = con.execute("SELECT id FROM domains WHERE name = ?", (ZONE,)).fetchone()[0]
        con.execute(
            "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled, auth)"
            " VALUES (?, ?, 'SOA', ?, 3600, 0, 0, 1)",
            (zone_id, ZONE, f"ns1.{ZONE} hostmaster.{ZONE} 1 10800 3600 604800 3600"),
        )
    (d / "pdns.conf").write_text("")
    port = free_port()
    log = d / "pdns.log"
    argv = [
        "pdns_server",
        f"--config-dir={d}",
        "--launch=gsqlite3",
        f"--gsqlite3-database={db}",
        "--local-address=127.0.0.1",
        f"--local-port={port}",
        f"--socket-dir={d}",
        "--guardian=no",
        "--daemon=no",
        "--disable-syslog",
        "--write-pid=no",
        "--security-poll-suffix=",
        # every answer straight from the database: the test changes records under a running server
        "--cache-ttl=0",
        "--negquery-cache-ttl=0",
        "--query-cache-ttl=0",
        "--zone-cache-refresh-interval=0",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_answering(port, proc, log)
        yield Pdns(port, db, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_answering(port: int, proc: subprocess.Popen, log: Path) -> None:
    query = dns.message.make_query(ZONE, "SOA")
    for _ in range(100):
        if proc.poll() is not None:
            pytest.fail(f"pdns_server exited {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    pytest.fail(f"pdns_server never answered on 127.0.0.1:{port}:\n{log.read_text()[-2000:]}")


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path
    name: str


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A CA and a server certificate for ``api.drill.test`` (what the gateway role makes for the lab)."""
    d = tmp_path_factory.mktemp("tls")
    name = f"api.{ZONE}"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=drill test CA",
        "-days",
        "1",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    )
    openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", f"/CN={name}")
    (d / "ext.cnf").write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    )
    return Tls(d / "ca.crt", d / "srv.crt", d / "srv.key", name)
