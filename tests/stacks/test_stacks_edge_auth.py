"""Authentication at the cloud edge: every public path of the real program ends in the API's own check.

The API authenticates each request itself (`Authorization: Bearer <API key>`, keys in the replicated
database). The cloud edge declares no second check; these tests read the recorded graph to show that both
public paths (the ALB directly, API Gateway -> VPC link -> the same listener) reach the API's target group
and nothing else, pass Authorization unchanged, never hand a client's X-Client-Id to the API, and serve
/metrics and the detailed readiness (/readyz/details) to the monitoring networks only. The WAF rules and
API Gateway's parameter mapping are replayed on requests by a small interpreter of the statements the
program uses (what AWS does with them is documented, not run here: docs/CLOUD.md, What is verified here).
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest
from puente_cloud import edge as edge_module
from stacks_helpers import stack_config

from puente.pulumikit import RecordedResource, Recording

INTEGRATION = "aws:apigatewayv2/integration:Integration"
ROUTE = "aws:apigatewayv2/route:Route"
LISTENER = "aws:lb/listener:Listener"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
# The paths the API serves without a key (api/src/puente_api/auth.py OPEN_PATHS), and those of them for the
# monitoring networks only (INTERNAL_PATHS).
OPEN_PATHS = ("/healthz", "/readyz", "/readyz/details", "/metrics", "/openapi.json")
INTERNAL_PATHS = (edge_module.METRICS_PATH, edge_module.READINESS_DETAILS_PATH)
TOKEN = "Bearer pk_abcdefgh_" + "x" * 43


def _named(rec: Recording, type_: str, name: str) -> RecordedResource:
    (found,) = [r for r in rec.of_type(type_) if r.name == name]
    return found


def _deps(rec: Recording, res: RecordedResource, prop: str) -> list[RecordedResource]:
    return [rec.by_urn(u) for u in res.property_dependencies.get(prop, ())]


def _network(rec: Recording) -> dict[str, Any]:
    """The stack's filled-in network settings."""
    network: dict[str, Any] = stack_config(rec.stack)[1]["puente:network"]
    return network


# --- the graph -----------------------------------------------------------------------------------------
def test_api_gateway_has_one_route_to_the_api_listener_and_no_check_of_its_own(any_stack: Recording) -> None:
    (route,) = any_stack.of_type(ROUTE)
    (integration,) = any_stack.of_type(INTEGRATION)
    assert route.inputs["routeKey"] == "$default" and route.inputs["authorizationType"] == "NONE"
    assert _deps(any_stack, route, "target") == [integration]
    # no authorizer (a second key store), no Lambda or mock that could answer in the API's place
    assert not [
        r for r in any_stack.custom() if r.type.startswith(("aws:lambda/", "aws:apigatewayv2/author"))
    ]
    assert integration.inputs["integrationType"] == "HTTP_PROXY"
    assert integration.inputs["connectionType"] == "VPC_LINK"
    assert _deps(any_stack, integration, "integrationUri") == [_named(any_stack, LISTENER, "edge-https")]
    assert integration.inputs["requestParameters"] == {
        "overwrite:path": "$request.path",
        "remove:header.x-client-id": "''",
    }


def test_the_alb_forwards_every_request_to_the_api_target_group(any_stack: Recording) -> None:
    https = _named(any_stack, LISTENER, "edge-https")
    (action,) = https.inputs["defaultActions"]
    (target_group,) = _deps(any_stack, https, "defaultActions")
    assert action["type"] == "forward" and target_group.name == "edge-api"
    assert target_group.inputs["targetType"] == "instance"
    assert any_stack.of_type("aws:lb/listenerRule:ListenerRule") == []  # no path answered by the ALB itself
    (association,) = any_stack.of_type("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert _deps(any_stack, association, "resourceArn") == [
        _named(any_stack, "aws:lb/loadBalancer:LoadBalancer", "edge-alb")
    ]
    assert _deps(any_stack, association, "webAclArn") == [any_stack.one(WEB_ACL)]


def test_internal_paths_are_for_the_onprem_networks_never_the_vpc(any_stack: Recording) -> None:
    ip_set = any_stack.one("aws:wafv2/ipSet:IpSet")
    network = _network(any_stack)
    assert ip_set.inputs["addresses"] == network["onpremCidrs"]
    vpc = ipaddress.ip_network(network["vpcCidr"])
    assert not any(ipaddress.ip_network(a).overlaps(vpc) for a in ip_set.inputs["addresses"])
    assert _deps(any_stack, any_stack.one(WEB_ACL), "rules") == [ip_set]


def test_refusals_are_problem_documents(dev: Recording) -> None:
    acl = dev.one(WEB_ACL).inputs
    bodies = {b["key"]: b for b in acl["customResponseBodies"]}
    for rule in acl["rules"]:
        custom = rule["action"]["block"].get("customResponse")
        if custom is None:
            continue
        body = bodies[custom["customResponseBodyKey"]]
        assert body["contentType"] == "APPLICATION_JSON"
        problem = json.loads(body["content"])
        assert problem["status"] == custom["responseCode"] and problem["type"] == "about:blank"
        assert set(problem) == {"type", "title", "status", "detail"}


# --- the rules replayed on requests ----------------------------------------------------------------------
@dataclass
class Request:
    path: str
    source: str
    headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers.items() if k.lower() == name.lower()]
        return ",".join(found) if found else None


def _transform(value: str, transformations: list[dict[str, Any]]) -> str:
    for t in sorted(transformations, key=lambda t: t["priority"]):
        match t["type"]:
            case "NONE":
                pass
            case "URL_DECODE":
                value = unquote(value)
            case "NORMALIZE_PATH":  # multiple slashes, ./ and ../ (not at the beginning) removed
                value = posixpath.normpath(value).replace("//", "/") + ("/" if value.endswith("/") else "")
            case other:
                raise AssertionError(f"transformation {other} is not interpreted here")
    return value


def _field(request: Request, field_to_match: dict[str, Any]) -> str | None:
    if "singleHeader" in field_to_match:
        return request.header(field_to_match["singleHeader"]["name"])
    if "uriPath" in field_to_match:
        return request.path
    raise AssertionError(f"field {field_to_match} is not interpreted here")


def _matches(statement: dict[str, Any], request: Request, ip_sets: dict[str, list[str]]) -> bool:
    ((kind, s),) = statement.items()
    match kind:
        case "rateBasedStatement":
            return False  # one request at a time: never over the rate
        case "andStatement":
            return all(_matches(x, request, ip_sets) for x in s["statements"])
        case "notStatement":
            return not _matches(s["statement"], request, ip_sets)
        case "ipSetReferenceStatement":
            assert "ipSetForwardedIpConfig" not in s
            source = ipaddress.ip_address(request.source)
            return any(source in ipaddress.ip_network(n) for n in ip_sets[s["arn"]])
        case "sizeConstraintStatement":
            value = _field(request, s["fieldToMatch"])
            if value is None:
                return False
            size = len(_transform(value, s["textTransformations"]).encode())
            ops = {"GT": size > s["size"], "GE": size >= s["size"], "EQ": size == s["size"]}
            return ops[s["comparisonOperator"]]
        case "byteMatchStatement":
            value = _field(request, s["fieldToMatch"])
            if value is None:
                return False
            value, wanted = _transform(value, s["textTransformations"]), s["searchString"]
            positions = {
                "STARTS_WITH": value.startswith(wanted),
                "EXACTLY": value == wanted,
                "CONTAINS": wanted in value,
            }
            return positions[s["positionalConstraint"]]
    raise AssertionError(f"statement {kind} is not interpreted here")


def waf(rec: Recording, request: Request) -> int | None:
    """The status the ALB's web ACL answers with, or None when it lets the request through to the API."""
    acl = rec.one(WEB_ACL).inputs
    ip_sets = {r.outputs["arn"]: r.inputs["addresses"] for r in rec.of_type("aws:wafv2/ipSet:IpSet")}
    for rule in sorted(acl["rules"], key=lambda r: r["priority"]):
        if _matches(rule["statement"], request, ip_sets):
            (action,) = rule["action"]
            if action == "block":
                return int(rule["action"]["block"].get("customResponse", {}).get("responseCode", 403))
            return None
    assert "allow" in acl["defaultAction"]
    return None


def api_gateway(rec: Recording, request: Request, link_address: str) -> Request:
    """The request as the VPC link sends it to the ALB: the integration's parameter mapping applied."""
    headers = dict(request.headers)
    path = request.path
    for key, value in rec.one(INTEGRATION).inputs["requestParameters"].items():
        action, _, target = key.partition(":")
        if target == "path":
            assert (action, value) == ("overwrite", "$request.path")
        elif target.startswith("header."):
            name = target[len("header.") :]
            assert name.lower() not in ("authorization",), (
                "a reserved header: API Gateway refuses the mapping"
            )
            assert action == "remove" and value == "''"
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
    return Request(path, link_address, headers)


INTERNET = "52.48.27.22"
ONPREM_MONITORING = "10.89.1.40"  # inside Pulumi.dev.yaml's onpremCidrs, over the VPN
VPC_LINK = "10.60.130.17"  # an ENI of the VPC link in a private subnet of dev's VPC


@pytest.mark.parametrize(
    ("path", "source", "headers", "status"),
    [
        ("/v1/shipments", INTERNET, {"Authorization": TOKEN}, None),
        ("/v1/shipments", INTERNET, {}, None),  # no key: the API answers its 401, not the edge
        ("/v1/shipments", INTERNET, {"Authorization": TOKEN, "X-Client-Id": "shop-1"}, 400),
        ("/v1/shipments/s1", INTERNET, {"x-client-id": "shop-2"}, 400),
        ("/healthz", INTERNET, {}, None),
        ("/readyz", INTERNET, {}, None),  # Route 53's health checkers: /readyz?scope=read
        ("/openapi.json", INTERNET, {}, None),
        ("/metrics", INTERNET, {}, 403),
        ("/metrics", VPC_LINK, {}, 403),
        ("/metrics/", INTERNET, {}, 403),
        ("/%6detrics", INTERNET, {}, 403),
        ("//metrics", INTERNET, {}, 403),
        ("/v1/../metrics", INTERNET, {}, 403),
        ("/metrics", INTERNET, {"X-Forwarded-For": ONPREM_MONITORING}, 403),
        ("/metrics", ONPREM_MONITORING, {}, None),
        ("/readyz?scope=read", INTERNET, {}, None),
        ("/readyz/details", INTERNET, {}, 403),
        ("/readyz/details", VPC_LINK, {}, 403),
        ("/readyz/details/", INTERNET, {}, 403),
        ("/readyz%2Fdetails", INTERNET, {}, 403),
        ("/readyz//details", INTERNET, {}, 403),
        ("/readyz/./details", INTERNET, {}, 403),
        ("/readyz/details", INTERNET, {"X-Forwarded-For": ONPREM_MONITORING}, 403),
        ("/readyz/details", ONPREM_MONITORING, {}, None),
    ],
)
def test_the_alb_web_acl(
    path: str, source: str, headers: dict[str, str], status: int | None, dev: Recording
) -> None:
    assert waf(dev, Request(path, source, headers)) == status


def test_through_api_gateway_the_client_id_is_removed_and_authorization_kept(dev: Recording) -> None:
    sent = Request(
        "/v1/shipments", INTERNET, {"Authorization": TOKEN, "X-Client-Id": "shop-1", "x-client-id": "b"}
    )
    forwarded = api_gateway(dev, sent, VPC_LINK)
    assert forwarded.headers == {"Authorization": TOKEN}
    assert waf(dev, forwarded) is None  # so the API gets it, and checks the key
    # and /metrics stays closed on that path too: the VPC link is not a monitoring network
    assert waf(dev, api_gateway(dev, Request("/metrics", INTERNET), VPC_LINK)) == 403
    assert waf(dev, api_gateway(dev, Request("/readyz/details", INTERNET), VPC_LINK)) == 403


def test_every_open_path_but_the_internal_ones_is_public(dev: Recording) -> None:
    public = [p for p in OPEN_PATHS if waf(dev, Request(p, INTERNET)) is None]
    assert public == [p for p in OPEN_PATHS if p not in INTERNAL_PATHS]
    assert all(waf(dev, Request(p, ONPREM_MONITORING)) is None for p in OPEN_PATHS)
