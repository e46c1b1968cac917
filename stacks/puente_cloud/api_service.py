"""The reference API on EKS: namespace, ServiceAccount, ConfigMap + Secret rendered from the shared
templates (templates/api/*.j2, the same files the `api` role renders on-prem), Deployments with probes
and a locked-down security context, a NodePort Service behind the ALB, HPA and PDB."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from puente.templating import parse_env_file, render

from .base import Component, Tags
from .config import ApiConfig

NAMESPACE = "puente"
SERVICE_ACCOUNT = "puente-api"
CONTAINER_PORT = 8080
RUN_AS = 10001
# Background processes of the API (outbox relay, queue worker, idempotency-key reaper): one container
# each, in one Deployment; they have no port, hence no HTTP probe.
BACKGROUND = ("relay", "worker", "reaper")
# Where every container finds the CA the database's certificates are verified with: the database URLs'
# sslrootcert=, the path the on-prem nodes use (roles/api: api_database_ca_file) and the image test mounts.
DATABASE_CA_FILE = "/etc/puente/database-ca.crt"
DATABASE_CA_CONFIG_MAP = "puente-api-database-ca"
DATABASE_CA_KEY = "database-ca.crt"


@dataclass(frozen=True)
class ApiServiceArgs:
    config: ApiConfig
    provider: k8s.Provider
    image: pulumi.Input[str]
    # Variables of templates/api/runtime.env.j2 and secrets.env.j2 (may be Outputs).
    runtime_vars: Mapping[str, pulumi.Input[Any]]
    secret_vars: Mapping[str, pulumi.Input[Any]]
    # PEM of the CA the database's certificates are verified with (a ConfigMap, at DATABASE_CA_FILE).
    database_ca: str
    health_path: str = "/healthz"
    ready_path: str = "/readyz"


def _manifest(value: dict[str, Any]) -> Any:
    """Kubernetes objects are written as the JSON the API server reads; kubernetes-validate checks them
    strictly in tests, which the SDK's TypedDicts (stricter than JSON for IntOrString fields) cannot."""
    return value


def _env_from_template(
    template: str, variables: Mapping[str, pulumi.Input[Any]]
) -> pulumi.Output[dict[str, str]]:
    return pulumi.Output.all(**variables).apply(lambda v: parse_env_file(render(template, dict(v))))


class ApiService(Component):
    MODULE = "compute"

    def __init__(
        self, name: str, args: ApiServiceArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        cfg = args.config
        self.labels = {
            "app.kubernetes.io/name": "puente-api",
            "app.kubernetes.io/part-of": "puente",
            "app.kubernetes.io/managed-by": "pulumi",
        }
        k8s_opts = self.opts(provider=args.provider)
        ns = k8s.core.v1.Namespace(
            self.child("namespace"),
            metadata={
                "name": NAMESPACE,
                "labels": {**self.labels, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=k8s_opts,
        )
        ns_opts = self.opts(provider=args.provider, depends_on=[ns])
        k8s.core.v1.ServiceAccount(
            self.child("sa"),
            metadata=self._meta(SERVICE_ACCOUNT),
            automount_service_account_token=False,
            opts=ns_opts,
        )
        runtime = _env_from_template("api/runtime.env.j2", args.runtime_vars)
        secret_env: pulumi.Output[dict[str, str]] = pulumi.Output.secret(
            _env_from_template("api/secrets.env.j2", args.secret_vars)
        )
        config_map = k8s.core.v1.ConfigMap(
            self.child("runtime"), metadata=self._meta("puente-api-runtime"), data=runtime, opts=ns_opts
        )
        secret = k8s.core.v1.Secret(
            self.child("secrets"),
            metadata=self._meta("puente-api-secrets"),
            type="Opaque",
            string_data=secret_env,
            opts=ns_opts,
        )
        # Not a secret: a CA certificate. Mounted read-only by every container (all of them connect).
        database_ca = k8s.core.v1.ConfigMap(
            self.child("database-ca"),
            metadata=self._meta(DATABASE_CA_CONFIG_MAP),
            data={DATABASE_CA_KEY: args.database_ca},
            opts=ns_opts,
        )
        # Pods restart when the rendered settings or the CA change (the names of the objects do not; a
        # subPath mount does not follow a ConfigMap's updates).
        checksum = pulumi.Output.all(runtime, secret_env, args.database_ca).apply(
            lambda v: hashlib.sha256(repr(v).encode()).hexdigest()
        )
        env_from = [
            {"configMapRef": {"name": "puente-api-runtime"}},
            {"secretRef": {"name": "puente-api-secrets"}},
        ]
        dep_opts = self.opts(provider=args.provider, depends_on=[ns, config_map, secret, database_ca])

        api_container = {
            **self._container(
                "api",
                args.image,
                ["serve", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)],
                env_from,
                cfg,
            ),
            "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
            "startupProbe": self._probe(args.health_path, period=2, failures=30),
            "livenessProbe": self._probe(args.health_path, period=10, failures=3),
            "readinessProbe": self._probe(args.ready_path, period=5, failures=2),
        }
        # The schema migration is idempotent: every new pod applies it before serving.
        migrate = self._container("migrate", args.image, ["migrate"], env_from, cfg)
        self.deployment = k8s.apps.v1.Deployment(
            self.child("api"),
            metadata=self._meta("puente-api"),
            spec=_manifest(
                {
                    "selector": {"matchLabels": self._selector("api")},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                    },
                    "template": self._pod("api", checksum, [api_container], [migrate]),
                }
            ),
            opts=dep_opts,
        )
        background = [self._container(p, args.image, [p], env_from, cfg) for p in BACKGROUND]
        k8s.apps.v1.Deployment(
            self.child("background"),
            metadata=self._meta("puente-api-background"),
            spec=_manifest(
                {
                    "replicas": 1,
                    "selector": {"matchLabels": self._selector("background")},
                    "strategy": {"type": "Recreate"},
                    "template": self._pod("background", checksum, background, []),
                }
            ),
            opts=dep_opts,
        )
        self.service = k8s.core.v1.Service(
            self.child("service"),
            metadata=self._meta("puente-api"),
            spec=_manifest(
                {
                    "type": "NodePort",
                    "selector": self._selector("api"),
                    "ports": [
                        {
                            "name": "http",
                            "port": 80,
                            "targetPort": "http",
                            "nodePort": cfg.node_port,
                            "protocol": "TCP",
                        }
                    ],
                }
            ),
            opts=ns_opts,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            self.child("hpa"),
            metadata=self._meta("puente-api"),
            spec=_manifest(
                {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "puente-api"},
                    "minReplicas": cfg.replicas_min,
                    "maxReplicas": cfg.replicas_max,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": cfg.cpu_target_percent,
                                },
                            },
                        }
                    ],
                }
            ),
            opts=ns_opts,
        )
        k8s.policy.v1.PodDisruptionBudget(
            self.child("pdb"),
            metadata=self._meta("puente-api"),
            spec=_manifest({"maxUnavailable": 1, "selector": {"matchLabels": self._selector("api")}}),
            opts=ns_opts,
        )
        self.register_outputs(
            {
                "namespace": ns.metadata["name"],
                "deployment": self.deployment.metadata["name"],
                "service": self.service.metadata["name"],
            }
        )

    def _meta(self, name: str) -> Any:
        return {"name": name, "namespace": NAMESPACE, "labels": self.labels}

    def _selector(self, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": "puente-api", "app.kubernetes.io/component": component}

    @staticmethod
    def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    @staticmethod
    def _container(
        name: str, image: pulumi.Input[str], args: list[str], env_from: list[dict[str, Any]], cfg: ApiConfig
    ) -> dict[str, Any]:
        return {
            "name": name,
            "image": image,
            "command": ["puente-api"],
            "args": args,
            "envFrom": env_from,
            "resources": {
                "requests": {"cpu": cfg.cpu_request, "memory": cfg.memory_request},
                "limits": {"cpu": cfg.cpu_limit, "memory": cfg.memory_limit},
            },
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "tmp", "mountPath": "/tmp"},
                {
                    "name": "database-ca",
                    "mountPath": DATABASE_CA_FILE,
                    "subPath": DATABASE_CA_KEY,
                    "readOnly": True,
                },
            ],
        }

    def _pod(
        self,
        component: str,
        checksum: pulumi.Input[str],
        containers: list[dict[str, Any]],
        init: list[dict[str, Any]],
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "serviceAccountName": SERVICE_ACCOUNT,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": containers,
            "volumes": [
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                {
                    "name": "database-ca",
                    "configMap": {
                        "name": DATABASE_CA_CONFIG_MAP,
                        "items": [{"key": DATABASE_CA_KEY, "path": DATABASE_CA_KEY}],
                        "defaultMode": 0o444,
                    },
                },
            ],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": self._selector(component)},
                }
            ],
        }
        if init:
            spec["initContainers"] = init
        return {
            "metadata": {
                "labels": {**self.labels, **self._selector(component)},
                "annotations": {"puente.io/settings-checksum": checksum},
            },
            "spec": spec,
        }
