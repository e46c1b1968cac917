"""HTTP routes: shipments (idempotent writes, keyset-paginated reads) and the operational endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from puente_api import auth, backlog, db, idempotency, metrics, shipments, writes
from puente_api.idempotency import Outcome
from puente_api.models import Event, EventCreate, Shipment, ShipmentCreate, ShipmentDetail, ShipmentPage
from puente_api.problems import Problem, unavailable
from puente_api.state import AppState

router = APIRouter()

_PROBLEM = {"description": "Problem details (RFC 9457)"}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM, "description": "Idempotency-Key missing or malformed, malformed JSON"},
    404: {**_PROBLEM, "description": "No such shipment of the caller's (stored on the key, replayed)"},
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
    404: {**_PROBLEM, "description": "No such shipment of the caller's (another client's is the same 404)"},
    422: {**_PROBLEM, "description": "Invalid parameter"},
    503: {**_PROBLEM, "description": "Database unreachable"},
}


def state(request: Request) -> AppState:
    return request.app.state.puente  # type: ignore[no-any-return]


# The write endpoints read their headers and body themselves (no FastAPI dependency or body param):
# the key is checked before the body, as the draft orders it, and pydantic parses the JSON in Rust.
# These describe that to OpenAPI; app._openapi adds the body models to the components.
WRITE_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": 'An RFC 8941 sf-string, 8..255 printable ASCII characters, e.g. "<UUID>".',
        "schema": {"type": "string", "pattern": idempotency.KEY_PATTERN},
    },
]
WRITE_BODIES: dict[str, type[BaseModel]] = {"ShipmentCreate": ShipmentCreate, "EventCreate": EventCreate}


def _write_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "parameters": WRITE_HEADERS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        },
    }


def _respond(outcome: Outcome) -> Response:
    stored = outcome.response
    return Response(
        stored.body, stored.status, headers=writes.response_headers(outcome), media_type=stored.media_type
    )


def _write_headers(request: Request) -> tuple[list[str], str]:
    """The Idempotency-Key headers, and the caller the edge authenticated (its key's client id)."""
    return request.headers.getlist("idempotency-key"), _client(request)


def _client(request: Request) -> str:
    return auth.identity(request.scope).client_id


# The two writes: served by writes.WriteRoutes before FastAPI sees them; declared here for the
# OpenAPI document (and so that this router alone serves them the same way).
@router.post(
    "/v1/shipments",
    status_code=201,
    response_model=Shipment,
    responses=WRITE_RESPONSES,
    summary="Create a shipment (idempotent: Idempotency-Key required)",
    tags=["shipments"],
    openapi_extra=_write_doc(ShipmentCreate),
)
async def create_shipment(request: Request) -> Response:
    keys, client = _write_headers(request)
    outcome = await writes.create_shipment(state(request), keys, client, request.body, request.url.path)
    return _respond(outcome)


@router.post(
    "/v1/shipments/{shipment_id}/events",
    status_code=201,
    response_model=Event,
    responses=WRITE_RESPONSES,
    summary="Append a tracking event (idempotent: Idempotency-Key required)",
    tags=["shipments"],
    openapi_extra=_write_doc(EventCreate),
)
async def add_event(request: Request, shipment_id: UUID) -> Response:
    keys, client = _write_headers(request)
    outcome = await writes.add_event(
        state(request), shipment_id, keys, client, request.body, request.url.path
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
    client = _client(request)
    doc = await db.read(state(request).read_pool, lambda conn: shipments.get(conn, client, shipment_id))
    if doc is None:
        raise Problem(404, "not-found", f"No shipment {shipment_id}.")
    return Response(orjson.dumps(doc), media_type="application/json")


@router.get(
    "/v1/shipments/{shipment_id}/events/{event_id}",
    response_model=Event,
    responses=READ_RESPONSES,
    summary="One tracking event (what the 201 of POST .../events names in Location)",
    tags=["shipments"],
)
async def get_event(request: Request, shipment_id: UUID, event_id: UUID) -> Response:
    client = _client(request)
    doc = await db.read(
        state(request).read_pool, lambda conn: shipments.get_event(conn, client, shipment_id, event_id)
    )
    if doc is None:
        raise Problem(404, "not-found", f"No event {event_id} on shipment {shipment_id}.")
    return Response(orjson.dumps(doc), media_type="application/json")


@router.get(
    "/v1/shipments",
    response_model=ShipmentPage,
    responses=READ_RESPONSES,
    summary="The caller's shipments, newest first (keyset pagination)",
    tags=["shipments"],
)
async def list_shipments(
    request: Request,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    client = _client(request)
    doc = await db.read(state(request).read_pool, lambda conn: shipments.page(conn, client, cursor, limit))
    return Response(orjson.dumps(doc), media_type="application/json")


@router.get("/healthz", summary="The process is alive (no dependency is checked)", tags=["operations"])
async def healthz(request: Request) -> dict[str, str]:
    st = state(request)
    return {"status": "alive", "site": st.settings.site, "role": st.settings.site_role}


_SCOPE_QUERY = Query(description="`read`: ready to serve reads (the database answers, even as a hot standby)")


@router.get(
    "/readyz",
    summary="Ready for writes, or with `?scope=read` for reads: ready or not, nothing more",
    responses={503: {**_PROBLEM, "description": "Not ready (why: /readyz/details, internal networks only)"}},
    tags=["operations"],
)
async def readyz(
    request: Request, scope: Annotated[Literal["write", "read"], _SCOPE_QUERY] = "write"
) -> dict[str, str]:
    """The public answer (load balancers' and the failover DNS's checks read only its status): no site,
    dependency or exception text, which /readyz/details gives to the monitoring and load-balancer
    networks only."""
    try:
        await _readiness(request, scope)
    except Problem:
        raise unavailable(
            "This site cannot serve reads now; retry after Retry-After."
            if scope == "read"
            else "This site cannot take writes now; retry after Retry-After.",
            slug="not-ready",
        ) from None
    return {"status": "ready"}


@router.get(
    "/readyz/details",
    summary="Readiness with each dependency's state and why it fails (internal networks only)",
    description=(
        "Served by the API to any caller that reaches it; the on-prem gateway and the cloud edge's WAF "
        "refuse it (403) unless the caller is on a monitoring or load-balancer network."
    ),
    responses={503: {**_PROBLEM, "description": "Not ready; `reasons` says why"}},
    tags=["operations"],
)
async def readyz_details(
    request: Request, scope: Annotated[Literal["write", "read"], _SCOPE_QUERY] = "write"
) -> dict[str, str]:
    return await _readiness(request, scope)


async def _readiness(request: Request, scope: str) -> dict[str, str]:
    if scope == "read":
        return await state(request).readiness.read_report()
    return await state(request).readiness.report()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    tags=["operations"],
)
async def metrics_endpoint(request: Request) -> Response:
    """The process' request metrics and the backlog gauges read from the database (backlog.py)."""
    gauges = await backlog.render(state(request).read_pool)
    return Response(metrics.render() + gauges, media_type=metrics.CONTENT_TYPE)
