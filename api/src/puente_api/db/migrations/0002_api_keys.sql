-- Migration 0002: API keys (client authentication) and the index that scopes the shipments list to its
-- client. Expand only: a new table and a new index; the previous release neither reads nor writes them.

-- One row per API key (`puente-api keys create|list|revoke|rotate`). A key is the token
-- `pk_<key_id>_<secret>`; only the SHA-256 of the whole token is stored: the secret is 256 random bits,
-- so a fast hash is enough (nothing to brute-force) and a look-up is one index probe. The key id is
-- public (it is in the token, and names the key to `list`, `revoke` and `rotate`). The table lives in the
-- replicated database, so a key works on whichever site serves the caller, a failover included.
CREATE TABLE api_keys (
    key_id       TEXT        PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9]{8}$'),
    -- the identity the API acts for: shipments and idempotency keys are scoped by it
    client_id    TEXT        NOT NULL CHECK (client_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    token_sha256 BYTEA       NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    label        TEXT        NULL CHECK (char_length(label) <= 200),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL: valid. In the past: revoked since then. In the future: valid until then (a rotation's
    -- grace period, `keys rotate --expire-old-in SECONDS`).
    revoked_at   TIMESTAMPTZ NULL
);
CREATE INDEX api_keys_client_id ON api_keys (client_id);

-- GET /v1/shipments lists the caller's shipments only, newest first (keyset on seq): one index range.
CREATE INDEX shipments_client_id_seq ON shipments (client_id, seq);
