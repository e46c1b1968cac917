"""Role tests over the lab's nodes. Their fixtures (``lab``, ``run_playbook``, ``node``) are shared with the
drills and the audit and live in tests/conftest.py."""
