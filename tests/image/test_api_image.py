"""The API image (images/api/Containerfile, `puente image build`): built here without a registry, then the
very image run against the lab's database and broker, read-only and as the stack's non-root UID.

The container joins the network namespace of an on-prem API node (`--network container:onprem-api1`):
the lab's firewalls let only the API nodes reach HAProxy (PostgreSQL) and RabbitMQ. It listens on
127.0.0.1:18080 there (the node's own API is on 8080), with the node's own environment files, and is
removed whatever happens. The node itself is only read (`cat` of its two environment files)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from puente.image import api
from puente.lab import podman as lab_podman
from puente.lab.inventory import Node
from puente.shell import ROOT, run
from puente.templating import parse_env_file

NAME = "puente-api-image-test"
PORT = 18080
ENV_FILES = ("/etc/puente/api.env", "/etc/puente/api-secrets.env")  # roles/api/vars/main.yml
READY_TIMEOUT = 60.0  # a lab busy converging took 12 s once

# Runs inside the container, with the image's own python3: polls /readyz, prints the last answer.
PROBE = """
import json, sys, time, urllib.error, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
            status, body = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    except OSError as e:
        status, body = 0, repr(e)
    if status == 200 or time.monotonic() > deadline:
        print(json.dumps({"status": status, "body": body}))
        break
    time.sleep(0.5)
"""


def podman(*args: str, check: bool = True) -> str:
    proc = run(["podman", *args], capture=True, check=check)
    # podman prints "failed to connect to syslog" on this kind of host: keep only the rest
    return "\n".join(line for line in proc.stdout.splitlines() if "syslog" not in line)


def stack_run_as() -> int:
    """RUN_AS of stacks/puente_cloud/api_service.py, read without importing Pulumi."""
    tree = ast.parse((ROOT / "stacks" / "puente_cloud" / "api_service.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "RUN_AS" for t in node.targets):
            return int(ast.literal_eval(node.value))
    raise AssertionError("no RUN_AS in stacks/puente_cloud/api_service.py")


def test_image_runs_as_the_stacks_uid() -> None:
    assert api.RUN_AS == stack_run_as() != 0


def test_api_version_is_the_highest_wheel() -> None:
    wheels = [Path(f"puente_api-{v}-py3-none-any.whl") for v in ("0.9.0", "0.10.0", "0.2.1")]
    assert api.api_version([Path("pika-1.4.4-py3-none-any.whl"), *wheels]) == "0.10.0"
    with pytest.raises(FileNotFoundError):
        api.api_version([Path("pika-1.4.4-py3-none-any.whl")])


@pytest.fixture(scope="module")
def image(lab: Any) -> str:
    """Built once per content hash: a second ensure() finds the tag and builds nothing. After the lab
    fixture: `puente lab up` builds the node image and the wheelhouse this image is made from."""
    tag, _ = api.ensure()
    again, seconds = api.ensure()
    assert (again, seconds) == (tag, None)
    return tag


@pytest.fixture(scope="module")
def config(image: str) -> dict[str, Any]:
    out = podman("image", "inspect", image)
    return dict(json.loads(out[out.index("[") :])[0]["Config"])


@pytest.mark.lab
def test_image_config(config: dict[str, Any]) -> None:
    assert config["Entrypoint"] == ["puente-api"]
    assert config["User"] == f"{api.RUN_AS}:{api.RUN_AS}"
    assert config["Cmd"][0] == "serve"


@pytest.fixture(scope="module")
def api_node(lab: Any) -> Node:
    """The first API node of the on-prem site (onprem-api1 in the lab's inventory)."""
    nodes = lab.in_group("api_nodes")
    onprem = [n for n in nodes if n.site.name == "onprem"]
    assert onprem or nodes, "the lab inventory has no API node"
    return (onprem or nodes)[0]


@pytest.fixture(scope="module")
def node_env(api_node: Node, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node's API environment (runtime + secrets), as podman's --env-file reads it (no quoting)."""
    values: dict[str, str] = {}
    for path in ENV_FILES:
        values.update(parse_env_file(podman("exec", api_node.name, "cat", path)))
    assert values.get("PUENTE_DATABASE_URL") and values.get("PUENTE_BROKER_URL"), values.keys()
    env_file = tmp_path_factory.mktemp("api-image") / "api.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return env_file


def _ca_mounts(env_file: Path, api_node: Node, folder: Path) -> list[str]:
    """The CA files the URLs name (amqps' ?cacertfile=, libpq's sslrootcert=) copied from the node and
    mounted read-only at the same paths in the container (on EKS, a mounted ConfigMap would hold them)."""
    mounts = []
    for i, path in enumerate(sorted(set(_CA_PARAM.findall(env_file.read_text())))):
        copy = folder / f"ca-{i}.crt"
        copy.write_text(podman("exec", api_node.name, "cat", path) + "\n")
        mounts += ["--volume", f"{copy}:{path}:ro"]
    return mounts


_CA_PARAM = re.compile(r"(?:cacertfile|sslrootcert)=(/[^&\s]+)")


@pytest.fixture(scope="module")
def container(
    image: str, api_node: Node, node_env: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    podman("rm", "--force", "--ignore", "--time", "0", NAME)  # left by an interrupted run
    mounts = _ca_mounts(node_env, api_node, tmp_path_factory.mktemp("api-image-ca"))
    try:
        podman(
            "run", "--detach", "--name", NAME,
            "--network", f"container:{api_node.name}",
            # as on EKS: read-only root, /tmp an emptyDir-like tmpfs, no capabilities, no user given
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m,mode=1777",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--env-file", str(node_env),
            *mounts,
            image, "serve", "--host", "127.0.0.1", "--port", str(PORT),
        )  # fmt: skip
        yield NAME
    finally:
        print(podman("logs", "--tail", "30", NAME, check=False))
        lab_podman.remove(NAME)  # retries once when podman's first attempt fails
        assert not lab_podman.exists("container", NAME), f"{NAME} was not removed"


@pytest.mark.lab
def test_readyz_is_200_against_the_labs_database_and_broker(container: str, api_node: Node) -> None:
    url = f"http://127.0.0.1:{PORT}/readyz/details"
    out = podman("exec", container, "python3", "-c", PROBE, url, str(READY_TIMEOUT))
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["status"] == 200, answer
    body = json.loads(answer["body"])
    assert body["status"] == "ready"
    assert (body["database"], body["broker"]) == ("ok", "ok")
    assert body["site"] == api_node.site.name


@pytest.mark.lab
def test_server_process_runs_as_the_non_root_uid(container: str) -> None:
    out = podman("inspect", "--format", "{{.State.Pid}}", container)
    pid = int(out.strip().splitlines()[-1])
    status = Path(f"/proc/{pid}/status").read_text()
    lines = [line.split() for line in status.splitlines()]
    ids = {f[0]: f[1:] for f in lines if f and f[0] in {"Uid:", "Gid:"}}
    assert ids == {"Uid:": [str(api.RUN_AS)] * 4, "Gid:": [str(api.RUN_AS)] * 4}
    assert "puente-api" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()


@pytest.mark.lab
def test_root_file_system_is_read_only_and_tmp_writable(container: str) -> None:
    out = podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", container)
    assert out.strip().splitlines()[-1] == "true"
    # even root gets EROFS outside /tmp; the API's user can write /tmp (prometheus, tempfile)
    check = (
        "import errno, os, tempfile\n"
        "for path in ('/probe', '/opt/puente-api/probe', '/etc/probe'):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "    except OSError as e:\n"
        "        assert e.errno == errno.EROFS, (path, e)\n"
        "    else:\n"
        "        raise AssertionError(path + ' is writable')\n"
        "print('ro ok')\n"
    )
    assert "ro ok" in podman("exec", "--user", "0", container, "python3", "-c", check)
    tmp = "import tempfile; tempfile.NamedTemporaryFile(); print('tmp ok')"
    assert "tmp ok" in podman("exec", container, "python3", "-c", tmp)


@pytest.mark.lab
def test_image_has_no_shell_nor_package_tools(container: str) -> None:
    paths = ["/bin/sh", "/bin/bash", "/usr/bin/apt-get", "/usr/bin/dpkg", "/usr/bin/gcc", "/usr/bin/pip3"]
    code = f"import os, json; print(json.dumps([p for p in {paths!r} if os.path.lexists(p)]))"
    out = podman("exec", container, "python3", "-c", code)
    assert json.loads(out.strip().splitlines()[-1]) == []
