-- Customer merges (issue 17, `crm-bridge customers merge`): one row per merge, written in
-- the merge's own transaction next to its audit rows, so every merge can be reported
-- (`crm-bridge customers merges`) and the CRM connector can be told of it: rows with
-- crm_notified_at NULL are the ones it has not acknowledged yet. NOTIFY crm_customer_merged
-- carries the merge id.
CREATE TABLE customer_merges (
    id               bigserial PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    actor            text NOT NULL,
    survivor_id      text NOT NULL,
    merged_ids       text[] NOT NULL CHECK (cardinality(merged_ids) >= 1),
    reason           text NOT NULL DEFAULT '',
    policy           jsonb NOT NULL DEFAULT '{}'::jsonb,
    moved            jsonb NOT NULL DEFAULT '{}'::jsonb,   -- table -> rows moved
    before           jsonb NOT NULL DEFAULT '[]'::jsonb,   -- every customer as it was
    crm_notified_at  timestamptz
);
CREATE INDEX customer_merges_survivor_idx ON customer_merges (survivor_id);
CREATE INDEX customer_merges_merged_idx ON customer_merges USING gin (merged_ids);
CREATE INDEX customer_merges_pending_idx ON customer_merges (id) WHERE crm_notified_at IS NULL;

CREATE FUNCTION customer_merges_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_customer_merged', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER customer_merges_notify AFTER INSERT ON customer_merges
    FOR EACH ROW EXECUTE FUNCTION customer_merges_notify();
