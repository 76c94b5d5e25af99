-- Per-tenant encryption of message bodies and channel summaries (issue 15).
-- No new table: columns on tenant-owned tables already homed, RLS forced and
-- (on CockroachDB) REGIONAL BY ROW; the policy column on the directory.
-- Idempotent: IF NOT EXISTS, and constraints added only when missing.

-- The tenant's policy (`encryption: {"messages": …}`), directory config: cached
-- with the tenant (config_version) and re-read by every post inside its INSERT
-- (src/crypto/messages.rs says why that makes a stale cache safe).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS encrypt_messages boolean NOT NULL DEFAULT false;

-- An encrypted message keeps `body` = '' (so body_tsv is empty: no plaintext
-- word reaches messages_search_idx) and its AES-256-GCM ciphertext in body_enc.
-- A nullable column without default: no table rewrite, and the page of a tenant
-- without encryption reads one NULL more per row.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS body_enc bytea;

-- An encrypted summary keeps `summary` and `sentences` NULL and both, as one
-- JSON document, sealed in `sealed`.
ALTER TABLE channel_summaries ADD COLUMN IF NOT EXISTS sealed bytea;

-- Never both: a row is plaintext or ciphertext. NOT VALID: every existing row
-- has NULL ciphertext, so there is nothing to scan for.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'messages_body_sealed') THEN
        ALTER TABLE messages ADD CONSTRAINT messages_body_sealed
            CHECK (body_enc IS NULL OR body = '') NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'channel_summaries_sealed') THEN
        ALTER TABLE channel_summaries ADD CONSTRAINT channel_summaries_sealed
            CHECK (sealed IS NULL OR (summary IS NULL AND sentences IS NULL)) NOT VALID;
    END IF;
END $$;
