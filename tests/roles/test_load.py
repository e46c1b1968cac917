"""The request path under load: gateway -> HAProxy -> API nodes while things happen to the API nodes.

Each test sends a bounded, fixed-rate mix of reads and writes (every write carries an Idempotency-Key)
through the gateway like a client would, does something disruptive meanwhile, and counts every answer
that is not the expected success — a 5xx, a 429, a timeout, a reset — as a client-visible error (a 409
idempotency-key-in-flight is retried after its Retry-After, as the API asks, and counted apart):
- an API process killed with SIGKILL and kept down for a while (the node is dead, then comes back);
- a health-gated rolling deploy of a new release, then back to the original one;
- a deploy of a release that fails its /readyz gate: rolled back on the first node, the play stops;
- scale-out: a third API node added with `puente lab scale`, which then takes traffic, and removed again.
The expected outcome is 0 errors each time. Durations are bounded; nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from lab_requests import CA, EDGES, REPO, SHIPMENT

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.destructive, pytest.mark.usefixtures("lab")]

WHEELHOUSE = REPO / ".cache" / "wheelhouse"
URL = f"https://{EDGES['onprem']}"
EDGE = "onprem-edge1"
API_NODES = {"onprem-api1": "10.89.1.21", "onprem-api2": "10.89.1.22"}
# Requests per second: well under the gateway's per-client rate limit, enough for a few thousand requests.
RATE = 20.0
CLIENT_TIMEOUT_S = 40.0
# Retries of a POST answered 409 idempotency-key-in-flight (Retry-After: 1) before it counts as an error.
IN_FLIGHT_RETRIES = 3


@dataclass
class LoadResult:
    sent: int = 0
    ok: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    in_flight_retries: int = 0
    """POSTs answered 409 idempotency-key-in-flight, then retried with the same key after Retry-After."""

    def summary(self) -> str:
        shown = Counter(self.errors).most_common(8)
        return (
            f"sent={self.sent} ok={dict(self.ok)} errors={len(self.errors)} {shown}"
            f" in-flight retries={self.in_flight_retries}"
        )


class Load:
    """Fixed-rate traffic through the gateway, in a thread of its own, until stop()."""

    def __init__(self, api_key: str, rate: float = RATE) -> None:
        self.api_key = api_key
        self.rate = rate
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._created: list[str] = []

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        if self._stop.is_set():
            return self.result
        self._stop.set()
        self._thread.join(timeout=CLIENT_TIMEOUT_S + 30)
        unfinished = self.result.sent - sum(self.result.ok.values()) - len(self.result.errors)
        self.result.errors += ["unfinished"] * unfinished
        return self.result

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(
            base_url=URL,
            verify=ssl.create_default_context(cafile=CA),
            timeout=CLIENT_TIMEOUT_S,
            limits=limits,
            headers={"Authorization": f"Bearer {self.api_key}"},
        ) as client:
            tasks: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            for i in itertools.count():
                if self._stop.is_set():
                    break
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._one(client, i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT_S + 20)

    async def _one(self, client: httpx.AsyncClient, i: int) -> None:
        self.result.sent += 1
        kind = ("post", "get", "list")[i % 3] if self._created else "post"
        try:
            if kind == "post":
                # A key in flight is retried after Retry-After, as the 409 asks ("retry it later"). It
                # happens when HAProxy replays a POST whose first attempt died with its node while the
                # database was still committing it; the retry then gets the stored 201.
                key = {"Idempotency-Key": f'"load-{uuid.uuid4()}"'}
                r = await client.post("/v1/shipments", json=SHIPMENT, headers=key)
                for _ in range(IN_FLIGHT_RETRIES):
                    if r.status_code != 409 or "idempotency-key-in-flight" not in r.text:
                        break
                    self.result.in_flight_retries += 1
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    r = await client.post("/v1/shipments", json=SHIPMENT, headers=key)
                expected = 201
                if r.status_code == expected:
                    self._created.append(r.json()["id"])
            elif kind == "get":
                r = await client.get(f"/v1/shipments/{self._created[i % len(self._created)]}")
                expected = 200
            else:
                r = await client.get("/v1/shipments", params={"limit": 5})
                expected = 200
        except httpx.HTTPError as exc:
            self.result.errors.append(f"{kind}: {type(exc).__name__}")
            return
        if r.status_code == expected:
            self.result.ok[kind] += 1
        else:
            self.result.errors.append(f"{kind}: {r.status_code} {r.text[:120]}")


def _playbook(*args: str) -> tuple[int, str, float]:
    argv = [
        str(REPO / ".venv/bin/ansible-playbook"), "-i", "inventories/lab",
        "--vault-password-file", "inventories/lab/vault-password.lab-only", *args,
    ]  # fmt: skip
    print("+", " ".join(argv), file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def _wait_ready_in_haproxy(node: Callable, server: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    cmd = "echo 'show servers state api' | socat stdio unix-connect:/run/haproxy/admin.sock"
    while time.monotonic() < deadline:
        rows = [line.split() for line in node(EDGE).check_output(cmd).splitlines()[2:]]
        if any(r[3] == server and r[5] == "2" and r[6] == "0" for r in rows if len(r) > 6):
            return
        time.sleep(1)
    raise AssertionError(f"{server} not up in HAProxy after {timeout_s} s")


def _current_release(node: Callable, name: str) -> str:
    return Path(node(name).check_output("readlink /opt/puente-api/current")).name


def _installed_version() -> str:
    wheels = sorted(WHEELHOUSE.glob("puente_api-*.whl"))
    assert wheels, f"no puente_api wheel in {WHEELHOUSE}"
    return wheels[-1].name.split("-")[1]


def _build_release(tmp: Path, version: str, *, broken: bool = False) -> Path:
    """A wheelhouse holding the lab's dependency wheels and puente-api rebuilt as `version`
    (`broken`: its `serve` exits at once, so the release can never pass the /readyz gate)."""
    src = tmp / "api"
    shutil.copytree(REPO / "api", src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "tests"))
    current = _installed_version()
    for rel in ("pyproject.toml", "src/puente_api/__init__.py"):
        path = src / rel
        text = path.read_text()
        assert f'"{current}"' in text, f"no version {current} in {rel}"
        path.write_text(text.replace(f'"{current}"', f'"{version}"', 1))
    if broken:
        main = src / "src/puente_api/__main__.py"
        text, n = re.subn(
            r"(def _serve\(.*\) -> int:\n)", r'\1    raise SystemExit("broken on purpose (test_load)")\n',
            main.read_text(),
        )  # fmt: skip
        assert n == 1, "could not find _serve() to break it"
        main.write_text(text)
    house = tmp / "wheelhouse"
    house.mkdir()
    for wheel in WHEELHOUSE.glob("*.whl"):
        if not wheel.name.startswith("puente_api-"):
            shutil.copy(wheel, house)
    pip = str(REPO / ".venv/bin/pip")
    subprocess.run([pip, "wheel", "-q", "--no-deps", str(src), "-w", str(house)], check=True)
    return house


def test_api_node_killed_under_load(node: Callable, api_key: str) -> None:
    api1 = node("onprem-api1")
    try:
        with Load(api_key) as load:
            time.sleep(10)
            # The API's processes die at once (in-flight requests with them) and stay down for 20 s.
            api1.check_output(
                "systemctl kill --signal=KILL puente-api.service && systemctl stop puente-api.service"
            )
            time.sleep(20)
            api1.check_output("systemctl start puente-api.service")
            _wait_ready_in_haproxy(node, "onprem-api1")
            time.sleep(15)
        result = load.result
    finally:
        api1.run("systemctl start puente-api.service")
    print(result.summary())
    assert result.sent >= RATE * 40
    assert result.errors == [], result.summary()


@pytest.fixture
def original_release(node: Callable):
    """Puts the lab's own release back on every API node afterwards (with the deploy itself)."""
    before = {name: _current_release(node, name) for name in API_NODES}
    yield before
    # Every API node of the inventory (other sites' too), whatever the test left behind.
    rc, out, _ = _playbook("playbooks/deploy.yml", "-e", f"api_version={_installed_version()}")
    assert rc == 0, out[-4000:]


# A deploy restarts every API node in turn: minutes on a busy 2-core machine (bounded, not timed).
@pytest.mark.timeout(2400)
def test_rolling_deploy_under_load(
    node: Callable, tmp_path: Path, original_release: dict[str, str], api_key: str
) -> None:
    version = f"{_installed_version()}.post9001"
    house = _build_release(tmp_path, version)
    with Load(api_key) as load:
        time.sleep(5)
        rc, out, deploy_s = _playbook(
            "playbooks/deploy.yml", "-e", f"api_version={version}", "-e", f"api_wheelhouse_dir={house}"
        )
        time.sleep(5)
    print(f"deploy of {version}: {deploy_s:.0f} s; {load.result.summary()}")
    assert rc == 0, out[-6000:]
    for name, ip in API_NODES.items():
        assert _current_release(node, name).startswith(f"{version}-")
        served = node(EDGE).check_output(f"curl -s -m 5 http://{ip}:8080/openapi.json")
        assert f'"version":"{version}"' in served.replace(" ", "")
    # ...and back to the original release, also under load.
    with Load(api_key) as back:
        rc, out, back_s = _playbook("playbooks/deploy.yml", "-e", f"api_version={_installed_version()}")
    print(f"deploy back: {back_s:.0f} s; {back.result.summary()}")
    assert rc == 0, out[-6000:]
    assert {name: _current_release(node, name) for name in API_NODES} == original_release
    assert load.result.errors == [], load.result.summary()
    assert back.result.errors == [], back.result.summary()


@pytest.mark.timeout(1800)
def test_failed_gate_rolls_back_and_stops_under_load(
    node: Callable, tmp_path: Path, original_release: dict[str, str], api_key: str
) -> None:
    version = f"{_installed_version()}.post9002"
    house = _build_release(tmp_path, version, broken=True)
    with Load(api_key) as load:
        rc, out, _ = _playbook(
            "playbooks/deploy.yml", "-e", f"api_version={version}", "-e", f"api_wheelhouse_dir={house}",
            "-e", "api_readyz_retries=10",
        )  # fmt: skip
        time.sleep(3)
    print(load.result.summary())
    assert rc != 0, "the deploy of a release that never gets ready must fail"
    assert "failed the /readyz gate" in out
    # the first node is back on its release and in rotation; the second was never touched
    assert {name: _current_release(node, name) for name in API_NODES} == original_release
    for name in API_NODES:
        _wait_ready_in_haproxy(node, name, timeout_s=10)
    assert load.result.errors == [], load.result.summary()


def _lab_scale(count: int) -> tuple[int, str]:
    argv = [str(REPO / ".venv/bin/puente"), "lab", "scale", f"api={count}"]
    print("+", " ".join(argv), file=sys.stderr, flush=True)
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.timeout(2400)
def test_scale_out_under_load(node: Callable, api_key: str) -> None:
    stat = "echo 'show stat -1 4 -1' | socat stdio unix-connect:/run/haproxy/admin.sock"
    try:
        with Load(api_key) as load:
            rc, out = _lab_scale(3)
            assert rc == 0, out[-6000:]
            _wait_ready_in_haproxy(node, "onprem-api3")
            time.sleep(10)
        lines = node(EDGE).check_output(stat).splitlines()
        col = lines[0].lstrip("# ").split(",").index("stot")
        sessions = {f[1]: int(f[col]) for f in (line.split(",") for line in lines[1:]) if f[0] == "api"}
    finally:
        with Load(api_key) as down:
            rc_down, out_down = _lab_scale(2)
    print(f"scale out: {load.result.summary()}; scale in: {down.result.summary()}")
    assert sessions.get("onprem-api3", 0) > 0, sessions
    assert load.result.errors == [], load.result.summary()
    assert rc_down == 0, out_down[-6000:]
    assert down.result.errors == [], down.result.summary()
