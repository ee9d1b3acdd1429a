-- The agent roster (bridge/crm/roster.py) keeps every agent in memory on every bridge.
-- A change to an agent sends NOTIFY crm_agents_changed with its id (a TRUNCATE: empty payload,
-- read everything again); `version` grows by one on every update, so a bridge that reads two
-- versions of a row out of order keeps the newer one. Rotating a token or disabling an agent
-- thereby closes its open pop sessions on every bridge sharing this database.
ALTER TABLE agents ADD COLUMN version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION agents_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER agents_next_version BEFORE UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_next_version();

CREATE FUNCTION agents_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('crm_agents_changed', '');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('crm_agents_changed', OLD.id);
    ELSE
        PERFORM pg_notify('crm_agents_changed', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER agents_notify_change AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_notify_change();
CREATE TRIGGER agents_notify_truncate AFTER TRUNCATE ON agents
    FOR EACH STATEMENT EXECUTE FUNCTION agents_notify_change();
