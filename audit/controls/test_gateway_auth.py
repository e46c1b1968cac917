"""Who may call the API through the gateway (role gateway, nginx, in front of the API's own key check).

The probes run ON the gateway against its own HTTPS listener with the node's Python, so they see what any
client sees. They write nothing: a refused request stores nothing, and the requests that would be
accepted are never sent.
"""

from __future__ import annotations

import json

import pytest

from puente.audit import control

# method, path, headers, the refusal expected: 401 with a Bearer challenge when no valid key is sent, 400 for
# a caller-chosen X-Client-Id (refused outright, on both sites' edges).
PROBES = [
    ("POST", "/v1/shipments", {"Content-Type": "application/json", "Idempotency-Key": '"audit-probe"'}, 401),
    ("GET", "/v1/shipments", {"X-Client-Id": "audit-forged-client"}, 400),
    ("GET", "/v1/shipments", {"Authorization": "Bearer pk_Audit000_" + "0" * 43}, 401),
    ("GET", "/v1/shipments", {"Authorization": "Basic YXVkaXQ6YXVkaXQ="}, 401),
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
    id="PUENTE-AUTH-01",
    title="The gateway refuses requests without a valid API key",
    impact=0.9,
    rationale="""Every shipment belongs to a client; without authentication any caller reads, lists and
    changes every client's data, and a caller-chosen X-Client-Id would let it act as anyone. A request
    without a key, an unknown key or another scheme must get 401 with a Bearer challenge (RFC 6750) before
    any business code runs, and one naming its own client (X-Client-Id) 400.""",
    refs={"nist": ["IA-2", "IA-5", "AC-3", "AC-14"]},
    groups=["gateways"],
)
@pytest.mark.parametrize(
    ("method", "path", "headers", "refusal"),
    PROBES,
    ids=["no-key", "forged-client-id", "unknown-key", "basic-scheme"],
)
def test_gateway_refuses_unauthenticated(
    host, evidence, method: str, path: str, headers: dict[str, str], refusal: int
):
    out = host.check_output("python3 -c %s %s", REQUEST, json.dumps([method, path, headers]))
    answer = json.loads(out)
    evidence.record(f"{method} {path} {sorted(headers)}", out)
    sent = f"{method} {path} {sorted(headers)}"
    assert answer["status"] == refusal, f"{sent}: {answer['status']}, not {refusal}"
    if refusal == 401:
        assert (answer["challenge"] or "").startswith("Bearer"), f"{sent}: no Bearer challenge"
    assert answer["content_type"] == "application/problem+json", answer["content_type"]
