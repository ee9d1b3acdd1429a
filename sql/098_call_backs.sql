-- Click-to-call and call backs (issue 12). A dial placed from the callback list links its new
-- call (the Originate's ChannelId, which becomes the Linkedid) to the abandoned call it
-- answers; the callback list itself is a query over call_records (bridge/dial/callbacks.py),
-- so it empties itself once an answered call with that number exists, in either direction.
CREATE TABLE call_backs (
    call_id      text PRIMARY KEY,                 -- the new, outbound call
    callback_of  text NOT NULL,                    -- the abandoned or unanswered call
    agent        text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_backs_of_idx ON call_backs (callback_of);
-- Numbers compare by their last ten digits: records keep caller IDs as the PBX gave them.
CREATE INDEX call_records_number_key_idx
    ON call_records ((right(regexp_replace(caller, '\D', '', 'g'), 10)), started_at);
