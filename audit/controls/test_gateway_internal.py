"""What the gateway tells the public about the site (role gateway, nginx): the public /readyz says ready
or not, nothing more; /metrics and the detailed readiness only reach the monitoring and load-balancer
networks.

The probes run ON the gateway against its own HTTPS listener with the node's Python: as an outsider from
127.0.0.2 (a loopback address no allow list names; Linux answers for all of 127.0.0.0/8) and as the load
balancer itself from 127.0.0.1. They only read.
"""

from __future__ import annotations

import json

from puente.audit import control

REQUEST = """
import http.client, json, socket, ssl, sys
source, path = sys.argv[1:3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the certificate is PUENTE-TLS-02's concern
c = http.client.HTTPSConnection("127.0.0.1", 443, context=ctx, timeout=10, source_address=(source, 0))
c.request("GET", path)
r = c.getresponse()
print(json.dumps({"status": r.status, "type": r.getheader("Content-Type"), "body": r.read().decode()[:2000]}))
"""
OUTSIDER, LOAD_BALANCER = "127.0.0.2", "127.0.0.1"


def _get(host, source: str, path: str) -> dict:
    return json.loads(host.check_output("python3 -c %s %s %s", REQUEST, source, path))


@control(
    id="PUENTE-AUTH-02",
    title="The gateway keeps /metrics and the detailed readiness internal",
    impact=0.5,
    rationale="""The detailed readiness names the site's dependencies and their exception text, /metrics
    every route's traffic: a map for an attacker. The public /readyz must say ready or not, nothing more,
    and the detailed forms answer only the monitoring and load-balancer networks (403 for anyone else).""",
    refs={"nist": ["SC-7", "AC-4", "SI-11"]},
    groups=["gateways"],
)
def test_gateway_keeps_metrics_and_detailed_readiness_internal(host):
    for path in ("/metrics", "/readyz/details", "/readyz/details?scope=read", "/%6detrics"):
        outsider = _get(host, OUTSIDER, path)
        assert outsider["status"] == 403, f"{path} from {OUTSIDER}: {outsider}"
    public = _get(host, OUTSIDER, "/readyz")
    body = json.loads(public["body"])
    if public["status"] == 200:
        assert body == {"status": "ready"}, f"the public /readyz says more: {body}"
    else:
        assert not {"reasons", "site", "role", "database", "broker"} & set(body), f"it says why: {body}"
    internal = _get(host, LOAD_BALANCER, "/readyz/details")
    detailed = json.loads(internal["body"])
    assert internal["status"] in (200, 503) and {"database", "reasons"} & set(detailed), (
        f"the load balancer does not get the detailed readiness: {internal}"
    )
