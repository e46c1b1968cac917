"""The API's database sessions verify the server (role api, roles/postgresql): sslmode=verify-full."""

from __future__ import annotations

from audit_policy import API_RUNTIME_FILE

from puente.audit import control


@control(
    id="PUENTE-API-04",
    title="The API connects to PostgreSQL with sslmode=verify-full",
    impact=0.8,
    rationale="""Without verify-full a TLS session proves nothing about the server: whoever answers on the
    load balancer's address gets the API's password (SCRAM aside) and its data. Both database URLs must ask
    libpq to verify the certificate's chain against a CA file present on the node and its name against the
    address (PostgreSQL's pg_hba already refuses every non-TLS network connection: PUENTE-PG-02).""",
    refs={"nist": ["SC-8", "SC-23", "IA-3"]},
    groups=["api_nodes"],
)
def test_api_database_urls_verify_full(host):
    settings = dict(
        line.split("=", 1) for line in host.snapshot("cat %s", API_RUNTIME_FILE).splitlines() if "=" in line
    )
    for name in ("PUENTE_DATABASE_URL", "PUENTE_DATABASE_READ_URL"):
        url = settings.get(name, "")
        if not url:
            continue
        assert "sslmode=verify-full" in url, f"{name} does not ask for sslmode=verify-full: {url}"
        root = url.partition("sslrootcert=")[2].partition("&")[0]
        assert root and host.file(root).is_file, f"{name}: sslrootcert {root or '(none)'} is not a file"
    assert settings.get("PUENTE_DATABASE_URL"), f"no PUENTE_DATABASE_URL in {API_RUNTIME_FILE}"
