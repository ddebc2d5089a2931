-- recon-job: per-request reconciliation columns for an existing token_usage table (MariaDB).
--
-- Adds what `recon-job reconcile-requests BILLING.csv --apply` reads and writes:
--   openai_request_id      the request id OpenAI returned (x-request-id / response id)
--   actual_cost_cents      the billed cost in cents, exact to a millionth of a cent
--   reconciliation_status  matched | discrepancy | pending (written by recon-job)
-- and an index on openai_request_id, which every write-back UPDATE looks rows up by.
--
-- Idempotent: running it twice leaves the table as running it once (IF NOT EXISTS everywhere).
-- Needs MariaDB 10.0.2 or later. MySQL (8.x) has no ADD COLUMN IF NOT EXISTS nor
-- CREATE INDEX IF NOT EXISTS: on MySQL use the Alembic template
-- deploy/alembic/add_token_usage_reconciliation.py, which checks before adding.
-- Rename token_usage if your table is called otherwise.
--
-- Run:  mariadb your_database < token_usage_reconciliation.mysql.sql
--
-- MariaDB commits each ALTER on its own; one ALTER for the three columns rebuilds the table
-- at most once.

ALTER TABLE token_usage
    ADD COLUMN IF NOT EXISTS openai_request_id VARCHAR(128) NULL,
    ADD COLUMN IF NOT EXISTS actual_cost_cents DECIMAL(20, 6) NULL,
    ADD COLUMN IF NOT EXISTS reconciliation_status VARCHAR(16) NULL;

CREATE INDEX IF NOT EXISTS ix_token_usage_openai_request_id ON token_usage (openai_request_id);
