"""Role pgbackrest without a lab: its filter (repository declarations to pgBackRest options) and its
metrics writer (pgbackrest info, pg_stat_archiver and the drill's record to Prometheus text).

What pgBackRest and node_exporter make of them on real nodes is tests/roles/test_pgbackrest.py's.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "pgbackrest"


def _load(name: str, path: Path) -> Any:
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


plugin = _load("pgbackrest_filters", ROLE / "filter_plugins" / "pgbackrest.py")
metrics = _load("pgbackrest_metrics", ROLE / "files" / "usr" / "local" / "sbin" / "pgbackrest-metrics")

LAB_REPO = {
    "s3_bucket": "puente-backups", "s3_region": "eu-west-1", "s3_endpoint": "10.89.2.41", "port": 9000,
    "s3_uri_style": "path", "s3_key": "lab", "s3_key_secret": "secret", "ca_file": "/ca/ca.crt",
    "path": "/puente", "cipher_pass": "pass", "retention_full": 2,
}  # fmt: skip


def test_two_repositories_are_numbered_in_order() -> None:
    options = dict(plugin.pgbackrest_repo_options([LAB_REPO, {**LAB_REPO, "s3_endpoint": "10.89.1.41"}]))
    assert options["repo1-s3-endpoint"] == "10.89.2.41"
    assert options["repo2-s3-endpoint"] == "10.89.1.41"
    assert options["repo1-type"] == options["repo2-type"] == "s3"
    assert options["repo1-storage-port"] == "9000"
    assert options["repo1-s3-uri-style"] == "path"
    assert options["repo2-storage-ca-file"] == "/etc/pgbackrest/repo2-ca.crt"
    assert options["repo1-cipher-type"] == "aes-256-cbc" and options["repo1-cipher-pass"] == "pass"
    assert options["repo1-s3-key"] == "lab" and options["repo1-s3-key-secret"] == "secret"


def test_without_a_key_the_instance_profile_signs() -> None:
    options = dict(plugin.pgbackrest_repo_options([{**LAB_REPO, "s3_key": "", "ca_file": ""}]))
    assert options["repo1-s3-key-type"] == "auto"
    assert "repo1-s3-key" not in options and "repo1-s3-key-secret" not in options
    assert "repo1-storage-ca-file" not in options


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cipher_pass": ""}, "missing cipher_pass"),
        ({"path": "puente"}, "must start with /"),
        ({"s3_endpoint": "https://s3.example"}, "without scheme or port"),
        ({"s3_uri_style": "virtual"}, "s3_uri_style"),
        ({"type": "posix"}, "only s3"),
        ({"retention_full": 0}, "retention_full"),
    ],
)
def test_incomplete_repositories_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        plugin.pgbackrest_repo_options([{**LAB_REPO, **change}])


def test_no_repository_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="non-empty list"):
        plugin.pgbackrest_repo_options([])


def test_ca_files_and_placeholders() -> None:
    assert plugin.pgbackrest_repo_ca_files([LAB_REPO, {**LAB_REPO, "ca_file": ""}]) == [
        {"src": "/ca/ca.crt", "dest": "/etc/pgbackrest/repo1-ca.crt"}
    ]
    assert plugin.pgbackrest_placeholders([{**LAB_REPO, "s3_bucket": "CHANGE-ME"}]) == [
        "pgbackrest_repositories[0].s3_bucket"
    ]
    assert plugin.pgbackrest_placeholders([LAB_REPO]) == []


INFO = [
    {
        "name": "puente",
        "status": {"code": 0},
        "repo": [{"key": 1, "status": {"code": 0}}, {"key": 2, "status": {"code": 1}}],
        "backup": [
            {"type": "full", "timestamp": {"start": 900, "stop": 1000}, "database": {"repo-key": 1},
             "info": {"size": 5000}},
            {"type": "diff", "timestamp": {"start": 1900, "stop": 2000}, "database": {"repo-key": 1},
             "info": {"size": 6000}},
        ],
    }
]  # fmt: skip


def test_info_metrics_per_repository() -> None:
    samples = {(n, tuple(sorted(labels.items()))): v for n, labels, v in metrics.info_metrics(INFO, 3000.0)}
    assert samples[("up", ())] == 1
    assert samples[("repo_status", (("repo", "2"),))] == 1
    assert samples[("backup_last_full_timestamp_seconds", (("repo", "1"),))] == 1000
    assert samples[("backup_last_full_age_seconds", (("repo", "1"),))] == 2000
    assert samples[("backup_last_age_seconds", (("repo", "1"),))] == 1000
    assert samples[("backup_last_size_bytes", (("repo", "1"),))] == 6000
    assert samples[("backup_count", (("repo", "2"),))] == 0
    assert ("backup_last_full_timestamp_seconds", (("repo", "2"),)) not in samples


def test_archiver_metrics_only_on_the_leader() -> None:
    leader = dict((n, v) for n, _, v in metrics.archiver_metrics("f|1700.5|3\n", 1760.5))
    assert leader == {
        "is_leader": 1, "wal_archive_failed_total": 3, "wal_last_archived_timestamp_seconds": 1700.5,
        "wal_last_archived_age_seconds": 60.0,
    }  # fmt: skip
    assert metrics.archiver_metrics("t||0", 10.0) == [("is_leader", {}, 0)]


def test_drill_metrics_and_rendering() -> None:
    samples = metrics.drill_metrics({"finished_at": 50.0, "passed": False, "last_success_at": 20.0})
    text = metrics.render([*samples, ("backup_count", {"repo": "1"}, 2.0)], {"stanza": "puente"})
    assert "# TYPE pgbackrest_restore_drill_last_success gauge" in text
    assert 'pgbackrest_restore_drill_last_success{stanza="puente"} 0\n' in text
    assert 'pgbackrest_restore_drill_last_success_timestamp_seconds{stanza="puente"} 20\n' in text
    assert 'pgbackrest_backup_count{repo="1",stanza="puente"} 2\n' in text
    assert text.count("# HELP pgbackrest_backup_count ") == 1


def test_the_file_is_replaced_atomically(tmp_path: Path) -> None:
    out = tmp_path / "pgbackrest.prom"
    metrics.write_atomically(str(out), "a 1\n")
    metrics.write_atomically(str(out), "a 2\n")
    assert out.read_text() == "a 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pgbackrest.prom"]
