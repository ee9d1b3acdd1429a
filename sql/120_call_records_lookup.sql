-- call_records_lookup: the record writer's first round trip (bridge/records/store.py).
-- Takes each call's record lock (the advisory lock dispositions take too, `lock_call`), in
-- one order so two writers never deadlock, and only then looks up each call's routing
-- decision, its caller's customer, the agents' ids and the dispositions filed so far. A
-- VOLATILE function runs each statement on a fresh snapshot: the lookup sees a disposition
-- committed while this waited for the lock, as a separate lock statement did.
CREATE FUNCTION call_records_lookup(
    call_ids text[], e164s text[], chan_calls bigint[], chan_ids text[], devices text[]
) RETURNS TABLE (
    i bigint, customer_id text, rule text, queue text, recording text, degraded boolean,
    phone_customer text, agent_ids json, filed json
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('call-record:' || ids.id, 0))
    FROM (SELECT DISTINCT unnest(call_ids) AS id ORDER BY 1) AS ids;
    RETURN QUERY
    WITH calls AS (
        SELECT * FROM unnest(call_ids, e164s) WITH ORDINALITY AS c(call_id, e164, i)
    ), chans AS (
        SELECT * FROM unnest(chan_calls, chan_ids) AS u(i, uniqueid)
    )
    SELECT c.i, d.customer_id, d.rule, d.queue, d.recording, d.degraded,
           p.customer_id,
           (SELECT COALESCE(json_object_agg(a.pbx_device, a.id), '{}'::json)
              FROM agents a WHERE a.pbx_device = ANY(devices)),
           (SELECT COALESCE(json_agg(json_build_object('agent_id', f.agent_id,
                      'disposition', f.disposition, 'notes', f.notes)
                      ORDER BY f.filed_at, f.agent_id), '[]'::json)
              FROM call_dispositions f WHERE f.call_id = c.call_id)
    FROM calls c
    LEFT JOIN customer_phones p ON p.e164 = c.e164
    LEFT JOIN LATERAL (
        -- The UNION keeps both branches on an index.
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
    ORDER BY c.i;
END
$$;
