"""Property-based contract test: schemathesis generates valid and invalid requests from the OpenAPI document,
sends them to the running server with a valid API key (a client of its own per operation), and every
response must be documented (status, content type, headers, body schema) and never a 5xx. Bounded
(max_examples per operation and generation mode) to stay well under a minute on two cores."""

from __future__ import annotations

import httpx
import schemathesis
from api_helpers import Caller, make_env
from api_servers import APIServer
from hypothesis import HealthCheck, settings
from puente_api import settings as settings_mod
from puente_api.app import openapi_document
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The document is built at collection time (the server starts later, in a fixture);
# test_served_document_is_the_tested_one proves the server serves this very document.
SPEC = openapi_document(settings_mod.load(make_env("postgresql://u@127.0.0.1:1/db", "amqp://g@127.0.0.1:1/")))
schema = schemathesis.openapi.from_dict(SPEC)


def test_served_document_is_the_tested_one(api: APIServer) -> None:
    assert httpx.get(f"{api.base_url}/openapi.json").json() == SPEC


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_response_matches_the_contract(case: schemathesis.Case, api: APIServer, caller: Caller) -> None:
    case.call_and_validate(base_url=api.base_url, checks=CHECKS, headers=caller.auth)


def test_the_document_declares_the_api_key_scheme() -> None:
    assert SPEC["components"]["securitySchemes"] == {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "pk_<key id>_<secret>",
            "description": SPEC["components"]["securitySchemes"]["apiKey"]["description"],
        }
    }
    assert SPEC["security"] == [{"apiKey": []}]
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if path in ("/healthz", "/readyz", "/readyz/details", "/metrics", "/openapi.json"):
                assert operation["security"] == [], (method, path)
            else:
                assert "security" not in operation, (method, path)  # the global requirement applies
                assert {"401", "429"} <= set(operation["responses"]), (method, path)
                unauthorized = operation["responses"]["401"]
                assert "WWW-Authenticate" in unauthorized["headers"]
                assert "application/problem+json" in unauthorized["content"]
                assert "Retry-After" in operation["responses"]["429"]["headers"]
            names = [p["name"].lower() for p in operation.get("parameters", [])]
            assert "x-client-id" not in names, (method, path)
