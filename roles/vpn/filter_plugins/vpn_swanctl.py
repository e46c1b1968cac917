"""Filters of the `vpn` role: the site-to-site VPN's tunnels (the Pulumi stack's `vpnTunnels` as the
inventory plugin spells them) turned into strongSwan swanctl connections and secrets.

A tunnel is ``{tunnel: 1, outside_address, ike_versions, phase1_encryption_algorithms,
phase1_integrity_algorithms, phase1_dh_group_numbers, phase1_lifetime_seconds, phase2_...,
rekey_margin_time_seconds, rekey_fuzz_percentage, replay_window_size, startup_action, psk, ...}``.
Only what AWS's site-to-site VPN and this project accept is translated (IKEv2, AES-256-GCM or AES-256 with
SHA-256, DH groups 14/19/20); anything else fails the play with the tunnel and the value named.

``end`` is ``onprem`` (the customer gateway: local = this host, remote = AWS's outside address) or
``aws`` (the lab's stand-in for AWS's end: local = the outside address, remote = the customer gateway).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ansible.errors import AnsibleFilterError

# AWS's names (VpnTunnelOptionsSpecification) -> strongSwan's proposal keywords.
ENCRYPTION = {"AES256-GCM-16": "aes256gcm16", "AES256": "aes256"}
AEAD = {"aes256gcm16"}
INTEGRITY = {"SHA2-256": "sha256"}
PRF = {"SHA2-256": "prfsha256"}
# Strongest first: the first group of the first proposal is the one the initiator's KE payload carries.
DH_GROUPS = {20: "ecp384", 19: "ecp256", 14: "modp2048"}
ENDS = ("onprem", "aws")
# Fixed IPsec policy priorities, in tunnel order (strongSwan: lower is preferred; 0 would compute one from
# the selectors' sizes, equal for both tunnels).
POLICY_PRIORITY_STEP = 100
REQUIRED = (
    "tunnel",
    "outside_address",
    "ike_versions",
    "phase1_encryption_algorithms",
    "phase1_integrity_algorithms",
    "phase1_dh_group_numbers",
    "phase1_lifetime_seconds",
    "phase2_encryption_algorithms",
    "phase2_integrity_algorithms",
    "phase2_dh_group_numbers",
    "phase2_lifetime_seconds",
    "rekey_margin_time_seconds",
    "rekey_fuzz_percentage",
)


def _fail(tunnel: Any, message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"vpn: tunnel {tunnel}: {message}")


def _mapped(table: dict[Any, str], values: Any, what: str, tunnel: Any) -> list[str]:
    if not isinstance(values, list) or not values:
        raise _fail(tunnel, f"{what} must be a non-empty list, got {values!r}")
    unknown = [v for v in values if v not in table]
    if unknown:
        raise _fail(tunnel, f"{what} {unknown} not accepted (only {sorted(map(str, table))})")
    return [table[v] for v in values]


def _groups(values: Any, what: str, tunnel: Any) -> list[str]:
    found = _mapped(DH_GROUPS, values, what, tunnel)
    return sorted(found, key=list(DH_GROUPS.values()).index)


def proposals(tunnel: dict[str, Any], phase: int) -> list[str]:
    """swanctl proposals of one phase (1: IKE, 2: ESP with PFS), AEAD and non-AEAD ones apart (one
    proposal cannot mix them), each listing every DH group, strongest first."""
    name = tunnel.get("tunnel")
    ciphers = _mapped(
        ENCRYPTION, tunnel[f"phase{phase}_encryption_algorithms"], f"phase{phase} encryption", name
    )
    integrity = tunnel[f"phase{phase}_integrity_algorithms"]
    macs = _mapped(INTEGRITY, integrity, f"phase{phase} integrity", name)
    groups = "-".join(_groups(tunnel[f"phase{phase}_dh_group_numbers"], f"phase{phase} DH groups", name))
    out = []
    aead = [c for c in ciphers if c in AEAD]
    plain = [c for c in ciphers if c not in AEAD]
    if aead:
        # IKE with an AEAD cipher still needs a PRF; ESP needs none
        prf = "-".join(dict.fromkeys(_mapped(PRF, integrity, f"phase{phase} integrity", name)))
        out.append("-".join([*aead, *([prf] if phase == 1 else []), groups]))
    if plain:
        out.append("-".join([*plain, *dict.fromkeys(macs), groups]))
    return out


def _seconds(tunnel: dict[str, Any], key: str) -> int:
    value = tunnel[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(tunnel.get("tunnel"), f"{key} must be a positive number of seconds, got {value!r}")
    return int(value)


def rekeying(tunnel: dict[str, Any], phase: int) -> dict[str, int]:
    """AWS's rekey margin and fuzz on strongSwan's timers: the SA's hard life is the phase's lifetime,
    rekeying starts `margin` seconds before it, earlier by a random share of up to `fuzz` % of the margin
    (swanctl.conf: rekey_time minus a random value up to rand_time)."""
    name = tunnel.get("tunnel")
    life = _seconds(tunnel, f"phase{phase}_lifetime_seconds")
    margin = _seconds(tunnel, "rekey_margin_time_seconds")
    fuzz = tunnel["rekey_fuzz_percentage"]
    if isinstance(fuzz, bool) or not isinstance(fuzz, int | float) or not 0 <= fuzz <= 100:
        raise _fail(name, f"rekey_fuzz_percentage must be 0-100, got {fuzz!r}")
    phase2_life = _seconds(tunnel, "phase2_lifetime_seconds")
    if margin > phase2_life / 2:
        raise _fail(
            name,
            f"rekey margin {margin} s is more than half the phase 2 lifetime {phase2_life} s "
            "(AWS refuses it)",
        )
    rand = int(margin * fuzz / 100)
    if margin + rand >= life:
        raise _fail(
            name, f"rekey margin {margin} s + fuzz {rand} s leave no life in phase {phase} ({life} s)"
        )
    return {"rekey_time": life - margin, "rand_time": rand, "life_time": life, "over_time": margin}


def _address(value: Any, what: str, tunnel: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError as exc:
        raise _fail(tunnel, f"{what} must be an IP address, got {value!r}") from exc


def _cidrs(values: Any, what: str) -> list[str]:
    if not isinstance(values, list) or not values:
        raise AnsibleFilterError(f"vpn: {what} must be a non-empty list of networks, got {values!r}")
    try:
        return [str(ipaddress.ip_network(str(v))) for v in values]
    except ValueError as exc:
        raise AnsibleFilterError(f"vpn: {what}: {exc}") from exc


def _checked(tunnels: Any) -> list[dict[str, Any]]:
    if not isinstance(tunnels, list) or not tunnels:
        raise AnsibleFilterError("vpn: vpn_tunnels must be a non-empty list (the stack's vpnTunnels)")
    for t in tunnels:
        if not isinstance(t, dict):
            raise AnsibleFilterError(f"vpn: each tunnel must be a mapping, got {t!r}")
        missing = [k for k in REQUIRED if k not in t]
        if missing:
            raise _fail(t.get("tunnel", "?"), f"lacks {', '.join(missing)}")
        if list(t["ike_versions"]) != ["ikev2"]:
            raise _fail(t["tunnel"], f"ike_versions must be [ikev2], got {t['ike_versions']!r}")
    names = [t["tunnel"] for t in tunnels]
    if len(set(names)) != len(names):
        raise AnsibleFilterError(f"vpn: tunnel numbers must be unique, got {names}")
    return tunnels


# AWS's dpd_timeout_action in swanctl's words (AWS's none: the SA is gone after DPD either way).
DPD_ACTIONS = {"restart": "restart", "clear": "clear", "none": "clear"}


def vpn_swanctl_connections(
    tunnels: Any,
    end: str,
    local_cidrs: Any,
    remote_cidrs: Any,
    customer_gateway_address: str,
    local_address: str,
    customer_gateway_id: str = "",
    dpd_action: str = "restart",
    close_action: str = "restart",
) -> list[dict[str, Any]]:
    """One swanctl connection per tunnel, in tunnel order (the first is the preferred one).

    ``local_cidrs``/``remote_cidrs`` are the on-prem and the VPC's networks (the plugin's
    vpn_local_cidrs/vpn_remote_cidrs); the AWS end swaps them. ``customer_gateway_id`` is the identity the
    customer gateway authenticates with (AWS: its public address), the customer gateway's address if empty.
    ``dpd_action``/``close_action`` are the customer gateway's (vpn_dpd_action, vpn_close_action); AWS's end
    follows the tunnel's dpd_timeout_action and never restarts what its peer closed.
    """
    if end not in ENDS:
        raise AnsibleFilterError(f"vpn: vpn_end must be one of {list(ENDS)}, got {end!r}")
    onprem_nets, aws_nets = _cidrs(local_cidrs, "vpn_local_cidrs"), _cidrs(remote_cidrs, "vpn_remote_cidrs")
    cgw = _address(customer_gateway_address, "the customer gateway's address", "-")
    cgw_id = str(customer_gateway_id or cgw)
    out = []
    for position, t in enumerate(_checked(tunnels), start=1):
        name = t["tunnel"]
        outside = _address(t["outside_address"], "outside_address", name)
        onprem = end == "onprem"
        startup = str(t.get("startup_action", "add"))
        aws_dpd = DPD_ACTIONS.get(str(t.get("dpd_timeout_action", "clear")), "clear")
        if onprem and startup == "start" and close_action == "restart":
            raise AnsibleFilterError(
                f"vpn: tunnel {name}: AWS's end initiates (startup_action start), so vpn_close_action "
                "must not be restart: both ends would restart the SAs the other closes as duplicates, "
                "again and again. Use the stack's startup_action add (AWS's default) or "
                "vpn_close_action: none."
            )
        out.append(
            {
                "name": f"tunnel{name}",
                "local_addrs": _address(local_address, "vpn_local_address", name) if onprem else outside,
                "remote_addrs": outside if onprem else cgw,
                "local_id": cgw_id if onprem else outside,
                "remote_id": outside if onprem else cgw_id,
                "proposals": proposals(t, 1),
                "esp_proposals": proposals(t, 2),
                "ike": rekeying(t, 1),
                "child": rekeying(t, 2),
                "local_ts": onprem_nets if onprem else aws_nets,
                "remote_ts": aws_nets if onprem else onprem_nets,
                "replay_window": int(t.get("replay_window_size", 32)),
                # Both tunnels carry the same selectors: the kernel holds one policy per selector pair,
                # bound to the CHILD_SA whose priority is best (lowest). The first tunnel is preferred; when
                # its SA goes (DPD, a delete), the second one's takes over at once, and back when it returns.
                "priority": POLICY_PRIORITY_STEP * position,
                # ...which needs a policy per tunnel: strongSwan gives CHILD_SAs with equal selectors one
                # shared reqid (one policy, the newest SA wins) unless each has a fixed one of its own.
                "reqid": position,
                # The customer gateway always initiates; AWS's end as its startup_action says (AWS's
                # default, add: it waits). Two initiators cross: a tunnel gets an IKE SA from each end, and
                # every DPD restart then doubles them.
                "start_action": "start" if onprem or startup == "start" else "none",
                # AWS's end on a dead peer: restart, or clear (its default; AWS's none keeps nothing either).
                "dpd_action": dpd_action if onprem else aws_dpd,
                # The customer gateway brings back what AWS's end closed (a tunnel endpoint replaced).
                "close_action": close_action if onprem else "none",
                # A second IKE SA between the same identities (a restart crossing the peer's): the customer
                # gateway replaces the older one (ipsec.conf's uniqueids=yes). Only one end may: each could
                # delete the other's at once and leave the tunnel with none.
                "unique": "replace" if onprem else "no",
            }
        )
    return out


def vpn_swanctl_secrets(
    tunnels: Any, end: str, customer_gateway_address: str, customer_gateway_id: str = ""
) -> list[dict[str, Any]]:
    """The pre-shared key of each tunnel, bound to both identities of that tunnel (AWS generates one key
    per tunnel: the customer gateway's identity alone would not pick the right one)."""
    if end not in ENDS:
        raise AnsibleFilterError(f"vpn: vpn_end must be one of {list(ENDS)}, got {end!r}")
    cgw_id = str(customer_gateway_id or _address(customer_gateway_address, "the customer gateway", "-"))
    out = []
    for t in _checked(tunnels):
        psk = t.get("psk")
        if not isinstance(psk, str) or len(psk) < 8:
            raise _fail(
                t["tunnel"],
                "has no pre-shared key (psk): the inventory plugin reads it from the stack's secret "
                "vpnPresharedKeys (secret_outputs, or secret_output_file for an exported stack)",
            )
        out.append(
            {"name": f"tunnel{t['tunnel']}", "ids": [cgw_id, str(t["outside_address"])], "secret": psk}
        )
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "vpn_swanctl_connections": vpn_swanctl_connections,
            "vpn_swanctl_secrets": vpn_swanctl_secrets,
        }
