-- Pop card cache invalidation: a change to the rows a customer card shows besides the
-- customer itself (orders, contracts, marketing events, service history) sends
-- NOTIFY crm_card_changed with the customer id (both ids when a row moves between customers;
-- a TRUNCATE: an empty payload, "drop everything"). Customers, phones, tags and owners
-- already notify crm_customer_changed, which the card cache hears too. A separate channel,
-- so a call's new service-history row does not empty the caller-lookup cache.

CREATE FUNCTION crm_notify_card_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('crm_card_changed', '');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.customer_id IS NOT NULL THEN
        PERFORM pg_notify('crm_card_changed', OLD.customer_id);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.customer_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.customer_id IS DISTINCT FROM OLD.customer_id) THEN
        PERFORM pg_notify('crm_card_changed', NEW.customer_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER orders_card_notify AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION crm_notify_card_changed();
CREATE TRIGGER orders_card_notify_truncate AFTER TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_card_changed();
CREATE TRIGGER contracts_card_notify AFTER INSERT OR UPDATE OR DELETE ON contracts
    FOR EACH ROW EXECUTE FUNCTION crm_notify_card_changed();
CREATE TRIGGER contracts_card_notify_truncate AFTER TRUNCATE ON contracts
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_card_changed();
CREATE TRIGGER marketing_events_card_notify AFTER INSERT OR UPDATE OR DELETE ON marketing_events
    FOR EACH ROW EXECUTE FUNCTION crm_notify_card_changed();
CREATE TRIGGER marketing_events_card_notify_truncate AFTER TRUNCATE ON marketing_events
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_card_changed();
CREATE TRIGGER service_history_card_notify AFTER INSERT OR UPDATE OR DELETE ON service_history
    FOR EACH ROW EXECUTE FUNCTION crm_notify_card_changed();
CREATE TRIGGER service_history_card_notify_truncate AFTER TRUNCATE ON service_history
    FOR EACH STATEMENT EXECUTE FUNCTION crm_notify_card_changed();
