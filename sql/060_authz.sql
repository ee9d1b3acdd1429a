-- Authorization and its trail (issue 10).
--
-- call_dispositions  each agent's own disposition and notes for a call, filed from the agent
--                    page while the call is live or after it ended; the call-record writer
--                    copies them into the record's `agents` entries and its top-level pair
--                    (the last one filed). One row per (call, agent): filing again replaces it.
-- card_views         every customer card delivered in a pop: who saw which customer's data,
--                    on which call, and which sections of it (GET /api/audit, kind card_view).

CREATE TABLE call_dispositions (
    call_id      text NOT NULL CHECK (length(call_id) BETWEEN 1 AND 150),
    agent_id     text NOT NULL CHECK (length(agent_id) BETWEEN 1 AND 64),
    disposition  text NOT NULL CHECK (disposition IN ('resolved', 'follow_up', 'complaint')),
    notes        text NOT NULL DEFAULT '',
    filed_by     text NOT NULL,
    filed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (call_id, agent_id)
);
CREATE INDEX call_dispositions_filed_idx ON call_dispositions (filed_at);

CREATE TABLE card_views (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    agent_id     text NOT NULL,
    customer_id  text NOT NULL,
    call_id      text NOT NULL DEFAULT '',
    sections     text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX card_views_customer_idx ON card_views (customer_id, at DESC);
CREATE INDEX card_views_agent_idx ON card_views (agent_id, at DESC);
CREATE INDEX card_views_call_idx ON card_views (call_id);
CREATE INDEX card_views_at_idx ON card_views (at DESC);
