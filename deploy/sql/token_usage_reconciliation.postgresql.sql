-- recon-job: per-request reconciliation columns for an existing token_usage table (PostgreSQL).
--
-- Adds what `recon-job reconcile-requests BILLING.csv --apply` reads and writes:
--   openai_request_id      the request id OpenAI returned (x-request-id / response id)
--   actual_cost_cents      the billed cost in cents, exact to a millionth of a cent
--   reconciliation_status  matched | discrepancy | pending (written by recon-job)
-- and an index on openai_request_id, which every write-back UPDATE looks rows up by.
--
-- Idempotent: running it twice leaves the table as running it once (IF NOT EXISTS everywhere).
-- Adding a nullable column without a default only changes the catalogue, so the ALTERs are
-- instant even on large tables. Rename token_usage if your table is called otherwise.
--
-- Run:  psql "$DATABASE_URL" --single-transaction -f token_usage_reconciliation.postgresql.sql
--
-- CREATE INDEX blocks writes to the table while it builds. On a large, busy table run the
-- index statement on its own, outside a transaction, as CREATE INDEX CONCURRENTLY IF NOT EXISTS.

ALTER TABLE token_usage ADD COLUMN IF NOT EXISTS openai_request_id VARCHAR(128);
ALTER TABLE token_usage ADD COLUMN IF NOT EXISTS actual_cost_cents NUMERIC(20, 6);
ALTER TABLE token_usage ADD COLUMN IF NOT EXISTS reconciliation_status VARCHAR(16);

CREATE INDEX IF NOT EXISTS ix_token_usage_openai_request_id ON token_usage (openai_request_id);
