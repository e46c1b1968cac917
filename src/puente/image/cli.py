"""`puente image build`: the API's container image (images/api/Containerfile), built locally with podman."""

from __future__ import annotations

import argparse

from puente.image import api


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    image = subparsers.add_parser("image", help="the API's container image, built here with podman")
    sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    build = sub.add_parser(
        "build", help="build localhost/puente-api:VERSION-HASH unless that tag exists (prints every command)"
    )
    build.add_argument(
        "--base", metavar="IMAGE", help="image to take Debian's python3 from (default: the lab's node image)"
    )
    build.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    tag, seconds = api.ensure(args.base)
    took = "" if seconds is None else f" in {seconds:.0f} s"
    print(f"image {tag}{took}: {api.size(tag) / 1e6:.0f} MB, runs as UID {api.RUN_AS}", flush=True)
    print(tag)
    return 0
