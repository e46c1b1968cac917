"""The tests' launcher of ``puente-api``: the same command, with a write held inside its transaction
(``--pause-after-lock S``) or after its COMMIT (``--pause-after-commit S``) so a test can ``kill -9`` the
process exactly there (test_api_crash.py). The hooks are set here, in the API's own process, before it
starts: the shipped package reads no setting or environment variable for them.

    python tests/api/hooked_api.py --pause-after-lock 30 serve --host 127.0.0.1 --port 8080 --workers 1
"""

from __future__ import annotations

import argparse
import sys

from puente_api import __main__ as api_main
from puente_api import writes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--pause-after-lock", type=float, default=0.0)
    parser.add_argument("--pause-after-commit", type=float, default=0.0)
    hooks, rest = parser.parse_known_args(argv)
    if rest[:1] != ["serve"] or ("--workers" in rest and rest[rest.index("--workers") + 1] != "1"):
        parser.error("only `serve --workers 1` keeps the hooks: other workers are new processes")
    writes.TEST_HOOKS.pause_after_lock = hooks.pause_after_lock
    writes.TEST_HOOKS.pause_after_commit = hooks.pause_after_commit
    return api_main.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
