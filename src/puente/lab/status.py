"""`puente lab status`: what podman and each node's systemd say, next to what the inventory wants."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from puente.lab import podman, tunnels
from puente.lab.inventory import Lab
from puente.shell import run

# Units every node runs whatever its role: not worth listing as "services".
_BASE_UNITS = {
    "dbus",
    "ssh",
    "cron",
    "systemd-journald",
    "systemd-logind",
    "systemd-timesyncd",
    "systemd-networkd",
    "systemd-resolved",
    "unattended-upgrades",
    "nftables",
    "puente-lab-firstboot",
}

_PROBE = (
    "systemctl is-system-running 2>/dev/null; echo '--';"
    " systemctl list-units --type=service --state=running --no-legend --plain 2>/dev/null | cut -d' ' -f1;"
    " echo '--'; systemctl list-units --state=failed --no-legend --plain 2>/dev/null | cut -d' ' -f1;"
    " echo '--'; ss -Hltn 2>/dev/null | awk '{print $4}'"
)


def _probe(name: str) -> dict[str, Any]:
    proc = run(
        ["podman", "exec", name, "sh", "-c", _PROBE], env=podman.env(), capture=True, quiet=True, check=False
    )
    lines = [ln for ln in (proc.stdout or "").splitlines() if "syslog" not in ln]
    parts: list[list[str]] = [[]]
    for ln in lines:
        if ln == "--":
            parts.append([])
        else:
            parts[-1].append(ln.strip())
    parts += [[]] * (4 - len(parts))
    services = sorted(
        u.removesuffix(".service")
        for u in parts[1]
        if u and u.removesuffix(".service") not in _BASE_UNITS and not u.startswith(("systemd-", "user@"))
    )
    ports = sorted({p.rsplit(":", 1)[-1] for p in parts[3] if p}, key=lambda p: int(p) if p.isdigit() else 0)
    return {
        "systemd": (parts[0] or ["unknown"])[0],
        "services": services,
        "failed_units": [u for u in parts[2] if u],
        "listening_tcp": ports,
    }


def collect(lab: Lab) -> dict[str, Any]:
    running = {c["Names"][0]: c for c in podman.ps()}
    entries: list[dict[str, Any]] = []
    for node in lab.nodes.values():
        c = running.get(node.name)
        entries.append(
            {
                "name": node.name,
                "site": node.site.name,
                "ip": str(node.ip),
                "groups": list(node.groups),
                "state": (c or {}).get("State", "absent"),
            }
        )
    live = [e for e in entries if e["state"] == "running"]
    vpn = [e for e in live if set(e["groups"]) & set(tunnels.GROUPS)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for entry, probe in zip(live, pool.map(_probe, [e["name"] for e in live]), strict=True):
            entry.update(probe)
        for entry, sas in zip(vpn, pool.map(tunnels.probe, [e["name"] for e in vpn]), strict=True):
            entry["tunnels"] = sas
    return {"nodes": entries}


# Role monitoring's ports (its defaults; the lab does not change them): one stable URL per site.
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093


def monitoring_urls(lab: Lab) -> list[dict[str, str]]:
    """Each site's Prometheus and Alertmanager (group `monitoring`, one host per site)."""
    return [
        {
            "site": node.site.name,
            "prometheus": f"http://{node.ip}:{PROMETHEUS_PORT}/",
            "alertmanager": f"http://{node.ip}:{ALERTMANAGER_PORT}/",
        }
        for node in lab.in_group("monitoring")
    ]


def render(report: dict[str, Any]) -> str:
    rows = [("NODE", "SITE", "IP", "STATE", "SYSTEMD", "SERVICES", "TCP PORTS", "GROUPS")]
    for n in report["nodes"]:
        failed = n.get("failed_units") or []
        rows.append(
            (
                n["name"],
                n["site"],
                n["ip"],
                n["state"],
                n.get("systemd", "-") + (f" ({len(failed)} failed: {','.join(failed)})" if failed else ""),
                ",".join(n.get("services", [])) or "-",
                ",".join(n.get("listening_tcp", [])) or "-",
                ",".join(g for g in n["groups"] if g != n["site"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append("")
    for n in report["nodes"]:
        if "tunnels" in n:
            lines.append(f"ipsec ({n['name']}): {tunnels.describe(n['tunnels'])}")
    lines += [f"gateway: {u}" for u in report.get("urls", [])]
    for m in report.get("monitoring", []):
        lines.append(f"prometheus ({m['site']}): {m['prometheus']}")
        lines.append(f"alertmanager ({m['site']}): {m['alertmanager']}")
    return "\n".join(lines)
