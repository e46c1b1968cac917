"""Prometheus metrics of the API process (GET /metrics).

With ``puente-api serve --workers N`` (N > 1) every worker is a process of its own: the serve command
then points PROMETHEUS_MULTIPROC_DIR at a fresh directory and /metrics aggregates all workers.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("puente_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "puente_http_request_duration_seconds",
    "Time from request start to the end of the response",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IDEMPOTENCY = Counter(
    "puente_idempotency_outcomes_total",
    "Idempotent writes by outcome: executed, replayed, conflict (in flight), mismatch (reused key)",
    ["outcome"],
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# The labelled children of the request metrics, looked up once per (method, route, status):
# ``labels()`` takes the metric's lock and validates the labels every time.
# (Made on first use, in the process that serves: with several workers, each child's value lives in a
# file of that worker's pid.)
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_OUTCOME_CHILDREN: dict[str, Any] = {}


def idempotency_outcome(outcome: str) -> None:
    children = _OUTCOME_CHILDREN.get(outcome)
    if children is None:
        children = _OUTCOME_CHILDREN[outcome] = IDEMPOTENCY.labels(outcome)
    children.inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    children = _REQUEST_CHILDREN.get((method, route, status))
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
        _REQUEST_CHILDREN[(method, route, status)] = children
    children[0].inc()
    children[1].observe(seconds)


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
