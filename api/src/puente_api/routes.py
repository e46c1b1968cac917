"""HTTP routes: shipments (idempotent writes, keyset-paginated reads) and the operational endpoints."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from puente_api import idempotency, metrics, shipments
from puente_api.idempotency import REPLAY_HEADER, Outcome, Scope
from puente_api.models import Event, EventCreate, Shipment, ShipmentCreate, ShipmentDetail, ShipmentPage
from puente_api.problems import Problem
from puente_api.state import AppState

router = APIRouter()

_PROBLEM = {"description": "Problem details (RFC 9457)"}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM, "description": "Idempotency-Key missing or malformed, malformed JSON"},
    404: {**_PROBLEM, "description": "No such shipment (stored on the key, replayed)"},
    409: {
        **_PROBLEM,
        "description": "A request with this Idempotency-Key is in flight, or the shipment is closed",
    },
    413: {**_PROBLEM, "description": "Request body larger than PUENTE_MAX_BODY_BYTES"},
    415: {**_PROBLEM, "description": "Request body is not application/json"},
    422: {**_PROBLEM, "description": "Body fails validation, or the key was used for another request"},
    503: {**_PROBLEM, "description": "Database unreachable or read-only; retry with the same key"},
}
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM, "description": "Invalid cursor"},
    404: {**_PROBLEM, "description": "No such shipment"},
    422: {**_PROBLEM, "description": "Invalid parameter"},
    503: {**_PROBLEM, "description": "Database unreachable"},
}


def state(request: Request) -> AppState:
    return request.app.state.puente  # type: ignore[no-any-return]


async def idempotency_headers(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description='Required: an RFC 8941 sf-string, 8..255 printable ASCII characters, e.g. "<UUID>".',
        ),
    ] = None,
    x_client_id: Annotated[
        str | None,
        Header(alias="X-Client-Id", description="Scope of the key (default: anonymous)."),
    ] = None,
) -> tuple[str, str]:
    if len(request.headers.getlist("idempotency-key")) > 1:
        raise Problem(
            400,
            "idempotency-key-malformed",
            "Send exactly one Idempotency-Key header.",
            title="Idempotency-Key is malformed",
        )
    return idempotency.parse_client(x_client_id), idempotency.parse_key(idempotency_key)


Identity = Annotated[tuple[str, str], Depends(idempotency_headers)]


def _respond(outcome: Outcome) -> Response:
    stored = outcome.response
    headers = dict(stored.headers)
    if outcome.replayed:
        headers[REPLAY_HEADER] = "true"
    return Response(stored.body, stored.status, headers=headers, media_type=stored.media_type)


@router.post(
    "/v1/shipments",
    status_code=201,
    response_model=Shipment,
    responses=WRITE_RESPONSES,
    summary="Create a shipment (idempotent: Idempotency-Key required)",
    tags=["shipments"],
)
async def create_shipment(request: Request, payload: ShipmentCreate, identity: Identity) -> Response:
    st = state(request)
    client, key = identity
    path = request.url.path
    doc = payload.model_dump(mode="json")
    scope = Scope(client, key, "POST", path, idempotency.fingerprint("POST", path, doc))
    outcome = await idempotency.execute(
        st.pool,
        scope,
        lambda tx: shipments.create(tx, client, doc),
        st.settings.idempotency_ttl_seconds,
        st.settings.test_pause_after_lock,
        st.settings.test_pause_after_commit,
    )
    return _respond(outcome)


@router.post(
    "/v1/shipments/{shipment_id}/events",
    status_code=201,
    response_model=Event,
    responses=WRITE_RESPONSES,
    summary="Append a tracking event (idempotent: Idempotency-Key required)",
    tags=["shipments"],
)
async def add_event(
    request: Request, shipment_id: UUID, payload: EventCreate, identity: Identity
) -> Response:
    st = state(request)
    client, key = identity
    path = request.url.path
    scope = Scope(
        client, key, "POST", path, idempotency.fingerprint("POST", path, payload.model_dump(mode="json"))
    )
    outcome = await idempotency.execute(
        st.pool,
        scope,
        lambda tx: shipments.add_event(tx, shipment_id, payload, path),
        st.settings.idempotency_ttl_seconds,
        st.settings.test_pause_after_lock,
        st.settings.test_pause_after_commit,
    )
    return _respond(outcome)


@router.get(
    "/v1/shipments/{shipment_id}",
    response_model=ShipmentDetail,
    responses=READ_RESPONSES,
    summary="A shipment with its tracking events and label",
    tags=["shipments"],
)
async def get_shipment(request: Request, shipment_id: UUID) -> Response:
    async with state(request).pool.connection() as conn:
        doc = await shipments.get(conn, shipment_id)
    if doc is None:
        raise Problem(404, "not-found", f"No shipment {shipment_id}.")
    return Response(orjson.dumps(doc), media_type="application/json")


@router.get(
    "/v1/shipments",
    response_model=ShipmentPage,
    responses=READ_RESPONSES,
    summary="Shipments, newest first (keyset pagination)",
    tags=["shipments"],
)
async def list_shipments(
    request: Request,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    async with state(request).pool.connection() as conn:
        doc = await shipments.page(conn, cursor, limit)
    return Response(orjson.dumps(doc), media_type="application/json")


@router.get("/healthz", summary="The process is alive (no dependency is checked)", tags=["operations"])
async def healthz(request: Request) -> dict[str, str]:
    st = state(request)
    return {"status": "alive", "site": st.settings.site, "role": st.settings.site_role}


@router.get(
    "/readyz",
    summary="Ready for writes: database reachable and writable, broker reachable",
    responses={503: {**_PROBLEM, "description": "Not ready; `reasons` says why"}},
    tags=["operations"],
)
async def readyz(request: Request) -> dict[str, str]:
    return await state(request).readiness.report()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    tags=["operations"],
)
async def metrics_endpoint() -> Response:
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
