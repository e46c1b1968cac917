"""PUENTE-VPN-01/02 on the lab can fail: a VPN gateway without its fail-closed route and with a forward rule
that lets the other site in clear fails those two aspects (its tunnels still pass), a node with a route of its
own into the other site fails PUENTE-VPN-02; put back, both pass again. The breaks are undone in `finally`."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_audit import audit_control

from puente.lab.inventory import load
from puente.lab.podman import env as podman_env
from puente.shell import run

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]
LAB = load()
GATEWAY = LAB.groups["vpn"][0]
NODE = next(n.name for n in LAB.in_group("api_nodes") if n.site.name == LAB.nodes[GATEWAY].site.name)
CLOUD = next(s.subnet for s in LAB.sites.values() if s.name == "cloud")
MARK = "puente-audit-test"


def on(host: str, script: str, check: bool = True) -> str:
    return (
        run(["podman", "exec", host, "sh", "-c", script], env=podman_env(), capture=True, check=check).stdout
        or ""
    )


def test_a_gateway_open_in_clear_and_a_node_routing_around_the_router_fail(tmp_path: Path) -> None:
    stray = f"{CLOUD.broadcast_address - 1}/32"
    try:
        on(GATEWAY, f"ip route del unreachable {CLOUD}")
        on(GATEWAY, f'nft insert rule inet puente_filter forward ip saddr {CLOUD} accept comment "{MARK}"')
        default = on(NODE, "ip route show default").split()[2]
        on(NODE, f"ip route add {stray} via {default}")
        gateway = audit_control("PUENTE-VPN-01", GATEWAY, tmp_path / "broken-gateway")
        node = audit_control("PUENTE-VPN-02", NODE, tmp_path / "broken-node")
    finally:
        on(GATEWAY, f"ip route replace unreachable {CLOUD}")
        handles = on(GATEWAY, "nft -a list chain inet puente_filter forward")
        for line in handles.splitlines():
            if MARK in line:
                on(GATEWAY, f"nft delete rule inet puente_filter forward handle {line.split()[-1]}")
        on(NODE, f"ip route del {stray}", check=False)
    status = {aspect: r["status"] for aspect, r in gateway.items()}
    assert status == {"tunnels-agreed": "passed", "into-the-tunnel": "passed", "fail-closed": "failed",
                      "forward-firewall": "failed"}, gateway  # fmt: skip
    assert f"no `unreachable` route for {CLOUD}" in gateway["fail-closed"]["message"]
    assert "forwarded without IPsec" in gateway["forward-firewall"]["message"]
    (result,) = node.values()
    assert result["status"] == "failed" and stray.split("/")[0] in result["message"], result

    put_back = audit_control("PUENTE-VPN-01", GATEWAY, tmp_path / "gateway")
    assert {r["status"] for r in put_back.values()} == {"passed"}, put_back
    (result,) = audit_control("PUENTE-VPN-02", NODE, tmp_path / "node").values()
    assert result["status"] == "passed", result
