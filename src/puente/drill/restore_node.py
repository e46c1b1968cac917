"""The restore drill's fresh node and the commands run in it — the runbook's (docs/RESTORE.md) steps.

The node is a lab node like the others (same image, same podman settings), on a site network at the
address the lab inventory reserves for it (``restore_drill_node_address``), in no inventory group: nothing
of the running cluster knows it, and it is removed after the drill. Every command is printed as run.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from dataclasses import dataclass

from puente.lab import image, inventory, nodes, paths, podman
from puente.shell import CommandError, run

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_LOG = "/var/lib/postgresql/restore-drill.log"
PGBACKREST_CONF_DIR = "/etc/pgbackrest"
PUT_BACK = "/usr/local/sbin/pgbackrest-put-back"  # role pgbackrest's, on every member
STANZA = "puente"
# Patroni's postgresql.conf names the member's address, its TLS files and its synchronous standby, none of
# which exists on the restore node: the restored server listens on its socket only, without TLS or a
# standby to wait for, and never archives into the production repositories.
START_OPTIONS = (
    "-c listen_addresses='' -c ssl=off -c synchronous_standby_names='' -c archive_mode=off "
    "-c unix_socket_directories=/var/run/postgresql"
)


def sh(node: str, script: str, *, timeout: float = 600.0, input_text: str | None = None) -> str:
    """``podman exec NODE sh -c SCRIPT`` (printed), its output; raises on failure."""
    proc = run(
        ["podman", "exec", "-i", node, "sh", "-c", script],
        env=podman.env(),
        capture=True,
        timeout=timeout,
        input_text=input_text,
        check=False,
    )
    if proc.returncode != 0:
        raise CommandError(["podman", "exec", node, "sh", "-c", script], proc.returncode, proc.stdout or "")
    return proc.stdout or ""


def as_postgres(node: str, command: str, *, timeout: float = 600.0) -> str:
    return sh(node, f"runuser -u postgres -- {command}", timeout=timeout)


def psql(node: str, db: str, sql: str) -> str:
    """Rows as ``a|b|c`` lines (psql -At), over the node's socket as postgres."""
    out = as_postgres(node, f"psql -XAtq -v ON_ERROR_STOP=1 -d {shlex.quote(db)} -c {shlex.quote(sql)}")
    return "\n".join(
        line for line in out.splitlines() if not line.startswith("time=") and "syslog" not in line
    )


@dataclass(frozen=True)
class RestoreNode:
    name: str
    address: str
    network: str


def plan(address: str, name: str = "puente-restore1") -> RestoreNode:
    """The node on the site network holding ``address`` (the lab inventory's site subnets)."""
    lab = inventory.load()
    ip = ipaddress.IPv4Address(address)
    for site in lab.sites.values():
        if ip in site.subnet:
            if any(n.ip == ip for n in lab.nodes.values()):
                raise CommandError(["restore-node"], 2, f"{address} belongs to a lab node already")
            return RestoreNode(name, address, site.network)
    raise CommandError(["restore-node"], 2, f"{address} is in no lab site's subnet")


def create(node: RestoreNode) -> float:
    """A fresh node from the lab image (an old one of the same name is removed first); seconds spent."""
    start = time.monotonic()
    lab = inventory.load()
    site = next(s for s in lab.sites.values() if s.network == node.network)
    spec = inventory.Node(node.name, site, ipaddress.IPv4Address(node.address))
    tag = image.tag()
    if podman.exists("container", node.name):
        podman.remove(node.name)
    podman.podman("run", "--label", f"{paths.LABEL}.role=restore-drill", *nodes.run_args(spec, tag))
    # systemd up (its units, apt's pool hook at boot) before anything runs in it
    for _ in range(120):
        state = run(
            ["podman", "exec", node.name, "systemctl", "is-system-running"],
            env=podman.env(),
            capture=True,
            quiet=True,
            check=False,
        ).stdout
        if state and state.strip().splitlines()[-1] in ("running", "degraded"):
            break
        time.sleep(0.5)
    return time.monotonic() - start


def remove(node: RestoreNode) -> None:
    if podman.exists("container", node.name):
        podman.remove(node.name)


def install(node: RestoreNode) -> float:
    """PostgreSQL 15 (no default cluster, as role postgresql does) and pgBackRest; seconds spent."""
    start = time.monotonic()
    sh(
        node.name,
        "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; "
        "apt-get install -y -qq postgresql-common >/dev/null; "
        "sed -i 's/^#*\\s*create_main_cluster.*/create_main_cluster = false/' "
        "/etc/postgresql-common/createcluster.conf; "
        "apt-get install -y -qq postgresql-15 pgbackrest >/dev/null",
        timeout=900,
    )
    return time.monotonic() - start


def copy_config(node: RestoreNode, member: str) -> None:
    """pgBackRest's configuration (repositories, keys, passphrases) and the repositories' CA files, from a
    member: what an operator copies from the vault-backed inventory (or converges with role pgbackrest)."""
    listing = sh(member, f"ls {PGBACKREST_CONF_DIR}")
    for name in sorted(n for n in listing.split() if re.fullmatch(r"pgbackrest\.conf|repo\d+-ca\.crt", n)):
        text = sh(member, f"cat {PGBACKREST_CONF_DIR}/{name}")
        mode = "0640" if name.endswith(".conf") else "0644"
        sh(
            node.name,
            f"set -e; install -d -o root -g postgres -m 0750 {PGBACKREST_CONF_DIR}; "
            f"cat > {PGBACKREST_CONF_DIR}/{name}; chown root:postgres {PGBACKREST_CONF_DIR}/{name}; "
            f"chmod {mode} {PGBACKREST_CONF_DIR}/{name}",
            input_text=text,
        )


def restore(
    node: RestoreNode, *, target: str | None, repo: int | None, backup_set: str | None = None
) -> float:
    """``pgbackrest restore`` into the (empty) data directory; seconds spent. ``target``: a time (type=time,
    promote when reached); None: the newest state in the archive (type=default)."""
    args = [f"--stanza={STANZA}", "--archive-mode=off", "--log-level-console=info"]
    if repo:
        args.append(f"--repo={repo}")
    if backup_set:
        args += [f"--set={backup_set}", "--type=immediate", "--target-action=promote"]
    elif target:
        args += ["--type=time", f"--target={target}", "--target-action=promote"]
    start = time.monotonic()
    as_postgres(node.name, "pgbackrest " + " ".join(shlex.quote(a) for a in args) + " restore", timeout=1800)
    return time.monotonic() - start


def start_and_wait(node: RestoreNode, data_dir: str, timeout: float = 1800.0) -> float:
    """Start the restored server, wait until recovery ends and it is promoted; seconds spent."""
    start = time.monotonic()
    _start_until(node, data_dir, "NOT pg_is_in_recovery()", timeout)
    return time.monotonic() - start


def _start_until(node: RestoreNode, data_dir: str, condition: str, timeout: float) -> None:
    """pg_ctl start with START_OPTIONS, then poll until ``condition`` (SQL) is true."""
    as_postgres(
        node.name,
        f"{PG_BIN}/pg_ctl -D {shlex.quote(data_dir)} -l {PG_LOG} -w -t {int(timeout)} "
        f"-o {shlex.quote(START_OPTIONS)} start",
        timeout=timeout + 30,
    )
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if psql(node.name, "postgres", f"SELECT {condition}").strip().endswith("t"):
            return
        time.sleep(0.5)
    raise CommandError(["pg_ctl", "start"], 1, f"not {condition} after {timeout:.0f} s; see {PG_LOG}")


def stop(node: RestoreNode, data_dir: str) -> None:
    as_postgres(node.name, f"{PG_BIN}/pg_ctl -D {shlex.quote(data_dir)} -m fast -w stop", timeout=120)
    sh(node.name, f"rm -rf {shlex.quote(data_dir)}")


def recovery_log(node: RestoreNode) -> str:
    return sh(node.name, f"cat {PG_LOG}")


def data_size(node: RestoreNode, data_dir: str) -> int:
    out = sh(node.name, f"du -sb {shlex.quote(data_dir)}")
    return int(out.split()[-2]) if out.split() else 0


_PODMAN_WARNING = re.compile(r'^time="[^"]*" level=')
_REDO_START = re.compile(r"redo starts at ([0-9A-F]+/[0-9A-F]+)")
_REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
_STOPPING = re.compile(r"recovery stopping before commit of transaction \d+, time (.+)$", re.M)


def parse_log(text: str) -> dict[str, str | None]:
    """What PostgreSQL's log says about the recovery: where redo started and ended, the first commit it
    did not apply (a time target), the last one it did (``last completed transaction was at log time``)."""
    last = re.findall(r"last completed transaction was at log time (.+)$", text, re.M)
    return {
        "redo_start": (m.group(1) if (m := _REDO_START.search(text)) else None),
        "redo_done": (m.group(1) if (m := _REDO_DONE.search(text)) else None),
        "stopped_before_commit_at": (m.group(1).strip() if (m := _STOPPING.search(text)) else None),
        "last_completed_transaction_at": last[-1].strip() if last else None,
    }


def copy_table_back(node: RestoreNode, member: str, db: str, table: str, where: str) -> tuple[int, int]:
    """docs/RESTORE.md step 3: the rows of ``table`` matching ``where`` in the restored database put back
    into the running one (the leader ``member``) by role pgbackrest's ``pgbackrest-put-back``, next to what
    is there. Returns (rows restored that match, rows put back)."""
    dump = as_postgres(
        node.name,
        f"psql -XAtq -d {shlex.quote(db)} -c "
        + shlex.quote(f"\\copy (SELECT * FROM {table} WHERE {where}) TO STDOUT"),
    )
    # podman's own warnings share the captured output: they are not rows (COPY's text format escapes a
    # newline inside a value, so a row is a line)
    rows = [line + "\n" for line in dump.splitlines() if not _PODMAN_WARNING.match(line)]
    out = sh(
        member,
        f"runuser -u postgres -- {PUT_BACK} {shlex.quote(db)} {shlex.quote(table)}",
        input_text="".join(rows),
    )
    return len(rows), int(out.strip().splitlines()[-1])


_ARCHIVED = re.compile(r"WAL segment ([0-9A-F]{24}) successfully archived")


def segment_end(segment: str, segment_bytes: int) -> str:
    """The LSN where WAL segment ``segment`` (its file name) ends: a standby that replayed it through its
    last record, a segment switch, reports this replay position."""
    log, seg = int(segment[8:16], 16), int(segment[16:24], 16)
    end = (log << 32) + (seg + 1) * segment_bytes
    return f"{end >> 32:X}/{end & 0xFFFFFFFF:X}"


def rebuild_as_standby(node: RestoreNode, data_dir: str, member: str, timeout: float = 300.0) -> float:
    """docs/RESTORE.md step 4: a member's data rebuilt from the repository (``--type=standby``: the newest
    backup, then the archived WAL as a standby). Seconds until it has replayed what the leader ``member``
    had archived when asked: ``pgbackrest check`` switches the current segment and archives it, and the
    standby must replay through its end. (The leader's current position instead made the step wait for
    the next ``archive_timeout`` whenever anything wrote after the check: 66.7 s once in CI, 4-12 s else.)"""
    stop(node, data_dir)
    start = time.monotonic()
    as_postgres(
        node.name, f"pgbackrest --stanza={STANZA} --type=standby --archive-mode=off restore", timeout=1800
    )
    checked = _ARCHIVED.findall(as_postgres(member, f"pgbackrest --stanza={STANZA} check", timeout=300))
    if checked:
        size = psql(member, "postgres", "SELECT pg_size_bytes(current_setting('wal_segment_size'))")
        archived = segment_end(max(checked), int(size.strip().splitlines()[-1]))
    else:  # a pgBackRest that does not name the segment: the position after the check's switch
        archived = psql(member, "postgres", "SELECT pg_current_wal_lsn()").strip().splitlines()[-1]
    _start_until(node, data_dir, f"pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '{archived}'", timeout)
    return time.monotonic() - start
