"""The API image: images/api/Containerfile, built from the lab's node image and the API's wheelhouse,
tagged ``localhost/puente-api:VERSION-HASH`` where HASH covers everything that goes into it (recipe, base
image, wheels, the pip that installs them), so a build happens only when one of them changed."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from puente.lab import image as lab_image
from puente.lab import paths, podman, wheelhouse
from puente.shell import ROOT, run

RECIPE = ROOT / "images" / "api"
CONTAINERFILE = RECIPE / "Containerfile"
CONTEXT = ROOT / ".cache" / "api-image" / "context"
REPO = "localhost/puente-api"
RUN_AS = 10001
"""The UID the image runs as; the stack's pods use the same (RUN_AS in stacks/puente_cloud/api_service.py)."""
PORT = 8080
_WHEEL = re.compile(r"^puente_api-([^-]+)-")


@dataclass(frozen=True)
class Inputs:
    base: str
    version: str
    wheels: tuple[Path, ...]
    pip: Path

    @cached_property
    def digest(self) -> str:
        """Hash of the recipe files, the base image's tag, the wheels and pip (names, modes, contents)."""
        h = hashlib.sha256(self.base.encode())
        files = [p for p in sorted(RECIPE.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
        files += list(self.wheels)
        files += sorted(p for p in self.pip.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(oct(path.stat().st_mode & 0o777).encode())
            h.update(path.read_bytes())
        return h.hexdigest()[:12]

    def tag(self) -> str:
        return f"{REPO}:{self.version}-{self.digest}"


def api_version(wheels: list[Path]) -> str:
    """The highest puente-api version in the wheelhouse (what the `api` role installs by default)."""
    versions = [m[1] for w in wheels if (m := _WHEEL.match(w.name))]
    if not versions:
        raise FileNotFoundError(f"no puente_api-*.whl in {paths.WHEELHOUSE}")
    return max(versions, key=lambda v: tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", v)))


def _venv_pip() -> Path:
    found = sorted((ROOT / ".venv" / "lib").glob("python3*/site-packages/pip"))
    if not found:
        raise FileNotFoundError("no pip in .venv (run scripts/bootstrap.sh)")
    return found[-1]


def inputs(base: str | None = None) -> Inputs:
    """What the image is built from; builds the wheelhouse and the lab's node image first if missing."""
    wheelhouse.ensure()
    if base is None:
        base, _ = lab_image.ensure()
    wheels = sorted(paths.WHEELHOUSE.glob("*.whl"))
    return Inputs(base=base, version=api_version(wheels), wheels=tuple(wheels), pip=_venv_pip())


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def build(src: Inputs, tag: str) -> None:
    """Assemble the build context, then ``podman build`` it without a network."""
    run(["rm", "-rf", _rel(CONTEXT)])
    run(["mkdir", "-p", _rel(CONTEXT / "wheels")])
    run(["cp", _rel(RECIPE / "rootfs.py"), _rel(CONTEXT)])
    run(["cp", "-a", _rel(src.pip), _rel(CONTEXT / "pip")])
    run(["cp", *[_rel(w) for w in src.wheels], _rel(CONTEXT / "wheels")])
    # An absolute CONTAINERS_CONF: buildah's copier runs in another directory and would not find lab/...
    conf = {"CONTAINERS_CONF": str(paths.CONTAINERS_CONF)}
    argv = [
        "podman",
        "build",
        "--pull=never",
        "--network=none",
        # no intermediate images: the content tag is the cache (a build happens only when an input changed)
        "--layers=false",
        "--file", _rel(CONTAINERFILE),
        "--build-arg", f"BASE={src.base}",
        "--build-arg", f"API_VERSION={src.version}",
        "--label", "org.opencontainers.image.title=puente-api",
        "--label", f"org.opencontainers.image.version={src.version}",
        "--label", f"io.puente.image.recipe={src.digest}",
        "--tag", tag,
        _rel(CONTEXT),
    ]  # fmt: skip
    run(argv, env=conf)


def ensure(base: str | None = None) -> tuple[str, float | None]:
    """Build the image unless its content tag exists; return (tag, seconds spent building or None)."""
    src = inputs(base)
    tag = src.tag()
    if podman.exists("image", tag):
        print(f"image {tag} is up to date (inputs unchanged)", flush=True)
        return tag, None
    start = time.monotonic()
    build(src, tag)
    return tag, time.monotonic() - start


def size(tag: str) -> int:
    """The image's size in bytes, as podman reports it."""
    out = podman.podman("image", "inspect", "--format", "{{.Size}}", tag, capture=True, quiet=True)
    return int(out.strip().splitlines()[-1])
