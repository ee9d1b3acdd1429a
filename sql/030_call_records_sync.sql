-- Durable call records and their delivery to the external CRM (H5).
--
-- pbx_cdrs            every Asterisk Cdr kept as received (AMI cdr_manager, or a CDR backend
--                     writing here directly), for the nightly reconciliation `crm-bridge sync run`.
-- call_record_channels which channel Uniqueids belong to which call record: a Cdr carries only
--                     its channel's UniqueID, so this is how sync knows the call is recorded.
-- call_outbox         one row per call record still to deliver (or delivered) to the CRM
--                     connector; the call_id is the idempotency key. A trigger keeps it in step
--                     with call_records, so a disposition filed from the agent page reaches the
--                     external CRM without the pop code knowing about delivery.
-- call_dead_letters   records the connector refused `[crm] max_attempts` times.

CREATE TABLE pbx_cdrs (
    id                bigserial PRIMARY KEY,
    uniqueid          text NOT NULL CHECK (length(uniqueid) BETWEEN 1 AND 150),
    channel           text NOT NULL DEFAULT '',
    destination_channel text NOT NULL DEFAULT '',
    source            text NOT NULL DEFAULT '',
    destination       text NOT NULL DEFAULT '',
    start_time        timestamptz,
    answer_time       timestamptz,
    end_time          timestamptz,
    duration_s        integer NOT NULL DEFAULT 0,
    billable_s        integer NOT NULL DEFAULT 0,
    disposition       text NOT NULL DEFAULT '',
    last_application  text NOT NULL DEFAULT '',
    last_data         text NOT NULL DEFAULT '',
    received_at       timestamptz NOT NULL DEFAULT now(),
    -- One Cdr per (channel uniqueid, destination channel, start): a re-sent Cdr is not kept twice.
    UNIQUE (uniqueid, destination_channel, start_time)
);
CREATE INDEX pbx_cdrs_end_idx ON pbx_cdrs (end_time);

CREATE TABLE call_record_channels (
    uniqueid  text PRIMARY KEY CHECK (length(uniqueid) BETWEEN 1 AND 150),
    call_id   text NOT NULL REFERENCES call_records (call_id) ON DELETE CASCADE
);
CREATE INDEX call_record_channels_call_idx ON call_record_channels (call_id);

CREATE TABLE call_outbox (
    call_id          text PRIMARY KEY REFERENCES call_records (call_id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'dead')),
    ended_at         timestamptz,
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz
);
CREATE INDEX call_outbox_due_idx ON call_outbox (next_attempt_at) WHERE state = 'pending';

CREATE TABLE call_dead_letters (
    id          bigserial PRIMARY KEY,
    call_id     text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL,
    last_error  text NOT NULL DEFAULT '',
    record      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX call_dead_letters_call_idx ON call_dead_letters (call_id);

-- (Re)queue a finished record for delivery whenever what the CRM sees of it changes,
-- including disposition and notes written by the agent page. Rows without ended_at are a
-- disposition filed before the record itself: they wait for the record.
CREATE FUNCTION call_records_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ended_at IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND (
        NEW.caller, NEW.customer_id, NEW.did, NEW.queue, NEW.rule, NEW.agents,
        NEW.started_at, NEW.answered_at, NEW.ended_at, NEW.duration_s, NEW.talk_s,
        NEW.outcome, NEW.recording_path, NEW.disposition, NEW.notes, NEW.degraded, NEW.inferred
    ) IS NOT DISTINCT FROM (
        OLD.caller, OLD.customer_id, OLD.did, OLD.queue, OLD.rule, OLD.agents,
        OLD.started_at, OLD.answered_at, OLD.ended_at, OLD.duration_s, OLD.talk_s,
        OLD.outcome, OLD.recording_path, OLD.disposition, OLD.notes, OLD.degraded, OLD.inferred
    ) THEN
        RETURN NULL;  -- a redelivered end event: nothing new for the CRM
    END IF;
    INSERT INTO call_outbox AS o (call_id, ended_at)
    VALUES (NEW.call_id, NEW.ended_at)
    ON CONFLICT (call_id) DO UPDATE
        SET state = 'pending', ended_at = EXCLUDED.ended_at, enqueued_at = now(),
            attempts = 0, next_attempt_at = now(), last_error = NULL, delivered_at = NULL;
    -- The customer's service history follows the disposition too.
    IF TG_OP = 'UPDATE' AND (NEW.disposition, NEW.notes) IS DISTINCT FROM (OLD.disposition, OLD.notes) THEN
        UPDATE service_history SET disposition = NEW.disposition, notes = NEW.notes
        WHERE call_id = NEW.call_id;
    END IF;
    PERFORM pg_notify('call_outbox', NEW.call_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER call_records_enqueue AFTER INSERT OR UPDATE ON call_records
    FOR EACH ROW EXECUTE FUNCTION call_records_enqueue();
