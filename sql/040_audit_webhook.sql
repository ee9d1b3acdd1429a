-- Admin API audit trail and the CRM webhook's replay and ordering memory.

-- One row per change made through the admin API or the CRM webhook, written in the same
-- transaction as the change itself.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,               -- admin agent id, or 'crm-webhook'
    action       text NOT NULL,               -- e.g. 'rule.create', 'customer.update'
    target_type  text NOT NULL,               -- 'rule', 'agent', 'customer', 'phone', 'tag'
    target_id    text NOT NULL,
    before       jsonb,                       -- NULL when the target did not exist
    after        jsonb                        -- NULL when the target was deleted
);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, at DESC);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);

-- Signatures and event ids the webhook accepted, kept until they can no longer pass the
-- timestamp check; a table (not memory) so a restart does not reopen the replay window.
CREATE TABLE webhook_seen (
    key         text PRIMARY KEY,             -- 'sig:<hex>' or 'event:<id>'
    expires_at  timestamptz NOT NULL
);
CREATE INDEX webhook_seen_expires_idx ON webhook_seen (expires_at);

-- Last-writer-wins memory: for every fact the CRM has told us about, the newest CRM
-- updated_at applied. Rows outlive deletions (tombstones), so a late, older upsert cannot
-- resurrect a deleted customer.
CREATE TABLE crm_versions (
    key         text PRIMARY KEY,             -- 'customer:<id>', 'phone:<e164>', 'tag:<id>:<tag>'
    updated_at  timestamptz NOT NULL
);
