"""The project's Mitogen strategy shim (plugins/strategy/mitogen_linear.py): its corrections to Mitogen and
to ansible-core's linear strategy, each doing what a task worker would have done."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

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


def _run_playbook(playbook: str, strategy: str, hosts: str = "on,off,", **env: str) -> dict[str, Any]:
    """tests/plugins/`playbook` under `strategy`, its results as the json callback records them."""
    proc = subprocess.run(
        [ROOT / ".venv/bin/ansible-playbook", "-i", hosts, "-c", "local", f"tests/plugins/{playbook}"],
        cwd=ROOT,
        env={
            **os.environ,
            "ANSIBLE_STRATEGY": strategy,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 2), proc.stdout[-3000:] + proc.stderr[-2000:]  # 2: a host failed
    report, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    return report


def _comparable(report: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """{(task name, host): result}. The json callback groups a lockstep strategy's results by task and any
    other's (the shim's name is not `linear`) by task and host; the results themselves must not differ."""
    return {
        (task["task"]["name"], host): result
        for play in report["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
    }


def test_skips_in_the_controller_give_the_workers_results() -> None:
    """Under the shim, a task whose `when` is false on a host yields what Ansible's own linear strategy
    yields: the same result for every task and host, registered values, handlers and recap."""
    linear = _run_playbook("skip_paths.yml", "linear")
    shim = _run_playbook("skip_paths.yml", "mitogen_linear")
    assert _comparable(shim) == _comparable(linear)
    assert shim["stats"] == linear["stats"]
    results = _comparable(shim)
    on, off = (
        results["Report what was registered (the json callback records it)", host]["msg"]
        for host in ("on", "off")
    )
    assert on["skipped"] is False and off["skipped"] is True
    assert off["plain"]["false_condition"] == "flag | bool"
    assert off["undefined_when_failed"] is True and on["undefined_when_failed"] is False
    assert on["looped"] == [True, False] and off["looped"] == [True, True]
    assert on["secret"]["skipped"] is True and "ansible_facts" in off["secret"]
    assert results["A secret task, skipped", "on"]["censored"].startswith("the output has been hidden")
    assert "skipped" not in on["magic"] and "skipped" not in off["magic"]
    assert [on[key] for key in ("two", "inner", "included")] == [True] * 3
    assert [off[key] for key in ("two", "inner", "included")] == [False] * 3
    handler = "Report whether the handler ran"
    assert results[handler, "on"]["msg"] is True and results[handler, "off"]["msg"] is False


def test_actions_run_in_the_controller_give_the_workers_results() -> None:
    """Under the shim, assert, debug, set_fact and validate_argument_spec run in the controller's process,
    not a worker: every result, fact, registered value, handler and the recap are Ansible's own."""
    hosts = "on,off,bad,"
    linear = _run_playbook("controller_actions.yml", "linear", hosts)
    shim = _run_playbook("controller_actions.yml", "mitogen_linear", hosts)
    assert _comparable(shim) == _comparable(linear)
    assert shim["stats"] == linear["stats"]
    assert shim["stats"]["bad"]["failures"] == 1 and shim["stats"]["off"]["ignored"] == 2
    results = _comparable(shim)
    on, off = (
        results["Report what was registered (the json callback records it)", h]["msg"] for h in ("on", "off")
    )
    assert on["facts"] == ["ON", 42, "on", "found in the role's files", "8001/a", "omitted"]
    assert off["facts"] == ["OFF", 42, "on", "found in the role's files", "8002/a", "omitted"]
    assert on["set_result"]["changed"] is True and off["set_result"]["changed"] is False
    assert off["ignored_assert"]["msg"] == "off has no flag" and on["ignored_assert"]["failed"] is False
    assert off["explicit_spec_failed"] is True and on["explicit_spec_failed"] is False
    assert on["debug_var"]["local_value"] == "on-local"
    assert "s3cr3t" not in json.dumps(results["A set_fact with no_log", "on"])
    handler = "Report whether the handler ran"
    assert results[handler, "on"]["msg"] is True and results[handler, "off"]["msg"] is False
    assert ("Report whether the handler ran", "bad") not in results  # it left the play


def test_hosts_sharing_lane_workers_give_the_workers_results() -> None:
    """Under the shim with two lane workers per task (PUENTE_WORKER_LANES=2, as when the controller's CPU
    is saturated), five hosts' results, registered values, handler and recap are Ansible's own, and the
    hosts of a task ran in at most two workers instead of five."""
    hosts = "a,b,c,d,e,"
    linear = _run_playbook("worker_lanes.yml", "linear", hosts)
    shim = _run_playbook("worker_lanes.yml", "mitogen_linear", hosts, PUENTE_WORKER_LANES="2")
    assert shim["stats"] == linear["stats"]
    assert shim["stats"]["c"]["failures"] == 1 and shim["stats"]["b"]["ignored"] == 1

    def status(report: dict[str, Any]) -> dict[tuple[str, str], Any]:
        return {
            key: {field: result.get(field) for field in ("changed", "failed", "skipped", "rc", "stdout")}
            for key, result in _comparable(report).items()
        }

    worker = "The worker each host ran in (left out of the comparison)"
    assert {k: v for k, v in status(shim).items() if k[0] != worker} == {
        k: v for k, v in status(linear).items() if k[0] != worker
    }
    report = "Report what was registered (the json callback records it)"
    assert _comparable(shim)[report, "a"]["msg"] == {
        "own": "A",
        "other": "A E",
        "looped": [True, False],
        "ignored": False,
        "handler": True,
    }
    assert _comparable(shim)[report, "b"]["msg"]["ignored"] is True
    assert _comparable(shim)[report, "b"]["msg"]["handler"] is False

    def workers(report: dict[str, Any]) -> set[str]:
        return {
            result["results"][0]["msg"] for (task, _), result in _comparable(report).items() if task == worker
        }

    assert len(workers(linear)) == 4  # c left the play
    assert len(workers(shim)) <= 2
    # forks=1: a single worker slot, which each task's first lane waits for (StrategyBase._queue_task does)
    one_slot = _run_playbook(
        "worker_lanes.yml", "mitogen_linear", hosts, PUENTE_WORKER_LANES="2", ANSIBLE_FORKS="1"
    )
    assert one_slot["stats"] == linear["stats"]


@pytest.mark.parametrize(
    ("jobs", "idle", "cpus", "lanes"),
    [
        (14, None, 2, 14),  # cannot tell (not Linux): a worker per host, Ansible's way
        (14, 0.6, 2, 14),  # a core's worth idle: the workers wait on their hosts
        (14, 0.2, 2, 3),  # saturated: a worker per core and one more
        (2, 0.2, 2, 2),
        (14, 0.1, 8, 9),
        (14, 0.2, 1, 2),
    ],
)
def test_lanes_follow_the_controllers_idle_cpu(
    shim: ModuleType, monkeypatch: pytest.MonkeyPatch, jobs: int, idle: float | None, cpus: int, lanes: int
) -> None:
    monkeypatch.delenv("PUENTE_WORKER_LANES", raising=False)
    assert shim._lanes(jobs, idle, cpus) == lanes


def test_tasks_that_wait_keep_a_worker_per_host(shim: ModuleType, tmp_path: Path) -> None:
    """_shares_workers: retries, async, throttle, pause and the wait_for modules keep one worker per
    host (a shared worker would add one host's wait to the next's); anything else may share."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play import Play
    from ansible.vars.manager import VariableManager

    playbook = tmp_path / "play.yml"
    playbook.write_text(
        """
        hosts: all
        gather_facts: false
        tasks:
          - {name: module, ansible.builtin.command: "true"}
          - {name: loop, ansible.builtin.stat: {path: /}, loop: [1]}
          - {name: delegated, ansible.builtin.command: "true", delegate_to: localhost}
          - {name: until, ansible.builtin.command: "true", until: true, retries: 2}
          - {name: async, ansible.builtin.command: "true", async: 10}
          - {name: throttle, ansible.builtin.command: "true", throttle: 1}
          - {name: pause, ansible.builtin.pause: {seconds: 1}}
          - {name: wait_for, ansible.builtin.wait_for: {timeout: 1}}
          - {name: wait_for_connection, ansible.builtin.wait_for_connection: {}}
        """
    )
    loader = DataLoader()
    play = Play.load(
        loader.load_from_file(str(playbook), trusted_as_template=True),
        variable_manager=VariableManager(loader=loader),
        loader=loader,
    )
    tasks = [task for block in play.compile() for task in block.block if task.name]  # not the implicit metas
    shared = {task.name for task in tasks if shim._shares_workers(task)}
    assert shared == {"module", "loop", "delegated"}


def test_the_controller_runs_only_single_controller_actions(shim: ModuleType, tmp_path: Path) -> None:
    """_runs_in_controller: the four controller-side actions run once, on their own host, in the
    foreground; anything else, or a loop, retries, a delegation or async, goes to a worker."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play import Play
    from ansible.vars.manager import VariableManager

    playbook = tmp_path / "play.yml"
    playbook.write_text(
        """
        hosts: all
        gather_facts: false
        tasks:
          - {name: assert, ansible.builtin.assert: {that: true}}
          - {name: debug, debug: {msg: short name}}
          - {name: set_fact, ansible.builtin.set_fact: {a: 1}}
          - {name: spec, ansible.builtin.validate_argument_spec: {argument_spec: {}}}
          - {name: module, ansible.builtin.command: "true"}
          - {name: include_vars, ansible.builtin.include_vars: {file: x.yml}}
          - {name: loop, ansible.builtin.set_fact: {a: 1}, loop: [1]}
          - {name: until, ansible.builtin.set_fact: {a: 1}, until: a is defined, retries: 2}
          - {name: delegated, ansible.builtin.set_fact: {a: 1}, delegate_to: localhost}
          - {name: async, ansible.builtin.debug: {msg: x}, async: 10}
        """
    )
    loader = DataLoader()
    play = Play.load(
        loader.load_from_file(str(playbook), trusted_as_template=True),
        variable_manager=VariableManager(loader=loader),
        loader=loader,
    )
    inline = {task.name for block in play.compile() for task in block.block if shim._runs_in_controller(task)}
    assert inline == {"assert", "debug", "set_fact", "spec"}


def test_the_controller_answers_only_a_false_when(shim: ModuleType, tmp_path: Path) -> None:
    """_skipped_result returns the worker's skip result for a false `when`, and None (a worker runs the
    task) for a true one, one that raises, a loop and a delegation."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play import Play
    from ansible.playbook.play_context import PlayContext
    from ansible.vars.manager import VariableManager

    playbook = (
        tmp_path / "play.yml"
    )  # read as ansible-playbook reads a playbook: its strings are trusted templates
    playbook.write_text(
        """
        hosts: all
        gather_facts: false
        vars: {flag: false}
        tasks:
          - {name: "false", ansible.builtin.debug: {msg: ran}, when: flag}
          - {name: "true", ansible.builtin.debug: {msg: ran}, when: not flag}
          - {name: none, ansible.builtin.debug: {msg: ran}}
          - {name: raises, ansible.builtin.debug: {msg: ran}, when: undefined_here}
          - {name: loop, ansible.builtin.debug: {msg: ran}, when: flag, loop: [1]}
          - {name: delegated, ansible.builtin.debug: {msg: ran}, when: flag, delegate_to: localhost}
          - {name: secret, ansible.builtin.debug: {msg: ran}, when: flag, no_log: true}
          - {name: magic, ansible.builtin.debug: {msg: ran}, when: ansible_timeout is not defined}
        """
    )
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources="on,")
    variables = VariableManager(loader=loader, inventory=inventory)
    play = Play.load(
        loader.load_from_file(str(playbook), trusted_as_template=True),
        variable_manager=variables,
        loader=loader,
    )
    host = inventory.get_host("on")
    context = PlayContext(play=play)
    answers = {}
    for task in (task for block in play.compile() for task in block.block if task.name):
        task_vars = variables.get_vars(play=play, host=host, task=task)
        answers[task.name] = shim._skipped_result(loader, host, task, task_vars, context)
    assert answers.pop("false") == {
        "changed": False,
        "skipped": True,
        "skip_reason": "Conditional result was False",
        "false_condition": "flag",
        "_ansible_no_log": False,
    }
    assert answers.pop("secret")["_ansible_no_log"] is True
    # a connection setting the play context adds to the variables, as in the worker
    assert answers.pop("magic")["false_condition"] == "ansible_timeout is not defined"
    assert answers == {"true": None, "none": None, "raises": None, "loop": None, "delegated": None}


def test_jinja_compiles_once_per_source_and_settings(shim: ModuleType) -> None:
    """The controller's compile cache, which the task workers inherit: the same source and settings give
    the same code; other lexer settings, an escape_backslashes context or a non-string do not share it."""
    from ansible._internal._templating._engine import TemplateEngine
    from ansible._internal._templating._jinja_bits import _TemplateCompileContext

    shim._compiled.clear()
    env = TemplateEngine().environment
    first = env.compile("{{ a }} and {{ b }}")
    assert env.compile("{{ a }} and {{ b }}") is first
    assert len(shim._compiled) == 1
    other = env.overlay(variable_start_string="[[", variable_end_string="]]")
    assert other.compile("{{ a }} and {{ b }}") is not first
    with _TemplateCompileContext(escape_backslashes=False):
        assert env.compile("{{ a }} and {{ b }}") is not first
    assert len(shim._compiled) == 3
    parsed = env.parse("{{ c }}")
    assert env.compile(parsed) is not env.compile(env.parse("{{ c }}"))  # a node tree is not cached
    assert len(shim._compiled) == 3
    # Jinja used by anything else in the process (stacks/ renders templates/ with plain Jinja) is untouched
    import jinja2

    plain = jinja2.Environment()
    assert plain.from_string("{{ a }} and {{ b }}").render(a=1, b=2) == "1 and 2"
    assert len(shim._compiled) == 3
