"""The VPN nodes' IPsec tunnels as `puente lab status` shows them: each IKE SA's state and its CHILD_SAs',
read from strongSwan (`swanctl --list-sas`) inside the nodes of the VPN groups (role vpn)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from puente.lab import podman
from puente.shell import run

# Both ends of the site-to-site VPN: the on-prem gateway and the lab's stand-in for AWS's end.
GROUPS = ("vpn", "aws_vpn")
# swanctl --list-sas: an IKE SA at the start of a line, its CHILD_SAs indented below it, e.g.
#   tunnel1: #3, ESTABLISHED, IKEv2, 5e3b..._i* 9a1c..._r
#     tunnel1: #2, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256/ECP_384
_IKE = re.compile(r"^(?P<name>[\w.-]+): #\d+, (?P<state>[A-Z_]+), IKEv\d")
_CHILD = re.compile(r"^\s+(?P<name>[\w.-]+): #\d+, reqid \d+, (?P<state>[A-Z_]+),")


def parse(text: str) -> dict[str, dict[str, Any]]:
    """{connection: {"ike": [states of its IKE SAs], "children": [states of their CHILD_SAs]}}."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        ike = _IKE.match(line)
        if ike:
            current = found.setdefault(ike["name"], {"ike": [], "children": []})
            current["ike"].append(ike["state"])
            continue
        child = _CHILD.match(line)
        if child and current is not None:
            current["children"].append(child["state"])
    return found


def up(tunnel: dict[str, Any]) -> bool:
    """An IKE SA established and a CHILD_SA installed: traffic can flow."""
    return "ESTABLISHED" in tunnel["ike"] and "INSTALLED" in tunnel["children"]


def list_sas(name: str, timeout: float | None = None) -> str | None:
    """``swanctl --list-sas`` inside node ``name``; None when it could not be asked (in time)."""
    try:
        proc = run(
            ["podman", "exec", name, "swanctl", "--list-sas"],
            env=podman.env(),
            capture=True,
            quiet=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    return (proc.stdout or "") if proc.returncode == 0 else None


def probe(name: str) -> dict[str, dict[str, Any]]:
    return parse(list_sas(name) or "")


def describe(tunnels: dict[str, dict[str, Any]]) -> str:
    """One line: `tunnel1 ESTABLISHED/INSTALLED, tunnel2 CONNECTING/-` (or `no SA`)."""
    if not tunnels:
        return "no SA"
    return ", ".join(
        f"{name} {'+'.join(t['ike']) or '-'}/{'+'.join(t['children']) or '-'}"
        for name, t in sorted(tunnels.items())
    )
