"""Host firewall (nftables, role common) and listening services, against audit_policy.ALLOWED_PORTS.

CIS Debian Linux 12 Benchmark v1.1.0, 4.3 (nftables) and 2.1.22 (only approved services listen).
"""

from __future__ import annotations

import ipaddress

from audit_policy import accepted_ports, allowed_ports, input_chains

from puente.audit import control


@control(
    id="PUENTE-FW-01",
    title="Inbound traffic is denied unless a rule allows it",
    impact=0.8,
    rationale="""With a default-deny input policy a service started by mistake, or a package that listens on
    install, is not reachable; with accept-by-default every listener is exposed.""",
    refs={"cis": "4.3.8, 4.3.5", "nist": ["SC-7", "SC-7(5)", "CM-7"]},
    groups=["all"],
    remediation="Run the common role with common_firewall_enabled: true.",
)
def test_input_default_deny(host):
    chains = input_chains(host.snapshot("nft -j list ruleset"))
    assert chains, "no nftables chain is hooked on input: no host firewall"
    open_chains = [
        f"{c['family']} {c['table']} {c['name']}: policy {c.get('policy')}"
        for c in chains
        if c.get("policy") != "drop"
    ]
    assert not open_chains, f"input chains that accept by default: {open_chains}"


@control(
    id="PUENTE-FW-02",
    title="The firewall opens only the ports of the host's roles",
    impact=0.7,
    rationale="""Each role declares the ports it serves; an extra accept rule exposes whatever listens there,
    now or later.""",
    refs={"cis": "4.3.8", "nist": ["SC-7", "CM-7(1)", "AC-4"]},
    groups=["all"],
)
def test_firewall_ports_match_roles(host, evidence):
    allowed = allowed_ports(host.groups)
    rules = accepted_ports(host.snapshot("nft -j list ruleset"))
    extra = [r for r in rules if not all((r[0], p) in allowed for p in range(r[1], r[2] + 1))]
    evidence.record(
        f"allowed for groups {', '.join(host.groups)}", " ".join(f"{p}/{n}" for p, n in sorted(allowed))
    )
    assert not extra, "accepted beyond the host's roles: " + "; ".join(
        f"{proto}/{lo}" + (f"-{hi}" if hi != lo else "") for proto, lo, hi, _ in extra
    )


@control(
    id="PUENTE-FW-03",
    title="Only the services of the host's roles listen on the network",
    impact=0.6,
    rationale="""A listener outside the role's ports is either unneeded software or a mistake; loopback-only
    listeners (admin sockets, stats pages) are not reachable and are left out.""",
    refs={"cis": "2.1.22", "nist": ["CM-7", "CM-7(1)"]},
    groups=["all"],
)
def test_listening_ports_match_roles(host, evidence):
    allowed = allowed_ports(host.groups)
    unexpected = []
    for line in host.check_output("ss -Hlntu").splitlines():
        fields = line.split()
        proto, local = fields[0], fields[4]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        if address not in ("*", "0.0.0.0", "::"):
            try:
                if ipaddress.ip_address(address).is_loopback:
                    continue
            except ValueError:
                pass
        if (proto, int(port)) not in allowed:
            unexpected.append(f"{proto} {local}")
    evidence.record(
        f"allowed for groups {', '.join(host.groups)}", " ".join(f"{p}/{n}" for p, n in sorted(allowed))
    )
    assert not unexpected, f"listening beyond the host's roles: {', '.join(sorted(set(unexpected)))}"
