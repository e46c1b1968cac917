"""Filters of the `common` role: turn firewall declarations into address sets nftables can load.

A declaration is ``{port: 5432 | "8000-8010", proto: tcp|udp, from: [group names, CIDRs or "any"]}``, or
``{proto: esp, from: [...]}`` (IPsec's ESP, no port);
group names resolve to the addresses of their members (``common_firewall_address`` or ``ansible_host``).
Anything that cannot be resolved fails the play with the offending entry named.

``common_lockout_problems`` tells the role's preflight what in this run would lock the operator out: the
firewall (above) and hardening sshd (no root login, no passwords) are the changes that can cut the account
Ansible connects with off a node. One assert over its answer, instead of one per rule, keeps a no-op run of
site.yml shorter (every task result is a forked worker, docs/LAB.md).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ansible.errors import AnsibleFilterError


def _address(host: str, hostvars: Any) -> str:
    hv = hostvars[host]
    raw = hv.get("common_firewall_address") or hv.get("ansible_host") or host
    try:
        return str(ipaddress.ip_address(str(raw)))
    except ValueError as exc:
        raise AnsibleFilterError(
            f"common_firewall: host {host!r} has no IP address (ansible_host={raw!r}); "
            "set common_firewall_address for it"
        ) from exc


def common_firewall_sources(sources: list[str], groups: dict[str, list[str]], hostvars: Any) -> list[str]:
    """Resolve ``from`` entries to sorted, de-duplicated CIDRs; ``[]`` means any source."""
    if not isinstance(sources, list) or not sources:
        raise AnsibleFilterError(f"common_firewall: `from` must be a non-empty list, got {sources!r}")
    out: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for item in sources:
        item = str(item)
        if item == "any":
            return []
        if item in groups:
            out.update(ipaddress.ip_network(_address(h, hostvars)) for h in groups[item])
            continue
        try:
            out.add(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise AnsibleFilterError(
                f"common_firewall: {item!r} in `from` is neither an inventory group nor a CIDR nor 'any'"
            ) from exc
    return [str(n) for n in sorted(out, key=lambda n: (n.version, n.network_address, n.prefixlen))]


def common_firewall_rules(
    declared: list[list[dict[str, Any]]], groups: dict[str, list[str]], hostvars: Any
) -> list[dict[str, Any]]:
    """Flatten every declaration list into sorted rules ``{port, proto, v4: [...], v6: [...], any}``."""
    merged: dict[tuple[str, str], set[str] | None] = {}
    for rules in declared:
        for rule in rules or []:
            proto = str(rule.get("proto", "tcp")) if isinstance(rule, dict) else ""
            if proto == "esp":  # IPsec's ESP (IP protocol 50) has no ports
                if "port" in rule or "from" not in rule:
                    raise AnsibleFilterError(
                        f"common_firewall: an esp rule has from and no port, got {rule!r}"
                    )
                port = ""
            else:
                if not isinstance(rule, dict) or "port" not in rule or "from" not in rule:
                    raise AnsibleFilterError(f"common_firewall: each rule needs port and from, got {rule!r}")
                if proto not in ("tcp", "udp"):
                    raise AnsibleFilterError(f"common_firewall: proto must be tcp, udp or esp in {rule!r}")
                port = str(rule["port"])
                lo, _, hi = port.partition("-")
                if (
                    not (lo.isdigit() and (not hi or hi.isdigit()))
                    or not 0 < int(lo) <= int(hi or lo) <= 65535
                ):
                    raise AnsibleFilterError(
                        f"common_firewall: port must be 1-65535 or 'LOW-HIGH' in {rule!r}"
                    )
            key = (proto, port)
            sources = common_firewall_sources(rule["from"], groups, hostvars)
            if not sources or merged.get(key, set()) is None:
                merged[key] = None
            else:
                merged.setdefault(key, set()).update(sources)  # type: ignore[union-attr]
    out = []

    def order(kv: tuple[tuple[str, str], Any]) -> tuple[str, int]:
        return kv[0][0], int(kv[0][1].split("-")[0] or 0)

    for (proto, port), allowed in sorted(merged.items(), key=order):
        nets = [ipaddress.ip_network(s) for s in sorted(allowed or [])]
        out.append(
            {
                "proto": proto,
                "port": port,
                "any": allowed is None,
                "v4": [str(n) for n in nets if n.version == 4],
                "v6": [str(n) for n in nets if n.version == 6],
            }
        )
    return out


def common_firewall_accepts(rules: list[dict[str, Any]], address: str, port: int, proto: str = "tcp") -> bool:
    """True when ``rules`` (from :func:`common_firewall_rules`) let ``address`` reach ``proto/port``."""
    ip = ipaddress.ip_address(str(address))
    for rule in rules:
        lo, _, hi = rule["port"].partition("-")
        if rule["proto"] != proto or (lo and not int(lo) <= int(port) <= int(hi or lo)):
            continue
        if rule["any"] or any(ip in ipaddress.ip_network(n) for n in rule["v4"] + rule["v6"]):
            return True
    return False


def _networks(values: Any, what: str, index: int) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if not isinstance(values, list):
        raise AnsibleFilterError(f"common_firewall_forward[{index}]: {what} must be a list of CIDRs")
    try:
        return [ipaddress.ip_network(str(v)) for v in values]
    except ValueError as exc:
        raise AnsibleFilterError(f"common_firewall_forward[{index}]: {what}: {exc}") from exc


def common_firewall_forward(rules: Any) -> list[dict[str, str]]:
    """Forwarding rules (``{from: [CIDRs], to: [CIDRs], through: "" | "ipsec" | interface}``) as nft matches.

    ``through: ipsec`` accepts only what the kernel's IPsec decapsulated (``meta ipsec exists``); an interface
    name only what came in on it (strongSwan's kernel-libipsec TUN device, ``ipsec0``). One entry per address
    family present on both sides: ``{family: ip|ip6, saddr, daddr, match}``; an empty side lets nothing
    through (e.g. a VPN gateway before the stack's prefixes are known)."""
    if not isinstance(rules, list):
        raise AnsibleFilterError(f"common_firewall_forward must be a list, got {rules!r}")
    out = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or set(rule) - {"from", "to", "through"}:
            raise AnsibleFilterError(
                f"common_firewall_forward[{index}]: expected {{from, to, through}}, got {rule!r}"
            )
        sources, targets = _networks(rule.get("from"), "from", index), _networks(rule.get("to"), "to", index)
        through = str(rule.get("through") or "")
        if through and not all(c.isalnum() or c in "._-" for c in through):
            raise AnsibleFilterError(f"common_firewall_forward[{index}]: through {through!r} is no interface")
        match = "meta ipsec exists" if through == "ipsec" else (f'iifname "{through}"' if through else "")
        for family, version in (("ip", 4), ("ip6", 6)):
            src = sorted(str(n) for n in sources if n.version == version)
            dst = sorted(str(n) for n in targets if n.version == version)
            if src and dst:
                out.append(
                    {"family": family, "saddr": ", ".join(src), "daddr": ", ".join(dst), "match": match}
                )
    return out


def _listed_keys(users: list[dict[str, Any]], user: str) -> list[str]:
    return [key for entry in users if entry.get("name") == user for key in entry.get("authorized_keys", [])]


def common_lockout_problems(
    user: str,
    *,
    permit_root_login: str,
    key_file: dict[str, Any] | None,
    users: list[dict[str, Any]],
    firewall_rules: list[dict[str, Any]] | None,
    ssh_client: str,
    sshd_port: int,
) -> list[str]:
    """Messages for what would lock ``user`` out; ``[]`` when nothing would.

    ``key_file``: the registered ``stat`` of the account's ``~/.ssh/authorized_keys`` (skipped or ``None``
    when it was not read: no SSH login). ``firewall_rules``: from ``common_firewall_rules``, ``None`` when
    the role's firewall is off. ``ssh_client``: the address this SSH session comes from, ``""`` when
    unknown (a local or podman connection).
    """
    problems = []
    if user == "root" and permit_root_login == "no":
        problems.append(
            'Ansible connects as root but common_sshd_permit_root_login is "no": the next run could not log '
            "in. Connect as an operator account with sudo, or set common_sshd_permit_root_login: "
            "prohibit-password."
        )
    stat = (key_file or {}).get("stat")
    has_key_file = bool(stat and stat.get("exists") and stat.get("size", 0) > 0)
    if key_file and not key_file.get("skipped") and not has_key_file and not _listed_keys(users, user):
        problems.append(
            f"{user} has no ~/.ssh/authorized_keys and common_users gives it no key: with "
            "PasswordAuthentication off this node would become unreachable. Add its key to common_users."
        )
    if (
        firewall_rules is not None
        and ssh_client
        and not common_firewall_accepts(firewall_rules, ssh_client, sshd_port)
    ):
        problems.append(
            f"This session comes from {ssh_client}, which no common_firewall_allowed* rule lets reach "
            f"tcp/{sshd_port}: the firewall would cut it. Add your admin network to the sshd rule "
            "(common_firewall_allowed_ssh, roles/common defaults: from puente_admin_networks, set in the "
            "inventory)."
        )
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "common_firewall_sources": common_firewall_sources,
            "common_firewall_rules": common_firewall_rules,
            "common_firewall_accepts": common_firewall_accepts,
            "common_firewall_forward": common_firewall_forward,
            "common_lockout_problems": common_lockout_problems,
        }
