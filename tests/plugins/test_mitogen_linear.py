"""The project's Mitogen strategy shim (plugins/strategy/mitogen_linear.py): its one correction to Mitogen."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from puente_test_support import load_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shim() -> ModuleType:
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()  # as ansible-playbook does first: installs the collection finder
    path = ROOT / "plugins/strategy/mitogen_linear.py"
    return load_module(path, "puente_mitogen_linear")


def test_collections_are_listed_once(shim: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    import ansible.collections.list
    import ansible_mitogen.planner

    assert ansible_mitogen.planner._load_collections is shim._load_collections
    expected = {path.decode() for path in ansible.collections.list.list_collection_dirs()}
    assert any(path.endswith("ansible_collections/ansible/posix") for path in expected)

    first = SimpleNamespace(_extra_sys_paths=set())
    shim._load_collections(first)
    assert first._extra_sys_paths == expected

    def listed_again() -> None:
        raise AssertionError("the collections were listed again")

    monkeypatch.setattr(ansible.collections.list, "list_collection_dirs", listed_again)
    second = SimpleNamespace(_extra_sys_paths={"/already/there"})
    shim._load_collections(second)
    assert second._extra_sys_paths == expected | {"/already/there"}


def test_jinja_plugins_are_loaded_before_workers_fork(
    shim: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ansible.plugins.loader import PluginLoader, filter_loader, test_loader

    for loader in (filter_loader, test_loader):
        loader._clear_caches()  # as a role adding its filter_plugins folder does
    shim._load_jinja_plugins()

    def loaded_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a task worker would load every plugin again")

    # What a worker does for the first filter or test a template names, now answered from what it inherits.
    monkeypatch.setattr(PluginLoader, "all", loaded_again)
    assert filter_loader.get("ansible.builtin.to_json") is not None
    assert filter_loader.get("to_nice_yaml") is not None
    assert test_loader.get("ansible.builtin.match") is not None
