"""The label worker of two revisions side by side: its idle CPU and how long a label takes once the relay
published its message (issue 12: basic.consume and a prefetch instead of basic_get every 50 ms).

    .venv/bin/python bench/worker_bench.py --baseline 3c5896b [--labels 30] [--idle-seconds 20]

Throwaway PostgreSQL and RabbitMQ on loopback (the API tests' helpers); per side, a database of its own
and `puente-api worker` of that revision as a process: first idle (CPU from /proc over --idle-seconds),
then one shipment at a time: outbox row written, a pause (the worker idle in its wait), the relay's
run_once publishes it, and the time until label_status = 'ready' is taken. Prints one line per side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "api"))  # the throwaway-server helpers the API tests use
sys.path.insert(0, str(ROOT / "bench"))

import api_servers as servers  # noqa: E402
from api_bench import baseline_tree  # noqa: E402
from api_helpers import make_env, migrate, shipment_body  # noqa: E402
from puente_api import outbox  # noqa: E402
from puente_api import settings as settings_mod  # noqa: E402
from puente_api.brokers import connect  # noqa: E402

# Seconds between writing a shipment and publishing it: the worker is idle in its wait by then.
PAUSE = 0.37


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _one_label(conn: psycopg.Connection, broker: object) -> float:
    sid, body = uuid.uuid4(), shipment_body()
    conn.execute(
        "INSERT INTO shipments (id, client_id, service, sender, recipient, parcels)"
        " VALUES (%s, 'bench', 'standard', %s, %s, %s)",
        (sid, Jsonb(body["sender"]), Jsonb(body["recipient"]), Jsonb(body["parcels"])),
    )
    conn.execute(
        "INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('shipment.created', %s, %s)",
        (sid, Jsonb({"shipment_id": str(sid)})),
    )
    time.sleep(PAUSE)
    outbox.run_once(conn, broker)  # type: ignore[arg-type]
    started = time.monotonic()
    while conn.execute("SELECT label_status FROM shipments WHERE id = %s", (sid,)).fetchone() != ("ready",):
        time.sleep(0.002)
    return (time.monotonic() - started) * 1000


def measure(
    name: str, src: Path, pg: servers.Postgres, rabbit: servers.RabbitMQ, args: argparse.Namespace
) -> str:
    env = make_env(pg.create_database(f"worker_bench_{name}"), rabbit.url())
    migrate(env)
    cfg = settings_mod.load(env)
    broker = connect(cfg.broker)
    broker.declare()
    proc = subprocess.Popen(
        [sys.executable, "-m", "puente_api", "worker"],
        env={**os.environ, **env, "PYTHONPATH": str(src)},
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # started and connected
        cpu, started = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle = (_cpu_seconds(proc.pid) - cpu) / (time.monotonic() - started)
        with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            ms = sorted(_one_label(conn, broker) for _ in range(args.labels))
    finally:
        proc.terminate()
        proc.wait(20)
        broker.close()
    return (
        f"{name}: idle CPU {idle * 100:.2f} % of a core; publish -> label ready: median "
        f"{statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms, max {ms[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--baseline", required=True, metavar="REV", help="git revision to compare with")
    parser.add_argument("--labels", type=int, default=30)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, servers.postgres() as pg, servers.rabbitmq() as rabbit:
        sides = {"baseline": baseline_tree(args.baseline, Path(tmp)), "current": ROOT / "api" / "src"}
        for name, src in sides.items():
            print(measure(name, src, pg, rabbit, args), flush=True)


if __name__ == "__main__":
    main()
