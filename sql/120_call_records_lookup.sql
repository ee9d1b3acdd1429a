-- The record writer's look-up (bridge/records/store.py), and the calls' record locks.
--
-- call_records_lookup_rows: each call's routing decision (its first, by linkedid or by any of
-- its channels), its caller's customer, the agents' ids by device and the dispositions filed
-- so far, with a `stamp` of all that (so every part is in a set order). The UNION keeps both
-- branches on an index.
CREATE FUNCTION call_records_lookup_rows(
    call_ids text[], e164s text[], chan_calls bigint[], chan_ids text[], devices text[]
) RETURNS TABLE (
    i bigint, customer_id text, rule text, queue text, recording text, degraded boolean,
    phone_customer text, agent_ids json, filed json, stamp text
) LANGUAGE sql STABLE AS $$
    WITH calls AS (
        SELECT * FROM unnest(call_ids, e164s) WITH ORDINALITY AS c(call_id, e164, i)
    ), chans AS (
        SELECT * FROM unnest(chan_calls, chan_ids) AS u(i, uniqueid)
    ), found AS (
        SELECT c.i, d.customer_id, d.rule, d.queue, d.recording, d.degraded,
               p.customer_id AS phone_customer,
               (SELECT COALESCE(json_object_agg(a.pbx_device, a.id ORDER BY a.pbx_device),
                                 '{}'::json)
                  FROM agents a WHERE a.pbx_device = ANY(devices)) AS agent_ids,
               (SELECT COALESCE(json_agg(json_build_object('agent_id', f.agent_id,
                          'disposition', f.disposition, 'notes', f.notes)
                          ORDER BY f.filed_at, f.agent_id), '[]'::json)
                  FROM call_dispositions f WHERE f.call_id = c.call_id) AS filed
        FROM calls c
        LEFT JOIN customer_phones p ON p.e164 = c.e164
        LEFT JOIN LATERAL (
            SELECT x.customer_id, x.rule, x.queue, x.recording, x.degraded
            FROM (
                SELECT r.* FROM route_decisions r WHERE r.linkedid = c.call_id
                UNION ALL
                SELECT r.* FROM chans u JOIN route_decisions r ON r.uniqueid = u.uniqueid
                WHERE u.i = c.i
            ) AS x
            ORDER BY x.decided_at, x.uniqueid
            LIMIT 1
        ) AS d ON true
    )
    SELECT found.*, md5(found::text) FROM found ORDER BY found.i
$$;

-- call_records_lookup: takes each call's record lock (the advisory lock dispositions take
-- too, `lock_call`), in one order so two writers never deadlock, and only then looks up. A
-- VOLATILE function runs each statement on a fresh snapshot: the look-up sees a disposition
-- committed while this waited for the lock.
CREATE FUNCTION call_records_lookup(
    call_ids text[], e164s text[], chan_calls bigint[], chan_ids text[], devices text[]
) RETURNS TABLE (
    i bigint, customer_id text, rule text, queue text, recording text, degraded boolean,
    phone_customer text, agent_ids json, filed json, stamp text
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('call-record:' || ids.id, 0))
    FROM (SELECT DISTINCT unnest(call_ids) AS id ORDER BY 1) AS ids;
    RETURN QUERY SELECT * FROM call_records_lookup_rows(call_ids, e164s, chan_calls, chan_ids,
                                                        devices);
END
$$;

-- call_records_unchanged: takes the calls' record locks as call_records_lookup does, then
-- tells whether the look-up still gives `stamps`. The records' upsert calls it first, so a
-- look-up made without the locks is written only if nothing it read changed meanwhile.
CREATE FUNCTION call_records_unchanged(
    call_ids text[], e164s text[], chan_calls bigint[], chan_ids text[], devices text[],
    stamps text[]
) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('call-record:' || ids.id, 0))
    FROM (SELECT DISTINCT unnest(call_ids) AS id ORDER BY 1) AS ids;
    RETURN NOT EXISTS (
        SELECT 1 FROM call_records_lookup_rows(call_ids, e164s, chan_calls, chan_ids, devices) l
        WHERE l.stamp IS DISTINCT FROM stamps[l.i]
    );
END
$$;
