"""``puente drill restore``: point-in-time recovery from the pgBackRest repositories into a fresh node.

Default (to a time): load through the API; note T; more load; snapshot the drill's rows on the leader;
delete them (the destructive step, after T); make sure the WAL past T is archived (``pgbackrest check``);
make a fresh lab node, install PostgreSQL and pgBackRest, ``pgbackrest restore --type=time --target=T``,
start it, and compare: every shipment acknowledged before T there with the same content, none written
after T. ``--latest``: load; at L freeze every database member at once (``podman pause``: all hosts lost);
restore the newest archived state; the acknowledged writes missing are the RPO; the members are unfrozen.
Nothing of the running cluster is restored into or reconfigured. The commands are docs/RESTORE.md's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from puente.drill import cluster, preflight, restore_check, restore_html, restore_node, topology
from puente.drill.attempts import Attempt, AttemptLog, dump_jsonl
from puente.drill.client import Load, LoadShape
from puente.drill.scenarios import DrillOptions, _client, say
from puente.lab import inventory, podman
from puente.shell import CommandError

SEED_CLIENT = "restore-drill-seed"
RESULT_FILE = "/var/lib/pgbackrest/last-restore-drill.json"
"""Role pgbackrest's pgbackrest_drill_result_file: its metrics and the audit read it."""
# docs/RESTORE.md step 3 on the drill's damage (its shipments deleted, their labels and events with them by
# ON DELETE CASCADE): each table put back from the restored copy, the referenced table first.
_DRILL_SHIPMENTS = "SELECT id FROM shipments WHERE client_id = '{client}'"
PUT_BACK = (
    ("shipments", "client_id = '{client}'"),
    ("labels", f"shipment_id IN ({_DRILL_SHIPMENTS})"),
    ("shipment_events", f"shipment_id IN ({_DRILL_SHIPMENTS})"),
)


@dataclass
class RestoreOptions:
    latest: bool = False
    after_t: float = 5.0
    seed: int = 0
    """Synthetic shipments added (and a full backup taken) before the drill: the size figure's database."""
    repo: int | None = None
    compare_plain: bool = False
    keep_node: bool = False
    max_lost_seconds: float = 60.0
    drill: DrillOptions = field(
        default_factory=lambda: DrillOptions(warmup=10.0, shape=LoadShape(workers=4, write_ratio=0.7))
    )
    """The load (its warmup is the load before T), the target and the output, as every drill has them."""


def _leader(topo: topology.Topology) -> str:
    members = cluster.patroni_cluster(topo.db_members)
    leaders = [m["name"] for m in members if m.get("role") in ("leader", "master", "primary")]
    if len(leaders) != 1:
        raise preflight.PreflightError([f"expected one Patroni leader, found {leaders or 'none'}"])
    return str(leaders[0])


def _pgbackrest(member: str, args: str, timeout: float = 1800.0) -> str:
    return restore_node.as_postgres(
        member, f"pgbackrest --stanza={restore_node.STANZA} {args}", timeout=timeout
    )


def _backups(member: str) -> list[dict[str, Any]]:
    info = json.loads(_pgbackrest(member, "--output=json --log-level-file=off info").strip().splitlines()[-1])
    return list(info[0].get("backup") or []) if info else []


def _seed(leader: str, db: str, count: int, repo: int | None) -> dict[str, Any]:
    """``count`` synthetic shipments of a client of their own, then a full backup of every repository."""
    say(f"seeding {count} shipments (client {SEED_CLIENT}) and taking a full backup")
    restore_node.psql(
        leader,
        db,
        "INSERT INTO shipments (id, client_id, service, reference, sender, recipient, parcels) "
        f"SELECT gen_random_uuid(), '{SEED_CLIENT}', 'standard', 'seed-' || g, "
        """'{"name":"Seed","street":"1 Bulk Way","city":"Lab","postal_code":"1000","country":"ES"}', """
        """'{"name":"Seed","street":"2 Bulk Road","city":"Lab","postal_code":"2000","country":"PT"}', """
        """'[{"weight_grams":1200,"length_cm":30,"width_cm":20,"height_cm":10}]' """
        f"FROM generate_series(1, {int(count)}) g",
    )
    total = int(restore_node.psql(leader, db, "SELECT count(*) FROM shipments").strip().splitlines()[-1])
    start = time.monotonic()
    _pgbackrest(leader, f"--type=full --repo={repo or 1} backup")
    return {
        "seeded": count,
        "shipments_in_database": total,
        "full_backup_seconds": round(time.monotonic() - start, 1),
    }


def _record(topo: topology.Topology, passed: bool, mode: str, report_path: Path) -> None:
    """The drill's result on every member (read by role pgbackrest's metrics and by the audit)."""
    now = time.time()
    for m in topo.db_members:
        try:
            previous = json.loads(restore_node.sh(m.name, f"cat {RESULT_FILE} 2>/dev/null || echo '{{}}'"))
        except (ValueError, CommandError):
            previous = {}
        record = {
            "finished_at": round(now, 3),
            "passed": passed,
            "mode": mode,
            "last_success_at": round(now, 3) if passed else previous.get("last_success_at"),
            "report": str(report_path),
        }
        restore_node.sh(
            m.name,
            f"install -o postgres -g postgres -m 0644 /dev/stdin {RESULT_FILE}",
            input_text=json.dumps(record) + "\n",
        )


def run(opts: RestoreOptions) -> dict[str, Any]:
    topo = topology.load(opts.drill.inventory)
    mode = "latest" if opts.latest else "time"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = opts.drill.out_dir / f"{stamp}-restore-{mode}"
    problems = preflight.require_tools(["podman"]) + preflight.check_lab(
        topo, (topology.PRIMARY_SITE, topology.SECONDARY_SITE), [m.name for m in topo.db_members]
    )
    address = str(inventory.shared_vars().get("restore_drill_node_address") or "")
    if not address:
        problems.append("the lab inventory sets no restore_drill_node_address (group_vars/lab/overrides.yml)")
    if problems:
        raise preflight.PreflightError(problems)
    leader = _leader(topo)
    if not _backups(leader):
        raise preflight.PreflightError([f"no pgBackRest backup on {leader}: converge playbooks/backup.yml"])
    target = restore_node.plan(address)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"scenario": f"restore-{mode}", "leader": leader, "restore_node": target.name}
    if opts.seed:
        result["seed"] = _seed(leader, topo.db_name, opts.seed, opts.repo)

    # the node is made, given its packages and pgBackRest's configuration before the load: that is not
    # restore time, and in --latest it keeps the members frozen no longer than the restore itself
    say(f"fresh node {target.name} ({target.address}) from the lab image")
    paused: list[str] = []
    try:
        figures: dict[str, Any] = {"node_seconds": round(restore_node.create(target), 1)}
        figures["install_seconds"] = round(restore_node.install(target), 1)
        restore_node.copy_config(target, leader)
        cut = _load_and_cut(topo, opts, paused)
        t_mono, t_unix = cut.t_mono, cut.t_unix
        exp = restore_check.expectation(cut.attempts, t_mono)
        sql = restore_check.DIGEST_SQL.format(client=cut.client_id)
        snapshot: dict[str, restore_check.Row] = {}
        if not opts.latest:
            snapshot = restore_check.parse_rows(restore_node.psql(leader, topo.db_name, sql))
            deleted = restore_node.psql(
                leader,
                topo.db_name,
                f"WITH d AS (DELETE FROM shipments WHERE client_id = '{cut.client_id}' "
                "RETURNING 1) SELECT count(*) FROM d",
            )
            say(f"destructive step after T: deleted {deleted.strip()} shipments of the drill's client")
            result["deleted"] = int(deleted.strip().splitlines()[-1])
            # switches the WAL segment holding the damage and waits until every repository has it
            _pgbackrest(leader, "check")
        figures.update(_restore(target, opts, None if opts.latest else _iso(t_unix)))
        restored = restore_check.parse_rows(restore_node.psql(target.name, topo.db_name, sql))
        if not opts.latest:
            result["runbook"] = _runbook_steps(target, topo, leader, cut.client_id, restored, t_unix)
        if opts.compare_plain:
            figures["plain"] = _plain_restore(target, opts, leader, t_unix)
    finally:
        if paused:
            say("the members come back: podman unpause " + " ".join(paused))
            podman.podman("unpause", *paused)
        if not opts.keep_node:
            restore_node.remove(target)
    verdict = restore_check.judge(exp, snapshot, restored, None if opts.latest else t_unix)
    result.update(_analyse(opts, verdict, exp, figures, t_mono, t_unix))
    if "runbook" in result:
        steps = result["runbook"]
        result["checks"] += [
            {
                "name": "tables_put_back_next_to_the_running_cluster",
                # every restored row went back (the damage deleted them all), shipments first
                "ok": steps["table_rows_put_back"] == len(restored)
                and all(t["put_back"] == t["restored"] for t in steps["tables"].values())
                and steps["table_rows_differing_after"] == 0,
                "detail": "; ".join(
                    f"{name}: {t['put_back']} of {t['restored']} restored rows put back"
                    for name, t in steps["tables"].items()
                )
                + f"; {steps['table_rows_differing_after']} shipments differ on the leader afterwards",
            },
            {
                "name": "member_rebuilt_from_the_repository",
                "ok": True,
                "detail": f"a standby restored with --type=standby replayed up to the leader's archived WAL "
                f"in {steps['standby_rebuilt_seconds']} s",
            },
        ]
        result["passed"] = all(c["ok"] for c in result["checks"])
    result["client_id"] = cut.client_id
    if paused:
        result["cluster_after"] = cluster.wait_settled(topo.db_members, 120.0, need_sync=False)
    dump_jsonl(cut.attempts, out / "attempts.jsonl")
    report = out / "report.json"
    report.write_text(json.dumps(result, indent=2, default=str))
    result["html"] = str(restore_html.write(out, result))
    _record(topo, bool(result["passed"]), mode, report)
    result["output_dir"] = str(out)
    return result


@dataclass(frozen=True)
class Cut:
    attempts: list[Attempt]
    t_mono: float
    """T (or the loss) on the client's monotonic clock, which the attempts use."""
    t_unix: float
    client_id: str


def _load_and_cut(topo: topology.Topology, opts: RestoreOptions, paused: list[str]) -> Cut:
    """Load through the API; T (a time) or the loss of every member (``paused`` is filled before the
    freeze, so the caller always unfreezes); then the load stops."""
    log = AttemptLog()
    client = _client(topo, opts.drill, log)
    clock = client.clock
    load = Load(client, opts.drill.shape)
    say(f"load for {opts.drill.warmup:g} s (client {client.config.client_id})")
    load.start()
    try:
        time.sleep(opts.drill.warmup)
        if opts.latest:
            paused += [m.name for m in topo.db_members]
            say("every database member lost at once: podman pause " + " ".join(paused))
            podman.podman("pause", *paused)
            t_mono, t_unix = clock(), time.time()
            time.sleep(2.0)
        else:
            t_mono, t_unix = clock(), time.time()
            say(f"T = {_iso(t_unix)}; {opts.after_t:g} s more load, then the destructive step")
            time.sleep(opts.after_t)
    finally:
        load.stop(timeout=30.0 if opts.latest else 90.0)
    client.close()
    return Cut(log.snapshot(), t_mono, t_unix, client.config.client_id)


def _iso(t_unix: float) -> str:
    return datetime.fromtimestamp(t_unix, UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _restore(target: restore_node.RestoreNode, opts: RestoreOptions, to: str | None) -> dict[str, Any]:
    data_dir = f"/var/lib/postgresql/15/{restore_node.STANZA}"
    say(f"restore to {to or 'the newest archived state'}")
    restored_in = restore_node.restore(target, target=to, repo=opts.repo)
    recovered_in = restore_node.start_and_wait(target, data_dir)
    size = restore_node.data_size(target, data_dir)
    replay = restore_node.psql(
        target.name,
        "postgres",
        "SELECT coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '')",
    )
    log = restore_node.parse_log(restore_node.recovery_log(target))
    return {
        "restore_seconds": round(restored_in, 2),
        "recovery_seconds": round(recovered_in, 2),
        "size_bytes": size,
        "last_replayed_commit_unix": float(replay.strip()) if replay.strip() else None,
        "recovery_log": log,
        "wal_replayed_bytes": restore_check.wal_bytes(log["redo_start"], log["redo_done"]),
    }


def _runbook_steps(
    target: restore_node.RestoreNode,
    topo: topology.Topology,
    leader: str,
    client_id: str,
    restored: dict[str, restore_check.Row],
    t_unix: float,
) -> dict[str, Any]:
    """docs/RESTORE.md steps 3 and 4 on the drill's rows and node: the deleted rows put back into the running
    database from the restored one, table by table (PUT_BACK; then read back: every restored shipment there
    with its restored content), and the node rebuilt from the repository as a standby that replays up to
    the leader's archived WAL."""
    tables: dict[str, dict[str, int]] = {}
    for table, where in PUT_BACK:
        matching, put = restore_node.copy_table_back(
            target, leader, topo.db_name, table, where.format(client=client_id)
        )
        tables[table] = {"restored": matching, "put_back": put}
        say(f"table {table} next to the running cluster: {put} of {matching} restored rows put back")
    sql = restore_check.DIGEST_SQL.format(client=client_id)
    now = restore_check.parse_rows(restore_node.psql(leader, topo.db_name, sql))
    differ = sorted(i for i, row in restored.items() if now.get(i, row).digest != row.digest or i not in now)
    say(f"{len(differ)} restored shipments differ on the leader afterwards")
    standby_s = restore_node.rebuild_as_standby(
        target, f"/var/lib/postgresql/15/{restore_node.STANZA}", leader
    )
    say(f"a member rebuilt from the repository as a standby in {standby_s:.1f} s")
    return {
        "tables": tables,
        "table_rows_put_back": tables["shipments"]["put_back"],
        "table_rows_differing_after": len(differ),
        "standby_rebuilt_seconds": round(standby_s, 1),
    }


def _plain_restore(
    target: restore_node.RestoreNode, opts: RestoreOptions, leader: str, t_unix: float
) -> dict[str, Any]:
    """The backup the drill restored from (the newest that ended before T in the repository read), restored
    plainly (to its own consistency point, no WAL beyond): the baseline MB/s."""
    repo = opts.repo or 1
    done = [
        b for b in _backups(leader) if b["database"]["repo-key"] == repo and b["timestamp"]["stop"] < t_unix
    ]
    label = max(done, key=lambda b: b["timestamp"]["stop"])["label"]
    data_dir = f"/var/lib/postgresql/15/{restore_node.STANZA}"
    restore_node.stop(target, data_dir)
    seconds = restore_node.restore(target, target=None, repo=repo, backup_set=label)
    size = restore_node.data_size(target, data_dir)
    return {
        "backup": label,
        "restore_seconds": round(seconds, 2),
        "size_bytes": size,
        "mb_per_s": _rate(size, seconds),
    }


def _rate(size: int, seconds: float) -> float | None:
    return round(size / 1e6 / seconds, 1) if seconds > 0 else None


def _analyse(
    opts: RestoreOptions,
    verdict: restore_check.Verdict,
    exp: restore_check.Expectation,
    figures: dict[str, Any],
    t_mono: float,
    t_unix: float,
) -> dict[str, Any]:
    total = figures["restore_seconds"] + figures["recovery_seconds"]
    replayed = figures.get("last_replayed_commit_unix")
    checks: list[dict[str, Any]] = [
        {
            "name": "acknowledged_writes_restored",
            "ok": not verdict.missing,
            "detail": f"{len(verdict.missing)} of {verdict.acknowledged_before_t} acknowledged "
            f"{'before the loss' if opts.latest else 'before T'} missing",
        },
        {
            "name": "restored_content_unchanged",
            "ok": not verdict.changed,
            "detail": f"{len(verdict.changed)} restored shipments differ from what was written",
        },
    ]
    out: dict[str, Any] = {
        "mode": "latest" if opts.latest else "time",
        ("loss_at" if opts.latest else "target_time"): _iso(t_unix),
        "rows": verdict.as_dict(),
        "figures": {
            **figures,
            "restore_and_recovery_seconds": round(total, 2),
            "mb_per_s": _rate(figures["size_bytes"], total),
            # > 0: the restored state ends this long before T (the last commit before it); < 0: after it
            "recovery_point_before_target_seconds": round(t_unix - replayed, 3) if replayed else None,
        },
    }
    if opts.latest:
        window = restore_check.lost_window(exp, verdict.missing, t_mono)
        out["figures"]["lost_window_seconds"] = window
        checks[0]["ok"] = window <= opts.max_lost_seconds
        checks[0]["detail"] += (
            f"; they span {window:g} s before the loss (allowed {opts.max_lost_seconds:g} s)"
        )
    else:
        checks.append(
            {
                "name": "nothing_after_t_restored",
                "ok": not verdict.present_after_t,
                "detail": f"{len(verdict.present_after_t)} of {verdict.written_after_t} shipments written "
                "after T are in the restored database",
            }
        )
    out["checks"] = checks
    out["passed"] = all(c["ok"] for c in checks)
    return out
