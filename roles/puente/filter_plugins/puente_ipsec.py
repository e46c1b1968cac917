"""Filter of Puente's shared defaults: the firewall rules an IPsec gateway (role vpn) needs, in role
common's declaration shape."""

from __future__ import annotations

from typing import Any

# IKE, IKE behind NAT (and ESP in UDP: NAT-T, strongSwan's kernel-libipsec), ESP itself.
IKE_PORTS = (500, 4500)


def puente_ipsec_rules(peers: Any) -> list[dict[str, Any]]:
    """IKE (UDP 500 and 4500) and ESP from ``peers`` only (addresses, CIDRs or inventory groups); no rule
    at all without peers (no tunnel configured: nothing to open)."""
    sources = [str(p) for p in peers or [] if p]
    if not sources:
        return []
    return [{"port": port, "proto": "udp", "from": sources} for port in IKE_PORTS] + [
        {"proto": "esp", "from": sources}
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"puente_ipsec_rules": puente_ipsec_rules}
