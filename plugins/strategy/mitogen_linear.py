"""Ansible's linear strategy run over Mitogen (the `mitogen` package, pinned in constraints.txt).

Mitogen keeps one Python interpreter per node for the whole run and ships module code to it once,
instead of Ansible's default of a fresh interpreter unpacking a zipped module for every task. The
playbooks behave exactly as under `linear`; only the transport changes, and where a false `when` is
evaluated (below). This file puts the strategy next to the project's other plugins, so ansible.cfg needs
no path into a virtualenv.

Select it with `strategy = mitogen_linear` (ansible.cfg) or ANSIBLE_STRATEGY=mitogen_linear; set
ANSIBLE_STRATEGY=linear to run without it.

One correction to Mitogen 0.3.54: for every task that runs a collection's module (ansible.posix,
community.*), each forked task worker listed every installed collection again, reading each one's
metadata (the `ansible` package installs about a hundred): about a fifth of the workers' CPU in a no-op
run (py-spy, bench/site_noop.py). The list cannot change during a run, so it is made once, here, before
the first worker is forked, and every worker inherits it.

The same holds for Ansible's own Jinja filters and tests: the first template a task worker compiles
that names a filter makes it load every filter and test plugin of the run (ansible-core's, the roles'
filter_plugins, the project's), wrap each one, and forget them all when it exits, so each of the run's
~1,200 workers did it again. Loading them in the controller's process at the start of each play (after
its roles have added their plugin folders) lets the workers inherit them: a fifth less controller CPU for a
no-op run of common.yml (17.8-18.3 s against 22.0-22.6 s back to back), and site.yml from 102.6 s to
80.5-80.9 s (bench/site_noop.py; docs/LAB.md).

A task whose `when` is false on a host costs no worker either. ansible-core forks a task worker for
every task and host, and the worker's first step, before it touches the connection, is to evaluate the
`when`; a false one ends it with a "skipped" result. About a fifth of a no-op site.yml's results were
such skips, each a fork and ~30 ms of controller CPU. For a task without a loop or a delegation, the
controller's process now evaluates the `when` first, with the variables, play context and ambient task
context the worker would have, and when it is false it sends the worker's very result (`skipped`,
`skip_reason`, `false_condition`, `_ansible_no_log`) through the results queue itself. Everything that
would go differently in a worker is left to the worker: a `when` that is true, raises or warns; a loop,
whose items each have their own `when`; a delegated task, whose variables the worker computes first.
Callbacks, `register`, handlers and the recap see the same result either way. A no-op site.yml forks
1,058 workers instead of 1,272 for the same 1,273 results (docs/LAB.md). This mirrors ansible-core
2.19's TaskExecutor (pinned in constraints.txt); tests/plugins/test_mitogen_linear.py runs every skip
path under both strategies, so an upgrade that changes the worker's result fails there first.

Nor does an action that runs wholly in the controller: `assert`, `debug`, `set_fact` and
`validate_argument_spec` (every role's entry check) never use the connection, and a worker for one was a
fork to run, in a copy of the controller, Python the controller can run itself (~250 of a no-op site.yml's
results, each ~20 ms of controller CPU and the wait for a worker). The controller's process runs them with
the worker's own steps: ansible-core's TaskExecutor, on a copy of the task and its parent blocks (it
post-validates them, templating their fields for this host) and of the variables, inside the task's
context, and sends its result through the results queue. A loop, `until` retries (which sleep), a
delegation or `async` still go to a worker. tests/plugins/controller_actions.yml runs these actions (an
assert that fails and one that fails a host, cacheable and run_once facts, no_log, check mode,
failed_when, a handler, a role's argument check reading its files) under both strategies: the results,
facts and recap must be Ansible's own.

Jinja compiles each template once per play in the controller, not once per worker. ansible-core 2.19
keeps no compile cache, and a worker's would die with it: every worker compiled again the templates its
siblings had compiled (8,111 compiles in a no-op site.yml, a fifth of the workers' CPU). Here
`jinja2.Environment.compile` keeps the code of each string source, keyed by everything the generated code
depends on (the lexer's settings, optimisation, finalize, extensions, autoescape, ansible's
escape_backslashes), in the controller's process, which the workers inherit through the fork; each task's
argument strings are compiled there before its first worker is forked. The cache is emptied at each play's
start, with the filters and tests it was compiled against (a filter's pass_context and the like shape the
code). A no-op site.yml then compiles ~3,000 times instead of ~8,100, and the workers' CPU inside their
tasks falls from 31-34 s to ~26 s (session 15). Together with the controller actions above, seven
interleaved rounds against the shim without either: 69.5 s median instead of 79.9 s, controller CPU
56.3 s instead of 66.6 s (session 16, docs/LAB.md).

A task's hosts share a few workers while the controller's CPU is saturated. ansible-core forks a worker
per task and host, and each fork costs the controller CPU: the fork of its process, the copy-on-write page
faults that follow in both processes (~2,200 in the controller's and ~3,900 in the worker's per fork in a
no-op site.yml), and the worker's own start. That is worth paying while the workers wait on their hosts,
not when the CPU the hosts need is the one the forks take, as in the lab, where 14 nodes and the
controller share 2 cores. So at each task's first host the strategy reads the controller's idle CPU share
over the last quarter second or more (Linux's /proc/stat): with a core's worth idle, or no way to tell,
every host gets its own worker, as under `linear`. Otherwise the task's hosts are queued and, once the
last one is, run by lane workers, one per core and one more, each taking the next host from a counter
they share until none is left; each host's run is a worker's own (ansible-core's TaskExecutor on the
host's copy of the task, the result through the results queue). While hosts still wait for a lane, each
quarter second with a core's worth idle (the lanes wait on slow hosts, say a first converge's package
installs) adds a lane, up to `forks`. Tasks that wait by design keep a worker per host: retries (`until`),
async, `throttle`, pause and the wait_for modules. tests/plugins/worker_lanes.yml runs five hosts in two
lanes (PUENTE_WORKER_LANES=2) and under `linear`: each result's status, the registered values, hostvars
read across hosts, a failed and an ignored host, the handler and the recap must match.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import ansible.collections.list
import ansible.utils.sentinel
import ansible_mitogen.loaders
import ansible_mitogen.planner
import ansible_mitogen.strategy
import jinja2
from ansible import context as ansible_context
from ansible._internal import _display_utils, _task
from ansible._internal._templating._engine import TemplateEngine, TemplateOptions
from ansible._internal._templating._jinja_bits import AnsibleEnvironment, _TemplateCompileContext
from ansible.errors import AnsibleError
from ansible.executor.process import worker as ansible_worker
from ansible.executor.process.worker import WorkerProcess
from ansible.executor.task_executor import TaskExecutor
from ansible.executor.task_result import _RawTaskResult
from ansible.plugins import loader as plugin_loader
from ansible.plugins.loader import filter_loader, test_loader
from ansible.utils.multiprocessing import context as multiprocessing_context

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


@functools.cache
def _collection_dirs() -> tuple[str, ...]:
    """The installed collections' folders, listed once per run (Mitogen lists them once per task)."""
    return tuple(path.decode("utf-8") for path in ansible.collections.list.list_collection_dirs())


def _load_collections(invocation: Any) -> None:
    """ansible_mitogen.planner._load_collections, reading the list made once per run."""
    invocation._extra_sys_paths.update(_collection_dirs())


ansible_mitogen.planner._load_collections = _load_collections


def _load_jinja_plugins() -> None:
    """Load and wrap every Jinja filter and test plugin of the run, as a worker's first template would."""
    for loader in (filter_loader, test_loader):
        next(loader.all(), None)  # a generator: every plugin is loaded before it yields the first


_compile: Any = jinja2.Environment.compile
_compiled: dict[tuple[Any, ...], Any] = {}


def _compile_key(
    env: Any, source: Any, name: Any, filename: Any, raw: bool, defer_init: bool
) -> tuple | None:
    """What Jinja's generated code depends on, or None to compile without the cache: only Ansible's
    templating environments use it (any other Jinja user in the process compiles as before)."""
    if (
        not isinstance(env, AnsibleEnvironment)
        or not isinstance(source, str)
        or env._debuggable_template_source
    ):
        return None
    context = _TemplateCompileContext.current(optional=True)
    lexer = (
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
    )
    return (
        type(env),
        source,
        name,
        filename,
        raw,
        defer_init,
        lexer,
        env.optimized,
        env.is_async,
        env.finalize is None,
        tuple(sorted(env.extensions)),
        repr(env.autoescape),
        getattr(context, "escape_backslashes", None),
    )


def _cached_compile(
    self: Any,
    source: Any,
    name: Any = None,
    filename: Any = None,
    raw: bool = False,
    defer_init: bool = False,
) -> Any:
    """jinja2.Environment.compile, once per source and settings in the controller's process."""
    key = _compile_key(self, source, name, filename, raw, defer_init)
    if key is None:
        return _compile(self, source, name, filename, raw, defer_init)
    code = _compiled.get(key)
    if code is None:
        code = _compiled[key] = _compile(self, source, name, filename, raw, defer_init)
    return code


jinja2.Environment.compile = _cached_compile  # type: ignore[method-assign]  # the point of the cache


def _templated_strings(value: Any) -> list[str]:
    """Every string of a task's arguments that a worker would compile."""
    if isinstance(value, str):
        return [value] if "{{" in value or "{%" in value else []
    if isinstance(value, dict):
        value = value.values()
    if isinstance(value, (list, tuple, type({}.values()))):
        return [found for item in value for found in _templated_strings(item)]
    return []


def _skipped_result(
    loader: Any, host: Any, task: Any, task_vars: Any, play_context: Any
) -> dict[str, Any] | None:
    """The result a task worker would return for `task` on `host` when its `when` is false there, or
    None when a worker must run the task (TaskExecutor.run and _execute_internal, ansible-core 2.19)."""
    if not task.when or task.loop_with or task.loop is not None or task.delegate_to:
        return None
    job_vars = task_vars.copy()
    search_path = task.get_search_path()  # TaskExecutor._get_loop_items sets it before anything else
    if loader.get_basedir() not in search_path:
        search_path.append(loader.get_basedir())
    job_vars["ansible_search_path"] = search_path
    templar = TemplateEngine(loader=loader, variables=job_vars)
    tempvars = job_vars.copy()
    try:
        with _task.TaskContext(task), _display_utils.DeferredWarningContext(variables=job_vars) as warnings:
            try:
                context = play_context.set_task_and_variable_override(
                    task=task, variables=job_vars, templar=templar
                )
                context.post_validate(templar=templar)
                if not context.remote_addr:
                    context.remote_addr = host.address
                context.update_vars(tempvars)
            except AnsibleError:
                pass  # the worker, too, evaluates the `when` first and raises this only for a task that runs
            condition: dict[str, Any] = {}
            if task._resolve_conditional(task.when, tempvars, result_context=condition):
                return None
            result = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
            result |= condition
            task.update_result_no_log(templar, result)
    except Exception:  # the worker reports it, as it would have without this shortcut
        return None
    if warnings.get_warnings() or warnings.get_deprecation_warnings():
        return None  # the worker attaches them to its result
    return result


def _run_as_worker(
    host: Any, task: Any, task_vars: Any, play_context: Any, loader: Any, final_q: Any, variables: Any
) -> tuple[Any, dict[str, Any]]:
    """A task worker's own steps (WorkerProcess._run): ansible-core's TaskExecutor on a copy of the task
    and its parents (it post-validates them, templating their fields for this host), inside the task's
    context; the copy as the worker would send it back, and the result."""
    own = task.copy(exclude_tasks=True)
    with _task.TaskContext(own):
        result = TaskExecutor(
            host,
            own,
            task_vars,
            play_context,
            loader,
            plugin_loader.get_plugin_loader_namespace(),
            final_q,
            variables,
        ).run()
    return own, result


# Actions whose plugin runs wholly in the controller and never uses the connection: a worker for them is a
# fork to run, in a copy of the controller, Python the controller can run itself.
_CONTROLLER_ACTIONS = frozenset(
    {
        "ansible.builtin.assert",
        "ansible.builtin.debug",
        "ansible.builtin.set_fact",
        "ansible.builtin.validate_argument_spec",
    }
)


def _runs_in_controller(task: Any) -> bool:
    """Whether the controller runs `task` itself: one of _CONTROLLER_ACTIONS, run once (no loop, no
    `until` retries, which sleep), on its own host (no delegation) and in the foreground (no async)."""
    return (
        task.resolved_action in _CONTROLLER_ACTIONS
        and not task.loop_with
        and task.loop is None
        and not task.until
        and not task.delegate_to
        and not task.async_val
    )


# Tasks whose hosts never share a worker: each waits (retries, async, a pause, a connection coming back) or
# limits its own parallelism (throttle), and in a shared worker one host's wait would delay the others'.
_OWN_WORKER_ACTIONS = frozenset(
    {"ansible.builtin.pause", "ansible.builtin.wait_for", "ansible.builtin.wait_for_connection"}
)


def _shares_workers(task: Any) -> bool:
    """Whether `task`'s hosts may run one after another in a few workers instead of one worker each."""
    return not (task.until or task.async_val or task.throttle or task.resolved_action in _OWN_WORKER_ACTIONS)


def _cpu_times() -> tuple[float, float] | None:
    """The controller's (idle, total) CPU time since boot, from Linux's /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [float(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user..steal


def _lanes(jobs: int, idle_share: float | None, cpus: int) -> int:
    """How many workers a task's `jobs` hosts share: one each (Ansible's way) while the controller has a
    core's worth of CPU idle or cannot tell; a worker per core and one more while its CPU is saturated,
    where each fork costs the CPU the others wait for. PUENTE_WORKER_LANES sets the number (tests)."""
    forced = os.environ.get("PUENTE_WORKER_LANES")
    if forced:
        return max(1, min(jobs, int(forced)))
    if idle_share is None or idle_share >= 1 / cpus:
        return jobs
    return min(jobs, cpus + 1)


class _CpuGauge:
    """The controller's idle CPU share, measured over windows of a quarter second or more."""

    WINDOW = 0.25

    def __init__(self) -> None:
        self._since = (time.monotonic(), _cpu_times())
        self.share: float | None = None  # over the last complete window

    def measure(self) -> bool:
        """Close the window if it is long enough (then `share` is new: True)."""
        now = time.monotonic()
        then, before = self._since
        if now - then < self.WINDOW:
            return False
        times = _cpu_times()
        if times is None or before is None or times[1] <= before[1]:
            return False
        self.share = (times[0] - before[0]) / (times[1] - before[1])
        self._since = (now, times)
        return True


_GAUGE = _CpuGauge()  # one for the run: ansible-playbook makes a strategy object per play


class _LaneWorker(WorkerProcess):  # type: ignore[misc]
    """A task worker that runs the task for host after host: it takes the next of `jobs` from a counter
    it shares with the task's other lane workers until none is left. Each host's run is a worker's
    (WorkerProcess._run): ansible-core's TaskExecutor on the host's own copy of the task and its parents
    (it post-validates them for this host) and the host's variables, inside the task's context, and its
    result through the results queue. Only the host's name crosses the queue, so the Host objects, which
    the next hosts' `hostvars` still read, are left as they are."""

    def __init__(self, jobs: list[tuple[Any, Any, Any, Any]], claimed: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._jobs = jobs
        self._claimed = claimed

    def _run(self) -> None:
        ansible_worker.current_worker = self
        while (job := self._claim()) is not None:
            host, task, task_vars, play_context = job
            own, result = _run_as_worker(
                host, task, task_vars, play_context, self._loader, self._final_q, self._variable_manager
            )
            self._final_q.send_task_result(
                _RawTaskResult(host=host, task=own, return_data=result, task_fields=own.dump_attrs())
            )

    def _claim(self) -> tuple[Any, Any, Any, Any] | None:
        with self._claimed.get_lock():
            index = self._claimed.value
            if index >= len(self._jobs):
                return None
            self._claimed.value = index + 1
        return self._jobs[index]


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    """The linear strategy, connecting through Mitogen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _collection_dirs()  # in the controller's process, before any task worker is forked
        self._compiled_tasks: set[str] = set()
        self._gauge = _GAUGE
        self._cpus = os.cpu_count() or 1
        self._jobs: list[tuple[Any, Any, Any, Any]] = []  # this task's hosts, waiting for lane workers
        self._lane: tuple[list[tuple[Any, Any, Any, Any]], Any, int] | None = None  # jobs, claimed, workers

    def _queue_task(self, host: Any, task: Any, task_vars: Any, play_context: Any) -> None:
        result = _skipped_result(self._loader, host, task, task_vars, play_context)
        if result is not None:
            return self._send(host, task, task_vars, play_context, task, result)
        if _runs_in_controller(task):
            # The worker's own steps (WorkerProcess.run and _run), in this process: the TaskExecutor on
            # a copy of the task and its parents (it post-validates them, templating their fields for
            # this host) and of the variables (it adds ansible_search_path), inside the task's context.
            self._tqm.send_callback("v2_runner_on_start", host, task)
            own, result = _run_as_worker(
                host,
                task,
                task_vars.copy(),
                play_context,
                self._loader,
                self._final_q,
                self._variable_manager,
            )
            return self._send(host, task, task_vars, play_context, own, result, started=True)
        if task._uuid not in self._compiled_tasks:  # compiled here once, inherited by its workers
            self._compiled_tasks.add(task._uuid)
            engine = TemplateEngine(loader=self._loader, variables=task_vars)
            for template in _templated_strings(task.args):
                engine._compile_template(template, TemplateOptions.DEFAULT)  # a compile error is deferred
        if self._jobs or (_shares_workers(task) and self._lanes_wanted(task)):
            self._jobs.append((host, task, task_vars, play_context))
            self._pending_results += 1  # linear waits for it, and the wait forks the lane workers
            return None
        return super()._queue_task(host, task, task_vars, play_context)

    def _lanes_wanted(self, task: Any) -> bool:
        """At a task's first host: whether its hosts will share workers (the controller's CPU is busy)."""
        hosts = 1 if task.run_once else len(self._hosts_cache)
        self._gauge.measure()
        return _lanes(hosts, self._gauge.share, self._cpus) < hosts

    def _wait_on_pending_results(self, iterator: Any) -> Any:
        self._start_lanes()
        return super()._wait_on_pending_results(iterator)

    def _process_pending_results(self, *args: Any, **kwargs: Any) -> Any:
        self._add_lane_when_idle()
        return super()._process_pending_results(*args, **kwargs)

    def _start_lanes(self) -> None:
        """Fork the lane workers of the task's queued hosts (one host alone gets Ansible's own worker)."""
        jobs, self._jobs = self._jobs, []
        self._lane = None
        if not jobs:
            return
        if len(jobs) == 1:
            self._pending_results -= 1
            super()._queue_task(*jobs[0])
            return
        task, play_context = jobs[0][1], jobs[0][3]
        # What Mitogen's _queue_task does before a fork, so the workers inherit warm plugin caches.
        ansible_mitogen.loaders.module_loader.find_plugin(name=task.action, mod_type="")
        ansible_mitogen.loaders.action_loader.get(name=task.action, class_only=True)
        if play_context.connection is not ansible.utils.sentinel.Sentinel:
            ansible_mitogen.loaders.connection_loader.get(name=play_context.connection, class_only=True)
        for host, task, task_vars, play_context in jobs:
            self._remember(host, task, task_vars, play_context)
            self._tqm.send_callback("v2_runner_on_start", host, task)
        self._lane = (jobs, multiprocessing_context.Value("i", 0), 0)
        for _ in range(_lanes(len(jobs), self._gauge.share, self._cpus)):
            self._fork_lane()

    def _fork_lane(self) -> None:
        """One more lane worker for the current lanes, in a free worker slot (`forks` stays the limit)."""
        assert self._lane is not None
        jobs, claimed, workers = self._lane
        while workers == 0 and all(worker is not None and worker.is_alive() for worker in self._workers):
            time.sleep(0.0001)  # the first lane waits for a slot, as StrategyBase._queue_task does
        for slot, worker in enumerate(self._workers):
            if worker is not None and worker.is_alive():
                continue
            if worker is not None:
                worker.close()
            host, task, task_vars, play_context = jobs[0]
            worker = _LaneWorker(
                jobs,
                claimed,
                final_q=self._final_q,
                task_vars=task_vars,
                host=host,
                task=task,
                play_context=play_context,
                loader=self._loader,
                variable_manager=self._variable_manager,
                shared_loader_obj=plugin_loader.get_plugin_loader_namespace(),
                worker_id=slot,
                cliargs=ansible_context.CLIARGS,
            )
            self._workers[slot] = worker
            worker.start()
            self._lane = (jobs, claimed, workers + 1)
            return

    def _add_lane_when_idle(self) -> None:
        """While hosts wait for a lane and the controller's CPU had a core's worth idle over the last
        window (its lanes wait on their hosts, they do not compute), one more lane worker takes the next."""
        if self._lane is None:
            return
        jobs, claimed, workers = self._lane
        if claimed.value >= len(jobs):
            self._lane = None
        elif self._gauge.measure() and _lanes(len(jobs), self._gauge.share, self._cpus) > workers:
            self._fork_lane()

    def _remember(self, host: Any, task: Any, task_vars: Any, play_context: Any) -> None:
        """What StrategyBase._queue_task records of a queued task, by which results find their task."""
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host,
            "task": task,
            "task_vars": task_vars,
            "play_context": play_context,
        }

    def _send(
        self,
        host: Any,
        task: Any,
        task_vars: Any,
        play_context: Any,
        ran: Any,
        result: dict[str, Any],
        started: bool = False,
    ) -> None:
        """What StrategyBase._queue_task and WorkerProcess._run do around a worker, without the worker:
        `ran` is the task as the worker would send it back (post-validated when it ran)."""
        self._remember(host, task, task_vars, play_context)
        if not started:
            self._tqm.send_callback("v2_runner_on_start", host, task)
        self._final_q.send_task_result(
            _RawTaskResult(host=host, task=ran, return_data=result, task_fields=ran.dump_attrs())
        )
        self._pending_results += 1

    def run(self, iterator: Any, play_context: Any) -> Any:
        _load_jinja_plugins()  # in the controller's process, before this play's task workers are forked
        _compiled.clear()  # compiled against the previous play's filters and tests
        return super().run(iterator, play_context)
