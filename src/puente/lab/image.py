"""The node image: built by lab/image/build.sh, tagged with the hash of the recipe directory."""

from __future__ import annotations

import hashlib
import time

from puente.lab import paths, podman
from puente.shell import run


def recipe_hash() -> str:
    """Hash of every file of lab/image/ (names, contents, modes): a changed recipe is a new tag."""
    digest = hashlib.sha256()
    for path in sorted(p for p in paths.IMAGE_RECIPE.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(paths.IMAGE_RECIPE)).encode())
        digest.update(oct(path.stat().st_mode & 0o777).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def tag() -> str:
    return f"{paths.IMAGE_REPO}:{recipe_hash()}"


def ensure() -> tuple[str, float | None]:
    """Build the image unless this recipe's tag exists; return (tag, seconds spent building or None)."""
    image = tag()
    if podman.exists("image", image):
        print(f"image {image} is up to date (recipe unchanged)", flush=True)
        return image, None
    start = time.monotonic()
    run([paths.IMAGE_RECIPE / "build.sh", image], env=podman.env())
    return image, time.monotonic() - start


def remove_all() -> None:
    """Every tag of the node image (``lab down --purge``)."""
    out = podman.podman(
        "images", "--format", "{{.Repository}}:{{.Tag}}", paths.IMAGE_REPO, capture=True, quiet=True
    )
    tags = [line for line in out.splitlines() if line.startswith(paths.IMAGE_REPO)]
    if tags:
        podman.podman("rmi", "--force", *tags)
