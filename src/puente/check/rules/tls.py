"""Rule 8: every TLS endpoint has its certificate — the operator's PKI files in production, the lab's CA only
in the lab.

Each role that serves TLS takes ``<role>_tls_mode``: ``provided`` (files on the control machine, the
default) or ``lab_ca`` (the lab's CA, role ``lab_ca``). With ``provided`` every file variable must be set:
otherwise the role would stop at its first host, after other tiers changed. ``lab_ca`` outside the lab is
refused: its CA is a key on the control machine that no client outside the lab trusts.
"""

from __future__ import annotations

from collections import defaultdict

from puente.check.findings import Finding, hosts_phrase
from puente.check.inventory import Deployment

# role -> (mode variable, the files `provided` needs, what they are for)
TLS_INPUTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "gateway": (
        "gateway_tls_mode",
        ("gateway_tls_certificate_src", "gateway_tls_key_src"),
        "the gateway's HTTPS certificate chain and key",
    ),
    "etcd": (
        "etcd_tls_mode",
        ("etcd_tls_certificate_src", "etcd_tls_key_src", "etcd_tls_ca_src"),
        "each etcd member's certificate (serverAuth and clientAuth), key and the CA bundle; etcd refuses "
        "peers and clients without a certificate",
    ),
    "haproxy": (
        "",
        ("haproxy_postgresql_check_ca_src",),
        "the CA the load balancer's PostgreSQL checks verify Patroni's HTTPS REST API against",
    ),
    "rabbitmq": (
        "rabbitmq_tls_mode",
        ("rabbitmq_tls_certificate_src", "rabbitmq_tls_key_src"),
        "each broker's AMQPS certificate chain (for the address the API connects to) and key",
    ),
    "postgresql": (
        "postgresql_tls_mode",
        ("postgresql_ssl_cert_src", "postgresql_ssl_key_src", "postgresql_ssl_ca_src"),
        "each PostgreSQL node's certificate (PostgreSQL, Patroni's REST API and its etcd client), key and "
        "the CA bundle",
    ),
}


# where the production example sets each role's files
GROUP_FILES = {"gateway": "gateways", "haproxy": "loadbalancers"}


def check(d: Deployment) -> list[Finding]:
    missing: dict[tuple[str, str], list[str]] = defaultdict(list)  # (role, variable) -> hosts
    lab_ca: dict[str, list[str]] = defaultdict(list)  # role -> hosts
    for name, host in sorted(d.hosts.items()):
        for role in host.roles:
            if role not in TLS_INPUTS:
                continue
            mode_var, files, _ = TLS_INPUTS[role]
            mode = str(d.value(name, mode_var, "provided")) if mode_var else "provided"
            enabled = str(d.value(name, "haproxy_postgresql_enabled", True)).lower()
            if role == "haproxy" and enabled == "false":
                continue
            if role == "rabbitmq" and str(d.value(name, "rabbitmq_tls_enabled", True)).lower() == "false":
                continue
            if mode == "lab_ca":
                if not d.is_lab:
                    lab_ca[role].append(name)
                continue
            for var in files:
                if not str(d.value(name, var, "") or "").strip():
                    missing[(role, var)].append(name)
    out = [
        Finding(
            "tls-certificate",
            f"role {role}, host(s) {hosts_phrase(hosts)}",
            f"{var} is not set: {TLS_INPUTS[role][2]} come from your PKI as files on the control machine"
            + (f" ({TLS_INPUTS[role][0]} is provided)." if TLS_INPUTS[role][0] else "."),
            f"set {var} (a path on the control machine) for these hosts, as "
            f"inventories/production/group_vars/{GROUP_FILES.get(role, role)}.yml does.",
        )
        for (role, var), hosts in sorted(missing.items())
    ]
    out += [
        Finding(
            "tls-certificate",
            f"role {role}, host(s) {hosts_phrase(hosts)}",
            f"{TLS_INPUTS[role][0]} is lab_ca outside the lab: the lab's CA (a key on the control machine) "
            "would sign certificates no client of this deployment trusts.",
            f"set {TLS_INPUTS[role][0]}: provided with your PKI's files ({', '.join(TLS_INPUTS[role][1])}).",
        )
        for role, hosts in sorted(lab_ca.items())
    ]
    return out
