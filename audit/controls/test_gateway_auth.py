"""Who may call the API through the gateway (role gateway, nginx, in front of the API's own key check).

The probes run ON the gateway against its own HTTPS listener with the node's Python, so they see what any
client sees. They write nothing: a refused request stores nothing, and the requests that would be
accepted are never sent.
"""

from __future__ import annotations

import json

import pytest

from puente.audit import control

# method, path, headers: each must be refused with 401 and a Bearer challenge.
PROBES = [
    ("POST", "/v1/shipments", {"Content-Type": "application/json", "Idempotency-Key": '"audit-probe"'}),
    ("GET", "/v1/shipments", {"X-Client-Id": "audit-forged-client"}),
    ("GET", "/v1/shipments", {"Authorization": "Bearer pk_Audit000_" + "0" * 43}),
    ("GET", "/v1/shipments", {"Authorization": "Basic YXVkaXQ6YXVkaXQ="}),
]

REQUEST = """
import http.client, json, ssl, sys
method, path, headers = json.loads(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the certificate is PUENTE-TLS-02's concern
conn = http.client.HTTPSConnection("127.0.0.1", 443, context=ctx, timeout=10)
conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
r = conn.getresponse()
print(json.dumps({"status": r.status, "content_type": r.getheader("Content-Type"),
                  "challenge": r.getheader("WWW-Authenticate")}))
"""


@control(
    id="PUENTE-AUTH-01", title="The gateway refuses requests without a valid API key", impact=0.9,
    rationale="""Every shipment belongs to a client; without authentication any caller reads, lists and
    changes every client's data, and a caller-chosen X-Client-Id would let it act as anyone. A request
    without a key, with a forged client id, an unknown key or another scheme must get 401 with a Bearer
    challenge (RFC 6750), before any business code runs.""",
    refs={"nist": ["IA-2", "IA-5", "AC-3", "AC-14"]}, groups=["gateways"],
)
@pytest.mark.parametrize(("method", "path", "headers"), PROBES, ids=["no-key", "forged-client-id",
                                                                      "unknown-key", "basic-scheme"])
def test_gateway_refuses_unauthenticated(host, evidence, method: str, path: str, headers: dict[str, str]):
    out = host.check_output("python3 -c %s %s", REQUEST, json.dumps([method, path, headers]))
    answer = json.loads(out)
    evidence.record(f"{method} {path} {sorted(headers)}", out)
    assert answer["status"] == 401, f"{method} {path} with {sorted(headers)}: {answer['status']}, not 401"
    assert (answer["challenge"] or "").startswith("Bearer"), f"no Bearer challenge: {answer['challenge']!r}"
    assert answer["content_type"] == "application/problem+json", answer["content_type"]
