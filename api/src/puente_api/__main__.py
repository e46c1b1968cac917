"""``puente-api serve|migrate|relay|worker|reaper|keys|labels`` -- one console script for every process of
the API, its API key management and the redrive of dead-lettered labels.

Settings come from the environment (api/README.md lists them); a bad one ends the command with exit
code 2 and a message naming the variable, before anything starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

from puente_api import keys_cli, logs, process_metrics, redrive, settings


def _serve(args: argparse.Namespace, cfg: settings.Settings) -> int:
    import uvicorn

    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # each worker is a process: let /metrics aggregate them (prometheus-client multiprocess mode)
        metrics_dir = tempfile.mkdtemp(prefix="puente-api-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "puente_api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
            # behind HAProxy/nginx: X-Forwarded-For is believed from them only (PUENTE_FORWARDED_ALLOW_IPS)
            proxy_headers=True,
            forwarded_allow_ips=cfg.forwarded_allow_ips,
            timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _migrate(args: argparse.Namespace, cfg: settings.Settings) -> int:
    from puente_api import db

    applied = db.migrate(cfg)
    log = logging.getLogger("puente_api.migrate")
    for name in applied:
        log.info("applied schema version %s", name)
    if not applied:
        log.info("schema is up to date")
    return 0


def _relay(args: argparse.Namespace, cfg: settings.Settings) -> int:
    from puente_api import outbox

    process_metrics.serve(args.metrics_listen)
    outbox.run(cfg, once=args.once)
    return 0


def _worker(args: argparse.Namespace, cfg: settings.Settings) -> int:
    from puente_api import worker

    process_metrics.serve(args.metrics_listen)
    worker.run(cfg, once=args.once)
    return 0


def _reaper(args: argparse.Namespace, cfg: settings.Settings) -> int:
    from puente_api import reaper

    reaper.run(cfg, once=args.once)
    return 0


def _listen(raw: str) -> str:
    if not raw:
        return raw
    try:
        process_metrics.parse_listen(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="puente-api", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the HTTP API (uvicorn)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_serve)
    sub.add_parser("migrate", help="apply the database schema (idempotent)").set_defaults(func=_migrate)
    for name, func, text in (
        ("relay", _relay, "publish outbox rows to the broker"),
        ("worker", _worker, "consume the queue and make labels (inbox de-duplication)"),
        ("reaper", _reaper, "delete expired idempotency keys"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--once", action="store_true", help="process one batch (reaper: all that is due) and exit"
        )
        if name != "reaper":  # a one-shot run by its timer: nothing to scrape
            p.add_argument(
                "--metrics-listen",
                type=_listen,
                default="",
                metavar="ADDRESS:PORT",
                help="serve Prometheus metrics on GET /metrics there (default: none)",
            )
        p.set_defaults(func=func)
    keys_cli.add_parser(sub)
    redrive.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = settings.load()
    except settings.SettingsError as exc:
        print(f"puente-api: invalid settings: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.log_level, cfg.site)
    try:
        return int(args.func(args, cfg))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
