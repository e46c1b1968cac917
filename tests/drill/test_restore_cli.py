"""`puente drill restore`'s options: its own, and the load, target and output options every drill has
(puente.drill.options), which reach the drill's client as they do in the other drills."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from puente.drill import cli, restore_drill, scenarios, topology
from puente.drill.client import LoadShape


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="puente")
    cli.register(p.add_subparsers(dest="command"))
    return p.parse_args(["drill", *argv])


def run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, list[restore_drill.RestoreOptions]]:
    seen: list[restore_drill.RestoreOptions] = []

    def drill(opts: restore_drill.RestoreOptions) -> dict:
        seen.append(opts)
        raise restore_drill.preflight.PreflightError(["stopped before the lab"])

    monkeypatch.setattr(restore_drill, "run", drill)
    args = parse("restore", *argv)
    return args.func(args), seen


def test_defaults_are_the_restore_drills(monkeypatch: pytest.MonkeyPatch) -> None:
    rc, (opts,) = run(monkeypatch)
    assert rc == 2  # the drill stopped in its preflight
    assert opts == restore_drill.RestoreOptions()
    assert opts.drill.warmup == 10.0 and opts.drill.shape == LoadShape(workers=4, write_ratio=0.7)
    assert opts.drill.out_dir == scenarios.OUT_DIR and opts.drill.ca_file == topology.CA_FILE


def test_the_shared_options_reach_the_drill_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    argv = ["--latest", "--warmup", "3", "--workers", "2", "--write-ratio", "0.5", "--max-requests", "99",
            "--dns-server", "10.89.1.10", "--dns-port", "5353", "--name", "api.example.test",
            "--port", "8443", "--ca", str(tmp_path / "ca.crt"), "--inventory", "a.yml",
            "--out", str(tmp_path)]  # fmt: skip
    _, (opts,) = run(monkeypatch, *argv)
    d = opts.drill
    assert opts.latest and d.warmup == 3.0
    assert d.shape == LoadShape(workers=2, write_ratio=0.5, max_requests=99)
    assert (d.dns_server, d.dns_port, d.api_name, d.port) == ("10.89.1.10", 5353, "api.example.test", 8443)
    assert (d.ca_file, d.inventory, d.out_dir) == (tmp_path / "ca.crt", [Path("a.yml")], tmp_path)


def test_the_same_option_builder_as_the_other_drills() -> None:
    shared = ["--workers", "2", "--write-ratio", "0.5", "--dns-server", "10.89.1.10", "--out", "/tmp/x"]
    restore = cli.options.drill_options(parse("restore", *shared), warmup=5.0)
    failover = cli._options(parse("site-failover", *shared))
    for name in ("shape", "dns_server", "dns_port", "api_name", "port", "ca_file", "out_dir", "inventory"):
        assert getattr(restore, name) == getattr(failover, name), name


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--workers", "0"], "--workers >= 1"), (["--write-ratio", "1.5"], "--write-ratio"),
     (["--warmup", "-1"], "--warmup and --after-t must be >= 0")],
)  # fmt: skip
def test_bad_options_stop_before_the_drill(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    rc, seen = run(monkeypatch, *argv)
    assert rc == 2 and not seen
    assert message in capsys.readouterr().err
