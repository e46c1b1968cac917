"""etcd (role etcd), Patroni's DCS: every member refuses a client and a peer without a certificate.

Probed from the member itself with curl on each address its client and peer ports listen on: over TLS with
the CA but no client certificate (must fail at the handshake), in plain HTTP (must get no answer), and with
the member's own certificate (must answer: the port is really etcd's, and the CA is the right one).
"""

from __future__ import annotations

from audit_policy import ETCD_PORTS, ETCD_TLS_DIR

from puente.audit import control


@control(
    id="PUENTE-ETCD-01",
    title="etcd refuses clients and peers without a certificate",
    impact=0.9,
    rationale="""etcd holds Patroni's leader key: whoever can write it decides which PostgreSQL member takes
    writes, and its traffic crosses the WAN. Every member must speak TLS only and ask each client and peer
    for a certificate signed by the cluster's CA (client-cert-auth and peer-client-cert-auth), so reaching
    port 2379 or 2380 is not enough.""",
    refs={"nist": ["IA-3", "SC-8", "SC-23", "AC-3"]},
    groups=["etcd"],
)
def test_etcd_refuses_clients_without_a_certificate(host):
    ca, cert, key = (f"{ETCD_TLS_DIR}/{name}" for name in ("ca.crt", "member.crt", "member.key"))
    for port in ETCD_PORTS:
        listening = host.snapshot("ss -Hltn sport = :%s", str(port)).splitlines()
        addresses = sorted({line.split()[3].rsplit(":", 1)[0] for line in listening if line.strip()})
        assert addresses, f"nothing listens on port {port}"
        for address in addresses:
            url = f"{address}:{port}/version"
            anonymous = host.run("curl -s -m 5 --cacert %s https://%s", ca, url)
            assert anonymous.rc != 0 or not anonymous.stdout, (
                f"https://{url} answered a client without a certificate: {anonymous.stdout[:200]}"
            )
            plain = host.run("curl -s -m 5 http://%s", url)
            assert plain.rc != 0 or not plain.stdout, f"http://{url} answered in plain HTTP"
            if port == ETCD_PORTS[0]:
                member = host.run(
                    "curl -s -m 5 --cacert %s --cert %s --key %s https://%s", ca, cert, key, url
                )
                assert member.rc == 0 and "etcdserver" in member.stdout, (
                    f"https://{url} did not answer the member's own certificate (curl exit {member.rc})"
                )
