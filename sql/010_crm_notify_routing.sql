-- Cache invalidation and routing decisions (H1).
--
-- Any change to a customer, its phones, tags or owner sends NOTIFY crm_customer_changed with
-- the customer id as payload (both ids when a row moves between customers); any change to
-- routing_rules sends NOTIFY crm_rules_changed. A TRUNCATE sends an empty payload, which
-- listeners read as "drop everything".

CREATE FUNCTION crm_notify_customer_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_id text;
    new_id text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('crm_customer_changed', '');
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'customers' THEN
        IF TG_OP <> 'INSERT' THEN old_id := OLD.id; END IF;
        IF TG_OP <> 'DELETE' THEN new_id := NEW.id; END IF;
    ELSE
        IF TG_OP <> 'INSERT' THEN old_id := OLD.customer_id; END IF;
        IF TG_OP <> 'DELETE' THEN new_id := NEW.customer_id; END IF;
    END IF;
    IF old_id IS NOT NULL THEN
        PERFORM pg_notify('crm_customer_changed', old_id);
    END IF;
    IF new_id IS NOT NULL AND new_id IS DISTINCT FROM old_id THEN
        PERFORM pg_notify('crm_customer_changed', new_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER customers_notify AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION crm_notify_customer_changed();
CREATE TRIGGER customers_notify_truncate AFTER TRUNCATE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_customer_changed();
CREATE TRIGGER customer_phones_notify AFTER INSERT OR UPDATE OR DELETE ON customer_phones
    FOR EACH ROW EXECUTE FUNCTION crm_notify_customer_changed();
CREATE TRIGGER customer_phones_notify_truncate AFTER TRUNCATE ON customer_phones
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_customer_changed();
CREATE TRIGGER customer_tags_notify AFTER INSERT OR UPDATE OR DELETE ON customer_tags
    FOR EACH ROW EXECUTE FUNCTION crm_notify_customer_changed();
CREATE TRIGGER customer_tags_notify_truncate AFTER TRUNCATE ON customer_tags
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_customer_changed();
CREATE TRIGGER customer_owners_notify AFTER INSERT OR UPDATE OR DELETE ON customer_owners
    FOR EACH ROW EXECUTE FUNCTION crm_notify_customer_changed();
CREATE TRIGGER customer_owners_notify_truncate AFTER TRUNCATE ON customer_owners
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_customer_changed();

CREATE FUNCTION crm_notify_rules_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_rules_changed', '');
    RETURN NULL;
END;
$$;

-- Statement level: a reorder touching many rows sends one notification.
CREATE TRIGGER routing_rules_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON routing_rules
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_rules_changed();

-- What the bridge decided for each routed channel; the call-record writer joins it to the
-- call by linkedid, or by any of the call's uniqueids.
CREATE TABLE route_decisions (
    uniqueid     text PRIMARY KEY CHECK (length(uniqueid) BETWEEN 1 AND 150),
    linkedid     text NOT NULL DEFAULT '' CHECK (length(linkedid) <= 150),
    channel      text NOT NULL DEFAULT '',
    caller       text NOT NULL DEFAULT '',
    caller_name  text NOT NULL DEFAULT '',
    did          text NOT NULL DEFAULT '',
    customer_id  text,
    queue        text NOT NULL,
    priority     integer NOT NULL DEFAULT 0,
    rule         text NOT NULL,
    degraded     boolean NOT NULL DEFAULT false,
    recording    text,
    decided_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_decisions_linkedid_idx ON route_decisions (linkedid);
CREATE INDEX route_decisions_decided_idx ON route_decisions (decided_at);
