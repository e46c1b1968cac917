"""Facts read from the database nodes: Patroni's view of the cluster and a read-only count of what the
drill's client left in the database. Each probe runs inside the node (``podman exec``), so it works
whatever the nodes' firewall allows the host and while the WAN is cut."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from puente.drill.report import HEALTHY_REPLICA_STATES, LEADER_ROLES
from puente.drill.topology import PATRONI_CA, PATRONI_PORT, DbMember
from puente.shell import CommandError, run

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _podman_env() -> dict[str, str]:
    from puente.lab import podman

    return podman.env()


def _exec(node: str, argv: Sequence[str], *, input_text: str | None = None, timeout: float = 15.0) -> str:
    proc = run(
        ["podman", "exec", "-i", node, *argv],
        env=_podman_env(),
        capture=True,
        quiet=True,
        input_text=input_text,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise CommandError(["podman", "exec", node, *argv], proc.returncode, proc.stdout or "")
    return proc.stdout or ""


def _json_tail(out: str) -> Any:
    """podman may print warnings ("failed to connect to syslog") before the program's output."""
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise ValueError(f"no JSON in: {out[-400:]!r}")


# Patroni's REST API is HTTPS, verified against the CA its node's certificate comes from (roles/postgresql).
_HTTP_GET = (
    "import json,ssl,sys,urllib.request,urllib.error\n"
    "ctx=ssl.create_default_context(cafile=sys.argv[2])\n"
    "try:\n"
    "    r=urllib.request.urlopen(sys.argv[1],timeout=2,context=ctx); code=r.status; body=r.read().decode()\n"
    "except urllib.error.HTTPError as e:\n"
    "    code=e.code; body=e.read().decode()\n"
    "print(json.dumps({'status':code,'body':body}))\n"
)


def http_get_inside(node: str, url: str) -> tuple[int, str]:
    out = _json_tail(_exec(node, ["python3", "-c", _HTTP_GET, url, PATRONI_CA]))
    return int(out["status"]), str(out["body"])


def patroni_cluster(members: Sequence[DbMember]) -> list[dict[str, Any]]:
    """GET /cluster from the first member that answers; its ``members`` list (name, role, state, lag)."""
    problems = []
    for m in members:
        try:
            status, body = http_get_inside(m.name, f"https://{m.ip}:{PATRONI_PORT}/cluster")
            if status == 200:
                return list(json.loads(body).get("members", []))
            problems.append(f"{m.name}: HTTP {status}")
        except (CommandError, ValueError, KeyError, OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{m.name}: {(str(exc).splitlines() or [type(exc).__name__])[0]}")
    raise CommandError(["patroni", "GET /cluster"], 1, "; ".join(problems))


def _is_primary(m: DbMember) -> bool:
    try:
        status, _ = http_get_inside(m.name, f"https://{m.ip}:{PATRONI_PORT}/primary")
    except (CommandError, ValueError, OSError, subprocess.TimeoutExpired):
        return False
    return status == 200


def patroni_config(members: Sequence[DbMember]) -> dict[str, Any] | None:
    """Patroni's dynamic configuration (GET /config) from the first member that answers, None if none."""
    for m in members:
        try:
            status, body = http_get_inside(m.name, f"https://{m.ip}:{PATRONI_PORT}/config")
            if status == 200:
                return dict(json.loads(body))
        except (CommandError, ValueError, OSError, subprocess.TimeoutExpired):
            continue
    return None


def patroni_ttl(members: Sequence[DbMember]) -> int | None:
    """The leader key's TTL from Patroni's dynamic configuration, None if unknown."""
    config = patroni_config(members)
    return None if config is None else int(config.get("ttl", 30))


def handover_plan(
    view: Sequence[dict[str, Any]], site_of: dict[str, str], site: str, synchronous_mode: bool
) -> tuple[str | None, str]:
    """(leader, member to switch over to) to bring the leader to ``site``; (None, "") when it is there.

    With synchronous_mode Patroni accepts a switchover only to the synchronous standby (anything else
    is HTTP 412, "candidate name does not match with sync_standby"), so the candidate is that member and
    it must be on ``site``. Raises ValueError, saying why, when there is no leader or no such member."""
    leader = next((str(m["name"]) for m in view if m.get("role") in LEADER_ROLES), None)
    if leader is None:
        raise ValueError("no Patroni leader: the database cluster is not settled")
    if site_of.get(leader) == site:
        return None, ""
    healthy = [m for m in view if m.get("state") in HEALTHY_REPLICA_STATES and m.get("name") != leader]
    if synchronous_mode:
        sync = [str(m["name"]) for m in healthy if m.get("role") == "sync_standby"]
        here = [n for n in sync if site_of.get(n) == site]
        if not here:
            raise ValueError(
                f"Patroni switches over only to the synchronous standby, and none on the {site} site is "
                f"(synchronous standby now: {', '.join(sync) or 'none'})"
            )
        return leader, here[0]
    here = [str(m["name"]) for m in healthy if site_of.get(str(m["name"])) == site]
    if not here:
        raise ValueError(f"no healthy replica on the {site} site to hand the leader to")
    return leader, here[0]


def primaries(members: Sequence[DbMember]) -> list[str]:
    """Members whose Patroni answers 200 on /primary right now (the check HAProxy routes writes by),
    all asked at once so one round is one moment."""
    if not members:
        return []
    with ThreadPoolExecutor(max_workers=len(members)) as pool:
        answers = list(pool.map(_is_primary, members))
    return [m.name for m, yes in zip(members, answers, strict=True) if yes]


class PrimarySampler:
    """Samples /primary on every member about once a second in the background: the most members seen
    answering "I am the primary" in one round is the split-brain figure (must stay <= 1)."""

    def __init__(self, members: Sequence[DbMember], interval: float = 1.0) -> None:
        self.members = list(members)
        self.interval = interval
        self.rounds: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-primary-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.rounds.append((time.monotonic(), primaries(self.members)))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(30)
        return max((len(p) for _, p in self.rounds), default=None)


def has_sync_standby(view: Sequence[dict[str, Any]]) -> bool:
    return any(m.get("role") == "sync_standby" and m.get("state") in HEALTHY_REPLICA_STATES for m in view)


def _in_place(m: dict[str, Any]) -> bool:
    """The leader, or a replica streaming (Patroni 3.0 says ``running``)."""
    return m.get("role") in LEADER_ROLES or (
        m.get("state") in HEALTHY_REPLICA_STATES and m.get("role") in ("replica", "sync_standby")
    )


def unsettled(view: Sequence[dict[str, Any]], members: Sequence[DbMember]) -> list[str]:
    """The members that are neither the leader nor a healthy replica in ``view``, missing ones included."""
    seen = {str(m.get("name")): m for m in view}
    return [m.name for m in members if m.name not in seen or not _in_place(seen[m.name])]


# Left out of a member's journal tail: PostgreSQL's per-connection lines, Patroni's etcd retries and its
# heartbeat chatter, which are thousands of lines during a drill and say nothing about a member's state.
_LOG_NOISE = (
    "connection received:",
    "connection authenticated:",
    "connection authorized:",
    "disconnection:",
    "could not receive data from client",
    "terminating connection due to administrator command",
    "the database system is starting up",
    "the database system is shutting down",
    "rejecting connections",
    "accepting connections",
    " - no response",  # pg_isready while PostgreSQL starts
    "Lock owner:",
    "no action. I am",
    "establishing a new patroni",
    "Request to server",
    "Reconnection allowed",
    "Retrying on",
    "Failed to get list of machines",
    "watchprefix failed",
    "Loop time exceeded",
    "Exception happened during processing of request",
    "Traceback (most recent call last)",
)


def journal_tail(node: str, lines: int = 40) -> list[str]:
    """The last ``lines`` lines of Patroni's journal on ``node`` (PostgreSQL logs there too) that say what
    the member did: why it is not back after a drill. Traceback bodies and the chatter above left out."""
    argv = ["journalctl", "--unit", "patroni", "--no-pager", "--output", "cat", "--lines", "5000"]
    return telling_lines(_exec(node, argv, timeout=30), lines)


# A journal line's stamp: Patroni's "2026-12-06 20:10:05,423 " or PostgreSQL's "2026-12-06 20:10:05.435 UTC
# [12309] ", left out when telling repeated messages apart.
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d+ (?:UTC )?(?:\[\d+\] )?")


def telling_lines(journal: str, lines: int) -> list[str]:
    """The last ``lines`` lines of ``journal`` (``--output cat``) without the noise and traceback bodies; a
    message repeated (a standby's "not yet accepting connections" every few ms) is kept once, where it
    last occurred."""
    kept = [
        line.rstrip()
        for line in journal.splitlines()
        if line.strip() and not line[0].isspace() and not any(n in line for n in _LOG_NOISE)
    ]
    seen: set[str] = set()
    once: list[str] = []
    for line in reversed(kept):
        message = _STAMP.sub("", line)
        if message not in seen:
            seen.add(message)
            once.append(line)
    return once[::-1][-lines:]


def diagnose(
    view: Sequence[dict[str, Any]], members: Sequence[DbMember], lines: int = 40
) -> dict[str, list[str]]:
    """For each member not in place in ``view``, its journal tail (or why it could not be read)."""
    found: dict[str, list[str]] = {}
    for name in unsettled(view, members):
        try:
            found[name] = journal_tail(name, lines)
        except (CommandError, subprocess.TimeoutExpired) as exc:
            found[name] = [f"journal unreadable: {(str(exc).splitlines() or [type(exc).__name__])[0]}"]
    return found


def wait_settled(
    members: Sequence[DbMember], timeout: float, expect_all: bool = True, need_sync: bool = False
) -> list[dict[str, Any]]:
    """Poll /cluster until exactly one leader, (``expect_all``) every member a streaming replica or the
    leader, and (``need_sync``) one of them the synchronous standby; return the last view (the caller
    judges it)."""
    end = time.monotonic() + timeout
    last: list[dict[str, Any]] = []
    while True:
        try:
            last = patroni_cluster(members)
        except CommandError:
            last = []
        leaders = [m for m in last if m.get("role") in LEADER_ROLES]
        healthy = all(_in_place(m) for m in last)
        settled = len(leaders) == 1 and ((healthy and len(last) == len(members)) or not expect_all)
        if settled and (has_sync_standby(last) or not need_sync):
            return last
        if time.monotonic() >= end:
            return last
        time.sleep(1.0)


_FACTS_SQL = """
BEGIN READ ONLY;
SELECT json_build_object(
  'shipments', (SELECT count(*) FROM shipments WHERE client_id = '{client}'),
  'references_with_many', (SELECT coalesce(json_object_agg(reference, n), '{{}}') FROM (
      SELECT reference, count(*) AS n FROM shipments WHERE client_id = '{client}'
      GROUP BY reference HAVING count(*) > 1) d),
  'labels', (SELECT count(*) FROM labels l JOIN shipments s ON s.id = l.shipment_id
             WHERE s.client_id = '{client}'),
  'shipments_with_many_labels', (SELECT coalesce(json_object_agg(shipment_id, n), '{{}}') FROM (
      SELECT l.shipment_id, count(*) AS n FROM labels l JOIN shipments s ON s.id = l.shipment_id
      WHERE s.client_id = '{client}' GROUP BY l.shipment_id HAVING count(*) > 1) d),
  'labels_pending', (SELECT count(*) FROM shipments WHERE client_id = '{client}'
                     AND label_status = 'pending')
);
COMMIT;
"""


def db_facts(leader: str, db_name: str, client_id: str) -> dict[str, Any]:
    """Read-only query on the leader, as the postgres OS user over the local socket (peer auth)."""
    if not _CLIENT_ID.match(client_id) or not re.match(r"^[a-z_][a-z0-9_]*$", db_name):
        raise ValueError(f"refusing to build a query from {client_id!r} / {db_name!r}")
    sql = _FACTS_SQL.format(client=client_id)
    out = _exec(
        leader,
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db_name],
        input_text=sql,
    )
    return dict(_json_tail(out))


def wait_labels(leader: str, db_name: str, client_id: str, timeout: float) -> dict[str, Any]:
    """Let the outbox -> queue -> worker path drain: poll until no label of the drill is pending."""
    end = time.monotonic() + timeout
    while True:
        facts = db_facts(leader, db_name, client_id)
        if facts.get("labels_pending", 0) == 0 or time.monotonic() >= end:
            return facts
        time.sleep(2.0)


_DLQ = (
    "import boto3,json,sys\n"
    "c=boto3.client('sqs',endpoint_url=sys.argv[1],region_name=sys.argv[2],"
    "aws_access_key_id='lab',aws_secret_access_key='lab')\n"
    "u=c.get_queue_url(QueueName=sys.argv[3])['QueueUrl']\n"
    "a=c.get_queue_attributes(QueueUrl=u,AttributeNames=['ApproximateNumberOfMessages'])['Attributes']\n"
    "print(json.dumps({'messages':int(a['ApproximateNumberOfMessages'])}))\n"
)


def sqs_dead_lettered(node: str, python: str, endpoint: str, region: str, dlq_name: str) -> int:
    """Messages in the cloud site's dead-letter queue (moto), read with the node's own boto3."""
    return int(_json_tail(_exec(node, [python, "-c", _DLQ, endpoint, region, dlq_name]))["messages"])
