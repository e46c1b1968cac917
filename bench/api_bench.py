#!/usr/bin/env python3
"""Benchmark of the reference API's write path (a script that prints figures, not a test).

In one run (about 50 s) on this machine it starts a throwaway PostgreSQL 15 (durable: fsync,
synchronous_commit and full_page_writes on) and `puente-api serve`, then measures:

1. the ceiling: pgbench sending the database exactly what one create sends it -- the key lookup,
   then the one statement that writes (key lock + key lookup + shipment, outbox and key inserts) --
   both prepared, as psycopg prepares them, with the JSON documents as parameters, in the API's
   session settings, over CLIENTS connections: what creates would reach if the API cost nothing;
2. the API's create throughput and p50/p99 latency (wrk, every request a new Idempotency-Key);
3. the API's replay throughput (wrk, every request a key that already finished);

and prints them with the ratios the reference API targets: create >= 0.5 x ceiling, replay >= 2 x create,
and the CPU time each request cost the API, PostgreSQL and the load generator.

Every request is authenticated: API_CLIENTS simulated clients, each with its own API key (made by
`puente-api keys create`'s code), take turns request by request, so the key cache holds all of them and
each has a rate-limit bucket (the limit set far above what the run reaches: the bucket's cost counts,
no request is refused). The API gets the same number of database sessions as pgbench (CLIENTS, shared
out over the workers), and a short concurrent warm-up first, so its pools are full, its statements
prepared and its keys cached (pgbench's figure leaves out its connection set-up too).

What authentication costs: ``--baseline REV`` also serves the same load with the API of git revision REV
(e.g. the last commit before authentication), in the same run, in alternating rounds (``--rounds``), and
prints each side's throughput and API CPU per request and the authenticated side's cost relative to it.
The requests are the same bytes for both: a baseline without authentication reads X-Client-Id, which
the authenticated API ignores, and ignores Authorization, which it needs.

What WAL archiving costs the create path: ``--archive`` serves the same load from two such PostgreSQL
servers in the same run, in alternating rounds, one archiving every WAL segment with pgBackRest as role
pgbackrest configures it (archive-push, archive-async, zst, aes-256-cbc; here into a repository in the
run's temporary folder) and one not archiving, and prints each side's create p50/p99 and throughput.
It needs Debian's pgbackrest on this machine (``apt-get install pgbackrest``).

    .venv/bin/python bench/api_bench.py [--seconds 8] [--clients 16] [--workers 1]
                                        [--baseline REV [--rounds 2]] [--archive [--rounds 2]]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "api"))  # the throwaway-server helpers the API tests use

import orjson  # noqa: E402
from api_servers import PG_BIN, APIServer, Postgres, free_port, postgres  # noqa: E402
from proc_cpu import tree_cpu  # noqa: E402
from puente_api import db, idempotency, keys_cli, shipments  # noqa: E402
from puente_api import settings as settings_mod  # noqa: E402
from puente_api.models import ShipmentCreate  # noqa: E402

SHIPMENT = {
    "sender": {
        "name": "Puente Depot",
        "street": "Calle Mayor 1",
        "city": "Madrid",
        "postal_code": "28013",
        "country": "ES",
    },
    "recipient": {
        "name": "Ada Lovelace",
        "street": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    },
    "parcels": [{"weight_grams": 1200, "length_cm": 30, "width_cm": 20, "height_cm": 10}],
    "service": "express",
}
REPLAY_KEYS = 200  # keys created before the replay run; wrk cycles through them
WARM_UP_SECONDS = 2
API_CLIENTS = 16  # simulated clients, one API key each; request n is client n % API_CLIENTS's
# Far above what one API process serves here: the bucket is kept and counted, nothing is refused.
RATE_LIMIT_PER_SECOND = "1000000"


def pgbench_script() -> tuple[str, dict[str, str]]:
    """What the create endpoint sends the database for one create, as a pgbench script: the key lookup
    (idempotency._LOOKUP, outside any transaction), then the one statement that writes
    (idempotency._GATED over shipments.CREATE_CTES) -- a new key per transaction. pgbench prepares
    both (-M prepared), as psycopg does; the JSON documents and the stored response are parameters
    (pgbench -D variables, the very values the API sends for SHIPMENT), so PostgreSQL parses them per
    transaction as it does the API's. Returns the script and the -D variables."""
    doc = ShipmentCreate.model_validate(SHIPMENT).model_dump(mode="json")
    write = shipments.create("bench", doc)
    variables = {
        "fingerprint": idempotency.fingerprint("POST", "/v1/shipments", doc),
        "headers": orjson.dumps(write.response.headers).decode(),
        "body": write.response.body.decode(),
        "sender": orjson.dumps(doc["sender"]).decode(),
        "recipient": orjson.dumps(doc["recipient"]).decode(),
        "parcels": orjson.dumps(doc["parcels"]).decode(),
    }
    values = {
        "client": "'bench'",
        "key": "('k-' || :client_id || '-' || :n)",
        "ttl": "86400",
        "method": "'POST'",
        "path": "'/v1/shipments'",
        "fingerprint": ":fingerprint",
        "code": "201",
        "headers": ":headers::jsonb",
        "body": ":body",
        "id": "gen_random_uuid()",
        "service": "'express'",
        "reference": "NULL",
        "sender": ":sender::jsonb",
        "recipient": ":recipient::jsonb",
        "parcels": ":parcels::jsonb",
        "topic": "'shipment.created'",
        "now": "now()",
    }
    lines = ["\\set n random(1, 1000000000000)"]
    for sql in (idempotency._LOOKUP, idempotency._GATED.format(ctes=shipments.CREATE_CTES, pause="")):
        for name, literal in values.items():
            sql = sql.replace(f"%({name})s", literal)
        assert "%(" not in sql, sql
        lines.append(" ".join(sql.split()) + ";")
    return "\n".join(lines) + "\n", variables


def _children_cpu() -> float:
    """CPU seconds of this script's finished children (pgbench and wrk, once subprocess.run returns)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (all CPUs; /proc/stat, idle and iowait left out)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


Snapshot = tuple[float, float, float, float, float]


class CPUMeter:
    """CPU used by the API's processes, by PostgreSQL and by the load generator, per request; and how
    many CPUs everything else on the machine kept busy meanwhile (the other work a figure shared the
    machine with: the load average cannot tell, the benchmark's own 16 sessions count in it)."""

    def __init__(self, pg: Postgres, api_pid: int | None) -> None:
        self.pg_pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])
        self.api_pid = api_pid

    def snapshot(self) -> Snapshot:
        api = tree_cpu(self.api_pid) if self.api_pid else 0.0
        return (api, tree_cpu(self.pg_pid), _children_cpu(), _machine_cpu(), time.monotonic())

    @staticmethod
    def per_request(before: Snapshot, after: Snapshot, requests: float) -> dict[str, float]:
        used = [after[i] - before[i] for i in range(5)]
        figures = {
            name: round(1000 * used[i] / requests, 3)
            for i, name in enumerate(("api_cpu_ms", "pg_cpu_ms", "load_generator_cpu_ms"))
        }
        figures["other_work_cpus"] = round(max(0.0, used[3] - sum(used[:3])) / used[4], 2)
        return figures


def _wait_sessions_gone(url: str) -> None:
    """Until pgbench's backends have exited and been reaped: their CPU only then counts in the
    postmaster's (a snapshot taken as pgbench returns can miss most of it)."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.1)
    time.sleep(0.5)  # the postmaster reaps an exited backend right away; leave it a moment


def run_pgbench(pg: Postgres, seconds: int, clients: int, workdir: Path) -> tuple[float, int]:
    script = workdir / "create.sql"
    sql, variables = pgbench_script()
    script.write_text(sql)
    script.chmod(0o644)
    out = subprocess.run(
        [
            PG_BIN / "pgbench",
            "-n",
            "-M",
            "prepared",
            *(f"-D{name}={value}" for name, value in variables.items()),
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-f",
            script,
            "-h",
            "127.0.0.1",
            "-p",
            str(pg.port),
            "-U",
            pg.user,
            "bench",
        ],
        # the API's session settings (statement guard rails), so both run under the same ones
        env={**os.environ, "PGOPTIONS": db.OPTIONS},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    assert match and processed, out
    return float(match.group(1)), int(processed.group(1))


WRK_LUA = """
local counter = 0
local prefix = "%(prefix)s"
local cycle = %(cycle)d
local body = [[%(body)s]]
local tokens = {%(tokens)s}
local clients = {%(clients)s}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", tostring(threads) .. "-" .. tostring(os.time()))
end
request = function()
  counter = counter + 1
  local n = counter
  if cycle > 0 then n = counter %% cycle end
  local key
  if cycle > 0 then key = '"' .. prefix .. n .. '"' else key = '"' .. prefix .. tid .. "-" .. n .. '"' end
  local c = (n %% #tokens) + 1
  return wrk.format("POST", "/v1/shipments",
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = key,
     ["Authorization"] = "Bearer " .. tokens[c], ["X-Client-Id"] = clients[c]}, body)
end
"""


@dataclass(frozen=True)
class Caller:
    client_id: str
    token: str

    def headers(self) -> dict[str, str]:
        """The same headers as the wrk script's (see the module's docstring)."""
        return {"Authorization": f"Bearer {self.token}", "X-Client-Id": self.client_id}


def make_callers(env: dict[str, str]) -> list[Caller]:
    """API_CLIENTS clients, one key each, made by the code of `puente-api keys create`."""
    cfg = settings_mod.load(env)
    callers = []
    for i in range(API_CLIENTS):
        out = io.StringIO()
        key = keys_cli.create(cfg, f"bench-{i}", "api_bench.py", out)
        callers.append(Caller(key.client_id, out.getvalue().splitlines()[-1]))
    return callers


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str, seconds: int, clients: int, workdir: Path, prefix: str, cycle: int, callers: list[Caller]
) -> dict[str, float]:
    script = workdir / f"{prefix}.lua"
    script.write_text(
        WRK_LUA
        % {
            "prefix": prefix,
            "cycle": cycle,
            "body": json.dumps(SHIPMENT),
            "tokens": ", ".join(f'"{c.token}"' for c in callers),
            "clients": ", ".join(f'"{c.client_id}"' for c in callers),
        }
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", script, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "requests": total,
        "rps": rps,
        "p50_ms": _ms(lat["50"]),
        "p99_ms": _ms(lat["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


Side = dict[str, dict[str, float]]


def serve_and_measure(
    env: dict[str, str],
    args: argparse.Namespace,
    workdir: Path,
    pg: Postgres,
    callers: list[Caller],
    tag: str,
) -> Side:
    """One API server (env may point PYTHONPATH at another revision): the replay keys, a warm-up, then
    the create run and the replay run, with the CPU each request cost."""
    server = APIServer(env, workers=args.workers).start()
    try:
        with httpx.Client(base_url=server.base_url) as c:  # the keys the replay run reuses
            for i in range(REPLAY_KEYS):
                r = c.post(
                    "/v1/shipments",
                    json=SHIPMENT,
                    headers={"Idempotency-Key": f'"replay-{i}"', **callers[i % len(callers)].headers()},
                )
                assert r.status_code == 201, r.text
        # warm-up: every pooled session opened, its statements prepared, the keys cached
        warm = run_wrk(server.base_url, WARM_UP_SECONDS, args.clients, workdir, f"warm-{tag}-", 0, callers)
        assert warm["non_2xx"] == 0, warm
        assert server.proc is not None
        meter = CPUMeter(pg, server.proc.pid)
        before = meter.snapshot()
        create = run_wrk(server.base_url, args.seconds, args.clients, workdir, f"create-{tag}-", 0, callers)
        middle = meter.snapshot()
        replay = run_wrk(
            server.base_url, args.seconds, args.clients, workdir, "replay-", REPLAY_KEYS, callers
        )
        return {
            "create": create,
            "replay": replay,
            "create_cpu": CPUMeter.per_request(before, middle, create["requests"]),
            "replay_cpu": CPUMeter.per_request(middle, meter.snapshot(), replay["requests"]),
        }
    finally:
        server.stop()


def baseline_tree(rev: str, workdir: Path) -> Path:
    """The API package of git revision REV, unpacked (its api/src goes first on the server's PYTHONPATH)."""
    target = workdir / "baseline"
    target.mkdir()
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "api/src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", target], input=archive.stdout, check=True)
    return target / "api" / "src"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compare(rounds: list[dict[str, Side]]) -> dict[str, dict[str, float]]:
    """Per kind of request: each side's median throughput and API CPU, and what authentication costs
    (throughput lost, API CPU added), relative to the baseline."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("create", "replay"):
        rps = {s: _median([r[s][kind]["rps"] for r in rounds]) for s in ("auth", "baseline")}
        cpu = {s: _median([r[s][f"{kind}_cpu"]["api_cpu_ms"] for r in rounds]) for s in ("auth", "baseline")}
        out[kind] = {
            "auth_rps": round(rps["auth"], 1),
            "baseline_rps": round(rps["baseline"], 1),
            "throughput_cost": round(1 - rps["auth"] / rps["baseline"], 3),
            "auth_api_cpu_ms": round(cpu["auth"], 3),
            "baseline_api_cpu_ms": round(cpu["baseline"], 3),
            "api_cpu_added": round(cpu["auth"] / cpu["baseline"] - 1, 3),
        }
    return out


PGBACKREST_CONF = """[global]
repo1-path={work}/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-only-passphrase
repo1-bundle=y
compress-type=zst
process-max=1
archive-async=y
spool-path={work}/spool
log-path={work}/log
lock-path={work}/lock
log-level-file=off

[bench]
pg1-path={datadir}
pg1-socket-path={socket}
pg1-port={port}
pg1-user=puente
"""


def migrated_api_env(pg: Postgres, args: argparse.Namespace) -> dict[str, str]:
    """The API's settings for a fresh database "bench" on `pg`, its schema migrated."""
    env = {
        "PUENTE_SITE": "bench",
        "PUENTE_DATABASE_URL": pg.create_database("bench"),
        "PUENTE_BROKER_URL": f"amqp://guest@127.0.0.1:{free_port()}/%2F",  # not used by writes
        "PUENTE_LOG_LEVEL": "WARNING",
        # as many database sessions in all as pgbench has
        "PUENTE_DB_POOL_SIZE": str(-(-args.clients // args.workers)),
        "PUENTE_RATE_LIMIT_PER_SECOND": RATE_LIMIT_PER_SECOND,
        "PUENTE_RATE_LIMIT_BURST": RATE_LIMIT_PER_SECOND,
    }
    exe = Path(sys.executable).with_name("puente-api")
    subprocess.run([exe, "migrate"], env={**env, "PATH": "/usr/bin:/bin"}, check=True)
    return env


def archiving_settings(workdir: Path) -> dict[str, str]:
    """PostgreSQL settings of the archiving side: as role pgbackrest sets them through Patroni."""
    conf = workdir / "pgbackrest.conf"
    return {
        "archive_mode": "on",
        "archive_command": f"'pgbackrest --config={conf} --stanza=bench archive-push \"%p\"'",
        "archive_timeout": "60",
    }


def pgbackrest_stanza(pg: Postgres, workdir: Path) -> None:
    """The repository and the stanza of the archiving side (archive_command fails until they exist, and
    PostgreSQL retries: nothing is lost meanwhile). Owned by the server's OS user: it runs archive_command."""
    for sub in ("repo", "spool", "log", "lock"):
        (workdir / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(workdir / sub, "postgres", "postgres")
    conf = workdir / "pgbackrest.conf"
    conf.write_text(
        PGBACKREST_CONF.format(work=workdir, datadir=pg.datadir, socket=pg.datadir.parent, port=pg.port)
    )
    conf.chmod(0o644)
    demote = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*demote, "pgbackrest", f"--config={conf}", "--stanza=bench", "stanza-create"], check=True)
    subprocess.run([*demote, "pgbackrest", f"--config={conf}", "--stanza=bench", "check"], check=True)


def archive_cost(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """``--archive``: the create path served from an archiving and a non-archiving server, alternating."""
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    rounds: list[dict[str, Side]] = []
    with postgres(durable) as off, postgres({**durable, **archiving_settings(workdir)}) as on:
        pgbackrest_stanza(on, workdir)
        sides: dict[str, tuple[Postgres, dict[str, str], list[Caller]]] = {}
        for name, pg in (("off", off), ("on", on)):
            env = migrated_api_env(pg, args)
            sides[name] = (pg, env, make_callers(env))
        for n in range(args.rounds):
            order = ["off", "on"] if n % 2 == 0 else ["on", "off"]
            rounds.append(
                {
                    s: serve_and_measure(sides[s][1], args, workdir, sides[s][0], sides[s][2], f"{s}{n}")
                    for s in order
                }
            )
        archived = subprocess.run(
            [str(PG_BIN / "psql"), "-XAtq", "-h", str(on.datadir.parent), "-p", str(on.port), "-U", "puente",
             "-d", "postgres", "-c", "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
    p99 = {s: _median([r[s]["create"]["p99_ms"] for r in rounds]) for s in ("off", "on")}
    p50 = {s: _median([r[s]["create"]["p50_ms"] for r in rounds]) for s in ("off", "on")}
    rps = {s: _median([r[s]["create"]["rps"] for r in rounds]) for s in ("off", "on")}
    result: dict[str, object] = {
        "archive_rounds": len(rounds),
        "create_p99_ms": p99,
        "create_p50_ms": p50,
        "create_rps": {s: round(v, 1) for s, v in rps.items()},
        "p99_on_over_off": round(p99["on"] / p99["off"], 3),
        "segments_archived": int(archived[0]) if archived else None,
        "archive_failures": int(archived[1]) if len(archived) > 1 else None,
    }
    print(
        f"WAL archiving's cost on creates (medians of {len(rounds)} alternating rounds of {args.seconds} s):"
    )
    for s in ("off", "on"):
        print(f"  archiving {s:3s}: {rps[s]:8.1f} req/s   p50 {p50[s]:.2f} ms   p99 {p99[s]:.2f} ms")
    verdict = "within" if p99["on"] <= 1.1 * p99["off"] else "NOT within"
    print(
        f"  p99 on / off = {p99['on'] / p99['off']:.3f} ({verdict} the 10 % target); "
        f"segments archived {result['segments_archived']}, failures {result['archive_failures']}"
    )
    print(json.dumps(result))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="duration of each run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections (pgbench and wrk)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (default 1: on 2 CPUs shared with PostgreSQL and the load generator, "
        "a second worker adds contention, not CPU; docs/API.md)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also serve the load with the API of this git revision (e.g. the last one without "
        "authentication) and print what authentication costs relative to it",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="with --baseline: alternating rounds of both (default 2)"
    )
    parser.add_argument(
        "--archive",
        action="store_true",
        help="instead: creates served by an archiving (pgBackRest) and a non-archiving server, alternating",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print(
            "bench: wrk is missing (apt-get install wrk; scripts/bootstrap.sh installs it)", file=sys.stderr
        )
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="puente-bench-"))
    workdir.chmod(0o755)
    if args.archive:
        if not shutil.which("pgbackrest"):
            print("bench: pgbackrest is missing (apt-get install pgbackrest)", file=sys.stderr)
            return 1
        try:
            archive_cost(args, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    baseline_src = baseline_tree(args.baseline, workdir) if args.baseline else None
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    started = time.monotonic()
    with postgres(durable) as pg:
        env = migrated_api_env(pg, args)
        callers = make_callers(env)
        meter = CPUMeter(pg, None)
        before = meter.snapshot()
        ceiling, transactions = run_pgbench(pg, args.seconds, args.clients, workdir)
        _wait_sessions_gone(env["PUENTE_DATABASE_URL"])
        ceiling_cpu = CPUMeter.per_request(before, meter.snapshot(), transactions)
        rounds: list[dict[str, Side]] = []
        sides = {"auth": env}
        if baseline_src is not None:
            sides["baseline"] = {**env, "PYTHONPATH": str(baseline_src)}
        for n in range(args.rounds if baseline_src else 1):
            order = list(sides) if n % 2 == 0 else list(sides)[::-1]
            rounds.append(
                {s: serve_and_measure(sides[s], args, workdir, pg, callers, f"{s}{n}") for s in order}
            )
    shutil.rmtree(workdir, ignore_errors=True)
    last = rounds[-1]["auth"]
    create, replay = last["create"], last["replay"]
    create_cpu, replay_cpu = last["create_cpu"], last["replay_cpu"]
    result: dict[str, object] = {
        "pgbench_ceiling_tps": round(ceiling, 1),
        "create_rps": round(create["rps"], 1),
        "create_p50_ms": create["p50_ms"],
        "create_p99_ms": create["p99_ms"],
        "create_non_2xx": create["non_2xx"],
        "replay_rps": round(replay["rps"], 1),
        "replay_p50_ms": replay["p50_ms"],
        "replay_p99_ms": replay["p99_ms"],
        "replay_non_2xx": replay["non_2xx"],
        "create_over_ceiling": round(create["rps"] / ceiling, 2),
        "replay_over_create": round(replay["rps"] / create["rps"], 2),
        "seconds": round(time.monotonic() - started, 1),
        "cpu_ms_per_request": {"pgbench": ceiling_cpu, "create": create_cpu, "replay": replay_cpu},
        "load_average_1m": os.getloadavg()[0],
    }
    print(f"pgbench ceiling (what a create sends, prepared, {args.clients} sessions): {ceiling:10.1f} tx/s")
    print(
        f"API create  ({args.workers} worker(s), {args.clients} conns, {API_CLIENTS} keys): "
        f"{create['rps']:10.1f} req/s   "
        f"p50 {create['p50_ms']:.2f} ms   p99 {create['p99_ms']:.2f} ms   non-2xx {create['non_2xx']}"
    )
    print(
        f"API replay:                            {replay['rps']:10.1f} req/s   "
        f"p50 {replay['p50_ms']:.2f} ms   p99 {replay['p99_ms']:.2f} ms   non-2xx {replay['non_2xx']}"
    )
    ok1 = "meets" if create["rps"] / ceiling >= 0.5 else "MISSES"
    ok2 = "meets" if replay["rps"] / create["rps"] >= 2 else "MISSES"
    print(f"create / ceiling = {create['rps'] / ceiling:.2f}  ({ok1} the 0.5 target)")
    print(f"replay / create  = {replay['rps'] / create['rps']:.2f}  ({ok2} the 2.0 target)")
    for name, cpu in (("pgbench tx", ceiling_cpu), ("create", create_cpu), ("replay", replay_cpu)):
        print(
            f"CPU per {name:10s} (ms): API {cpu['api_cpu_ms']:.3f}  postgres {cpu['pg_cpu_ms']:.3f}  "
            f"load generator {cpu['load_generator_cpu_ms']:.3f}   "
            f"(other work meanwhile: {cpu['other_work_cpus']:.2f} CPUs busy)"
        )
    if baseline_src is not None:
        cost = compare(rounds)
        result["auth_cost"] = cost
        result["rounds"] = [
            {s: {k: side[k]["rps"] for k in ("create", "replay")} for s, side in r.items()} for r in rounds
        ]
        print(f"authentication's cost against {args.baseline} (medians of {len(rounds)} alternating rounds):")
        for kind, c in cost.items():
            print(
                f"  {kind:6s}: {c['auth_rps']:8.1f} vs {c['baseline_rps']:8.1f} req/s "
                f"(throughput {100 * c['throughput_cost']:+.1f} % lost), "
                f"API CPU {c['auth_api_cpu_ms']:.3f} vs {c['baseline_api_cpu_ms']:.3f} ms "
                f"({100 * c['api_cpu_added']:+.1f} %)"
            )
    print(
        f"machine: {os.cpu_count()} CPUs; load average (1 min) at the end {os.getloadavg()[0]:.1f}, "
        "the benchmark's own processes included"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
