"""An unchanged `lab up` only verifies: the converge stamp must notice every kind of change."""

from __future__ import annotations

from pathlib import Path

import pytest

from puente.lab import stamp

IMAGE = "localhost/puente-lab-node:abc"
NODES = {"onprem-api1": "id1", "onprem-db1": "id2"}


@pytest.fixture
def stamp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "converged.json"
    monkeypatch.setattr(stamp, "STAMP", path)
    monkeypatch.setattr(stamp.paths, "CACHE", tmp_path)
    return path


def test_unchanged_after_record(stamp_file: Path) -> None:
    assert stamp.unchanged(IMAGE, NODES) is None
    stamp.record(IMAGE, NODES)
    assert stamp.unchanged(IMAGE, NODES)


def test_a_recreated_node_a_new_image_or_a_forgotten_stamp_mean_converge(stamp_file: Path) -> None:
    stamp.record(IMAGE, NODES)
    assert stamp.unchanged(IMAGE, {**NODES, "onprem-db1": "id3"}) is None
    assert stamp.unchanged(IMAGE, {"onprem-api1": "id1"}) is None
    assert stamp.unchanged("localhost/puente-lab-node:def", NODES) is None
    stamp.forget()
    assert stamp.unchanged(IMAGE, NODES) is None


def test_an_edited_input_means_converge(
    stamp_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all: {}\n")
    monkeypatch.setattr(stamp.paths, "INVENTORY", inventory)
    stamp.record(IMAGE, NODES)
    assert stamp.unchanged(IMAGE, NODES)
    (inventory / "hosts.yml").write_text("all: {children: {}}\n")
    assert stamp.unchanged(IMAGE, NODES) is None


def test_a_corrupt_stamp_means_converge(stamp_file: Path) -> None:
    stamp_file.write_text("{not json")
    assert stamp.unchanged(IMAGE, NODES) is None
