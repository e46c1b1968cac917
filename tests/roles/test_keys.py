"""API keys on the lab, as an operator and two clients see them (issue 11).

`puente keys` makes, lists, revokes and rotates keys (playbooks/keys.yml runs the API's own
`puente-api keys` on an API node). Through either site's gateway: no key is a 401 problem+json with its
challenge; client B can neither read, list, post events on, nor replay client A's resources; a revoked key
is refused on both sites within 5 s (the API caches a valid key for 2 s). The API's own semantics are tested
in tests/api against a real PostgreSQL; these tests prove the deployed path.
"""

from __future__ import annotations

import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from lab_requests import CA, EDGES, REPO
from lab_requests import SHIPMENT as BASE_SHIPMENT

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

INVENTORY = "inventories/lab"
SHIPMENT = {**BASE_SHIPMENT, "service": "standard", "reference": "keys-test"}
EVENT = {"type": "picked_up", "occurred_at": "2026-01-02T08:00:00Z"}
REVOKED_WITHIN_S = 5.0


def puente_keys(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(REPO / ".venv" / "bin" / "puente"), "keys", *args, "-i", INVENTORY]
    proc = subprocess.run(argv, cwd=REPO, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc


def new_key(client_id: str) -> tuple[str, str]:
    """(key id, token) from `puente keys create`: the token is the last line of its output."""
    out = puente_keys("create", client_id, "--label", "tests/roles/test_keys.py").stdout.strip().splitlines()
    key_id = next(line.split(":", 1)[1].strip() for line in out if line.startswith("key_id:"))
    return key_id, out[-1].strip()


def through(site: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=f"https://{EDGES[site]}",
        verify=ssl.create_default_context(cafile=CA),
        timeout=10,
        headers=headers,
    )


@pytest.fixture(scope="module")
def clients(lab) -> Iterator[dict[str, tuple[str, str, str]]]:
    """Two clients, A and B, each with a key made by `puente keys create`: name -> (client, key id, token)."""
    made = {}
    for name in ("a", "b"):
        client_id = f"keys-{name}-{uuid.uuid4().hex[:8]}"
        made[name] = (client_id, *new_key(client_id))
    yield made


def idem(key: str) -> dict[str, str]:
    return {"Idempotency-Key": f'"{key}"'}


@pytest.mark.parametrize("site", sorted(EDGES))
def test_no_key_is_401_problem_json_with_a_challenge(lab, site: str) -> None:
    with through(site) as c:
        r = c.post("/v1/shipments", json=SHIPMENT, headers=idem(f"nokey-{uuid.uuid4()}"))
        bad = c.get("/v1/shipments", headers={"Authorization": "Bearer pk_Nosuchk_" + "x" * 43})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]


@pytest.mark.parametrize("site", sorted(EDGES))
def test_a_caller_chosen_client_id_is_refused_on_both_sites(clients, site: str) -> None:
    """The same answer from nginx (on-prem) and the cloud edge's WAF: identity is the key's alone."""
    with through(site, clients["a"][2]) as c:
        r = c.get("/v1/shipments", headers={"X-Client-Id": clients["b"][0]})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "X-Client-Id is not accepted" in r.json()["detail"] and r.json()["request_id"]


def test_a_key_works_on_both_sites_and_keeps_idempotency(clients) -> None:
    _, _, token = clients["a"]
    key = f"both-{uuid.uuid4()}"
    with through("onprem", token) as onprem, through("cloud", token) as cloud:
        first = onprem.post("/v1/shipments", json=SHIPMENT, headers=idem(key))
        again = cloud.post("/v1/shipments", json=SHIPMENT, headers=idem(key))
        changed = cloud.post("/v1/shipments", json={**SHIPMENT, "reference": "other"}, headers=idem(key))
    assert first.status_code == 201, first.text
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"], again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert changed.status_code == 422, changed.text


@pytest.mark.parametrize("site", sorted(EDGES))
def test_client_b_cannot_read_list_post_events_on_or_replay_a(clients, site: str) -> None:
    a_token, b_token = clients["a"][2], clients["b"][2]
    key = f"scoped-{uuid.uuid4()}"
    with through(site, a_token) as a, through(site, b_token) as b:
        created = a.post("/v1/shipments", json=SHIPMENT, headers=idem(key))
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        read = b.get(f"/v1/shipments/{sid}")
        listed = b.get("/v1/shipments", params={"limit": 100})
        event = b.post(f"/v1/shipments/{sid}/events", json=EVENT, headers=idem(f"ev-{uuid.uuid4()}"))
        replay = b.post("/v1/shipments", json=SHIPMENT, headers=idem(key))
        own = a.get(f"/v1/shipments/{sid}")
    assert read.status_code == 404, read.text
    assert listed.status_code == 200 and sid not in {s["id"] for s in listed.json()["items"]}, listed.text
    assert event.status_code == 404, event.text
    # the same Idempotency-Key from B is B's own key: a new shipment of B's, never A's answer
    assert replay.status_code == 201 and replay.json()["id"] != sid, replay.text
    assert replay.headers.get("idempotent-replayed") != "true"
    assert own.status_code == 200 and own.json()["id"] == sid


def test_list_shows_the_keys_never_a_token(clients) -> None:
    client_id, key_id, token = clients["a"]
    out = puente_keys("list", "--client", client_id).stdout
    assert key_id in out and client_id in out
    assert token not in out and token.rsplit("_", 1)[-1] not in out


def _refused_on_both_sites(token: str, deadline_s: float) -> dict[str, float | None]:
    """Seconds until each site's gateway refused ``token`` (None: still accepted at the deadline)."""
    start = time.monotonic()
    refused: dict[str, float | None] = dict.fromkeys(EDGES)
    clients = {site: through(site, token) for site in EDGES}
    try:
        while time.monotonic() - start < deadline_s + 1 and None in refused.values():
            for site, c in clients.items():
                if refused[site] is None and c.get("/v1/shipments", params={"limit": 1}).status_code == 401:
                    refused[site] = time.monotonic() - start
            time.sleep(0.2)
    finally:
        for c in clients.values():
            c.close()
    return refused


def test_revoked_key_is_refused_on_both_sites_within_5_s(lab) -> None:
    key_id, token = new_key(f"keys-revoke-{uuid.uuid4().hex[:8]}")
    for site in EDGES:
        with through(site, token) as c:
            assert c.get("/v1/shipments", params={"limit": 1}).status_code == 200
    puente_keys("revoke", key_id)
    refused = _refused_on_both_sites(token, REVOKED_WITHIN_S)
    assert all(s is not None and s <= REVOKED_WITHIN_S for s in refused.values()), refused


def test_rotate_gives_a_working_key_and_retires_the_old_one(lab) -> None:
    key_id, old = new_key(f"keys-rotate-{uuid.uuid4().hex[:8]}")
    new = puente_keys("rotate", key_id).stdout.strip().splitlines()[-1].strip()
    assert new != old and new.startswith("pk_")
    with through("cloud", new) as c:
        assert c.get("/v1/shipments", params={"limit": 1}).status_code == 200
    refused = _refused_on_both_sites(old, REVOKED_WITHIN_S)
    assert all(s is not None and s <= REVOKED_WITHIN_S for s in refused.values()), refused


def test_bad_input_is_refused_with_exit_2(lab) -> None:
    argv = [str(REPO / ".venv" / "bin" / "puente"), "keys", "revoke", "pk_nosuch", "-i", INVENTORY]
    proc = subprocess.run(argv, cwd=REPO, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pk_nosuch" in proc.stderr or "key" in proc.stderr.lower()
