"""The VPN controls' helpers (audit/controls/audit_vpn.py) on what the lab's gateways printed: strongSwan's
SAs against the agreed proposals, the fail-closed and tunnel routes, XFRM policies, the forward firewall; and
the agreed set as Ansible resolves it from the lab's inventory (the controls' INPUTS expression)."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest
from puente_test_support import load_module

from puente.audit.inventory import resolve
from puente.lab.inventory import shared_vars
from puente.shell import ROOT
from puente.vaults import LAB_VAULT_FILE

vpn = load_module(ROOT / "audit" / "controls" / "audit_vpn.py", "audit_vpn", register=True)

ONPREM, CLOUD = [ipaddress.ip_network("10.89.1.0/24")], [ipaddress.ip_network("10.89.2.0/24")]
INPUTS = {
    "tunnel": [1, 2],
    **{f"phase{p}_encryption_algorithms": [["AES256-GCM-16", "AES256"]] * 2 for p in (1, 2)},
    **{f"phase{p}_integrity_algorithms": [["SHA2-256"]] * 2 for p in (1, 2)},
    **{f"phase{p}_dh_group_numbers": [[14, 19, 20]] * 2 for p in (1, 2)},
    "onprem": ["10.89.1.0/24"],
    "cloud": ["10.89.2.0/24"],
    "kernel_libipsec": True,
}

# onprem-vpn1's `swanctl --list-sas --raw` (two IKE SAs for tunnel1 after a simultaneous start)
IKE = (
    "version=2 state={state} local-host=10.89.250.10 local-port=4500 remote-host={peer} remote-port=4500 "
    "nat-remote=yes encr-alg={encr} encr-keysize=256 {integ}prf-alg=PRF_HMAC_SHA2_256 dh-group={dh} "
    "established=33 rekey-time=27970"
)
CHILD = (
    "name={name} uniqueid=3 reqid=1 state={state} mode=TUNNEL protocol=ESP encap=yes spi-in=7165bd55 "
    "encr-alg={encr} encr-keysize=256 {extra}bytes-in=31044 packets-in=443 local-ts=[{local}] "
    "remote-ts=[10.89.2.0/24]"
)


def sa(name: str, *, state: str = "ESTABLISHED", child: str = "INSTALLED", encr: str = "AES_GCM_16",
       integ: str = "", dh: str = "ECP_384", child_encr: str = "AES_GCM_16", child_extra: str = "",
       local: str = "10.89.1.0/24") -> str:  # fmt: skip
    ike = IKE.format(state=state, peer="10.89.250.250", encr=encr, integ=integ, dh=dh)
    c = CHILD.format(name=name, state=child, encr=child_encr, extra=child_extra, local=local)
    return f"list-sa event {{{name} {{uniqueid=4 {ike} child-sas {{{name}-3 {{{c}}}}}}}}}"


def agreed(name: str = "tunnel1") -> dict:
    return vpn.tunnels(INPUTS)[name]


def test_the_raw_sas_parse_into_ike_and_child_sas() -> None:
    raw = "\n".join([sa("tunnel2"), sa("tunnel1"), sa("tunnel1", state="CONNECTING"), "list-sas reply {}"])
    found = list(vpn.ike_sas(raw))
    assert [name for name, _ in found] == ["tunnel2", "tunnel1", "tunnel1"]
    name, ike = found[0]
    assert ike["state"] == "ESTABLISHED" and ike["dh-group"] == "ECP_384"
    (child,) = ike["child-sas"].values()
    assert child["state"] == "INSTALLED" and child["local-ts"] == ["10.89.1.0/24"] and child["name"] == name


def test_the_agreed_set_in_strongswans_names() -> None:
    first = agreed()[1]
    assert first.encryption == {"AES_GCM_16-256", "AES_CBC-256"}
    assert first.prf == {"PRF_HMAC_SHA2_256"} and first.integrity == {"HMAC_SHA2_256_128"}
    assert first.dh == {"MODP_2048", "ECP_256", "ECP_384"}


def test_an_established_tunnel_with_the_agreed_proposals_passes() -> None:
    line, problems = vpn.check_tunnel(sa("tunnel1"), "tunnel1", agreed(), ONPREM, CLOUD)
    assert problems == []
    assert "IKE ESTABLISHED AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_384" in line and "CHILD INSTALLED" in line
    cbc = sa("tunnel1", encr="AES_CBC", integ="integ-alg=HMAC_SHA2_256_128 ", dh="MODP_2048",
             child_encr="AES_CBC", child_extra="integ-alg=HMAC_SHA2_256_128 dh-group=ECP_256 ")  # fmt: skip
    assert vpn.check_tunnel(cbc, "tunnel1", agreed(), ONPREM, CLOUD)[1] == []


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"dh": "MODP_1024"}, "tunnel1 IKE SA: DH group MODP_1024 not agreed"),
        (
            {"encr": "AES_CBC", "integ": "integ-alg=HMAC_SHA1_96 "},
            "IKE SA: integrity HMAC_SHA1_96 not agreed",
        ),
        ({"child_encr": "AES_CBC"}, "CHILD_SA: integrity none not agreed"),
        ({"child_extra": "dh-group=MODP_1024 "}, "CHILD_SA: DH group MODP_1024 not agreed"),
        ({"child": "REKEYING"}, "tunnel1: no IKE SA ESTABLISHED with a CHILD_SA INSTALLED"),
        ({"state": "CONNECTING"}, "tunnel1: no IKE SA ESTABLISHED with a CHILD_SA INSTALLED"),
        ({"local": "0.0.0.0/0"}, "CHILD_SA carries ['0.0.0.0/0'] <-> ['10.89.2.0/24']"),
    ],
)
def test_a_tunnel_down_or_off_the_agreed_set_fails(kwargs: dict, problem: str) -> None:
    _line, problems = vpn.check_tunnel(sa("tunnel1", **kwargs), "tunnel1", agreed(), ONPREM, CLOUD)
    assert any(problem in p for p in problems), problems


def test_a_missing_tunnel_fails() -> None:
    line, problems = vpn.check_tunnel(sa("tunnel1"), "tunnel2", agreed("tunnel2"), ONPREM, CLOUD)
    assert line == "tunnel2: no SA" and problems == [
        "tunnel2: no IKE SA ESTABLISHED with a CHILD_SA INSTALLED"
    ]


MAIN = json.dumps([
    {"dst": "default", "gateway": "10.89.1.1", "dev": "eth0"},
    {"dst": "10.89.1.0/24", "dev": "eth0", "scope": "link"},
    {"type": "unreachable", "dst": "10.89.2.0/24"},
    {"dst": "10.89.250.0/24", "dev": "eth1", "scope": "link"},
])  # fmt: skip


def test_routes_fail_closed_default_and_paths_around_the_router() -> None:
    assert vpn.unreachable_in_main(MAIN, CLOUD[0])
    assert not vpn.unreachable_in_main(MAIN, ipaddress.ip_network("10.89.3.0/24"))
    assert vpn.default_route(MAIN)["gateway"] == "10.89.1.1"
    assert vpn.paths_into(MAIN, CLOUD) == []  # the unreachable route leads nowhere
    around = json.dumps([*json.loads(MAIN), {"dst": "10.89.2.0/25", "gateway": "10.89.1.7", "dev": "eth0"}])
    assert vpn.paths_into(around, CLOUD) == [{"dst": "10.89.2.0/25", "gateway": "10.89.1.7", "dev": "eth0"}]
    assert vpn.probe_address(CLOUD[0]) == "10.89.2.1"


def test_xfrm_out_policies() -> None:
    policies = (
        "src 10.89.1.0/24 dst 10.89.2.0/24 \n\tdir out priority 100 ptype main \n"
        "\ttmpl src 192.0.2.10 dst 198.51.100.10\n\t\tproto esp spi 0xc1 reqid 1 mode tunnel\n"
    )
    assert vpn.xfrm_out_destinations(policies) == CLOUD


def _rule(*expr: dict) -> dict:
    return {"rule": {"family": "inet", "table": "puente_filter", "chain": "forward", "expr": list(expr)}}


def _match(left: dict, right: object, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _net(field: str, addr: str, length: int) -> dict:
    return _match({"payload": {"protocol": "ip", "field": field}}, {"prefix": {"addr": addr, "len": length}})


def ruleset(*rules: dict, policy: str = "drop") -> str:
    chain = {
        "family": "inet",
        "table": "puente_filter",
        "name": "forward",
        "hook": "forward",
        "policy": policy,
    }
    replies = _rule(_match({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None})
    outbound = _rule(_net("saddr", "10.89.1.0", 24), _net("daddr", "10.89.2.0", 24), {"accept": None})
    return json.dumps({"nftables": [{"chain": chain}, replies, outbound, *rules]})


TUN_IN = _rule(
    _match({"meta": {"key": "iifname"}}, "ipsec0"),
    _net("saddr", "10.89.2.0", 24),
    _net("daddr", "10.89.1.0", 24),
    {"accept": None},
)
KERNEL_IN = _rule(_match({"meta": {"key": "ipsec"}}, True), _net("saddr", "10.89.2.0", 24), {"accept": None})


def test_the_forward_firewall_lets_the_other_site_in_only_through_ipsec() -> None:
    assert vpn.forward_verdict(ruleset(TUN_IN), CLOUD, "ipsec0")[0] == []
    assert vpn.forward_verdict(ruleset(KERNEL_IN), CLOUD, None)[0] == []
    # the TUN device is IPsec's only with user-space ESP
    assert vpn.forward_verdict(ruleset(TUN_IN), CLOUD, None)[0]
    clear = _rule(_net("saddr", "10.89.2.0", 24), {"accept": None})
    assert "puente_filter forward" in vpn.forward_verdict(ruleset(TUN_IN, clear), CLOUD, "ipsec0")[0][0]
    anything = _rule(_match({"meta": {"key": "iifname"}}, "eth1"), {"accept": None})
    assert vpn.forward_verdict(ruleset(anything), CLOUD, "ipsec0")[0]
    assert vpn.forward_verdict(ruleset(TUN_IN, policy="accept"), CLOUD, "ipsec0")[0]
    none = json.dumps({"nftables": []})
    assert vpn.forward_verdict(none, CLOUD, "ipsec0")[0] == [
        "no forward chain: the host forwards whatever its routes allow"
    ]


def test_the_inputs_resolve_from_the_lab_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controls' expression, through Ansible, on the lab's inventory (as `puente audit` runs it: from the
    repository, with the lab's vault password): each host gets the agreed options and both sites' prefixes."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(ROOT / "inventories" / "lab" / LAB_VAULT_FILE))
    found = resolve("inventories/lab", vpn.INPUTS, "the VPN's inputs", "onprem-vpn1:cloud-db1")
    assert sorted(found) == ["cloud-db1", "onprem-vpn1"]
    shared = shared_vars()  # the lab's overrides, read without Ansible
    for inputs in found.values():
        assert inputs["tunnel"] == [1, 2] and inputs["kernel_libipsec"] is True
        assert (inputs["onprem"], inputs["cloud"]) == (shared["vpn_local_cidrs"], shared["vpn_remote_cidrs"])
        assert vpn.tunnels(inputs)["tunnel1"][1].dh == {"MODP_2048", "ECP_256", "ECP_384"}
