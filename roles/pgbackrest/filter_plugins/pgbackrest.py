"""Filters of the `pgbackrest` role: repository declarations to pgBackRest options.

A repository is ``{type: s3, s3_bucket, s3_region, s3_endpoint, path, cipher_pass, s3_key?, s3_key_secret?,
s3_uri_style?, port?, ca_file?, retention_full?}`` (roles/pgbackrest/defaults/main.yml). The result is the
``[global]`` options of pgbackrest.conf, repoN-* numbered by position, in a stable order.
Option reference: https://pgbackrest.org/configuration.html (2.45).
"""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

_REQUIRED = ("s3_bucket", "s3_region", "s3_endpoint", "path", "cipher_pass")
_URI_STYLES = ("host", "path")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$")
PLACEHOLDER = "CHANGE-ME"
CA_FILE_ON_NODE = "/etc/pgbackrest/repo{index}-ca.crt"


def _fail(index: int, message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"pgbackrest_repositories[{index}]: {message}")


def _repo(index: int, repo: Any, ca_file_on_node: str) -> list[tuple[str, str]]:
    if not isinstance(repo, dict):
        raise _fail(index, f"must be a mapping, got {repo!r}")
    if repo.get("type", "s3") != "s3":
        raise _fail(index, f"type {repo.get('type')!r}: only s3 is supported")
    missing = [k for k in _REQUIRED if not str(repo.get(k) or "")]
    if missing:
        raise _fail(index, f"missing {', '.join(missing)}")
    if not str(repo["path"]).startswith("/"):
        raise _fail(index, f"path {repo['path']!r} must start with /")
    endpoint = str(repo["s3_endpoint"])
    if not _HOST.match(endpoint):
        raise _fail(index, f"s3_endpoint {endpoint!r} must be a host name or address, without scheme or port")
    style = str(repo.get("s3_uri_style") or "host")
    if style not in _URI_STYLES:
        raise _fail(index, f"s3_uri_style {style!r} must be one of {_URI_STYLES}")
    retention = int(repo.get("retention_full", 2))
    if retention < 1:
        raise _fail(index, "retention_full must be >= 1")
    n = f"repo{index + 1}"
    key = str(repo.get("s3_key") or "")
    out = [
        (f"{n}-type", "s3"),
        (f"{n}-path", str(repo["path"])),
        (f"{n}-s3-bucket", str(repo["s3_bucket"])),
        (f"{n}-s3-endpoint", endpoint),
        (f"{n}-s3-region", str(repo["s3_region"])),
        (f"{n}-s3-uri-style", style),
        (f"{n}-storage-port", str(int(repo.get("port", 443)))),
    ]
    if key:
        out += [(f"{n}-s3-key", key), (f"{n}-s3-key-secret", str(repo.get("s3_key_secret") or ""))]
    else:
        out.append((f"{n}-s3-key-type", "auto"))
    if repo.get("ca_file"):
        out.append((f"{n}-storage-ca-file", ca_file_on_node.format(index=index + 1)))
    out += [
        (f"{n}-cipher-type", "aes-256-cbc"),
        (f"{n}-cipher-pass", str(repo["cipher_pass"])),
        (f"{n}-retention-full", str(retention)),
        # Small files (WAL of a quiet database, most relations) bundled: far fewer S3 requests.
        (f"{n}-bundle", "y"),
    ]
    return out


def pgbackrest_repo_options(repositories: Any, ca_file_on_node: str = CA_FILE_ON_NODE) -> list[list[str]]:
    """``[[option, value], ...]`` for every repository, numbered repo1.. in the list's order."""
    if not isinstance(repositories, list) or not repositories:
        raise AnsibleFilterError("pgbackrest_repositories must be a non-empty list (off-host repositories)")
    if len(repositories) > 256:
        raise AnsibleFilterError("pgBackRest supports at most 256 repositories")
    return [[k, v] for i, repo in enumerate(repositories) for k, v in _repo(i, repo, ca_file_on_node)]


def pgbackrest_repo_ca_files(
    repositories: Any, ca_file_on_node: str = CA_FILE_ON_NODE
) -> list[dict[str, str]]:
    """``[{src, dest}]`` of the CA bundles to install, for the repositories that name one."""
    return [
        {"src": str(repo["ca_file"]), "dest": ca_file_on_node.format(index=i + 1)}
        for i, repo in enumerate(repositories or [])
        if isinstance(repo, dict) and repo.get("ca_file")
    ]


def pgbackrest_placeholders(repositories: Any) -> list[str]:
    """The repository fields still holding the production example's CHANGE-ME placeholder."""
    return [
        f"pgbackrest_repositories[{i}].{k}"
        for i, repo in enumerate(repositories or [])
        if isinstance(repo, dict)
        for k, v in sorted(repo.items())
        if PLACEHOLDER in str(v)
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "pgbackrest_repo_options": pgbackrest_repo_options,
            "pgbackrest_repo_ca_files": pgbackrest_repo_ca_files,
            "pgbackrest_placeholders": pgbackrest_placeholders,
        }
