"""``puente keys``: the API's client keys, managed through playbooks/keys.yml."""
