-- Which agents a call's pops went to: rung, answered or transferred to. The pop hub writes a
-- row as it pops; filing a disposition checks it (CONTRACT: an agent files the disposition
-- of a call it was rung for or answered). Kept small: one row per (call, agent, how).
CREATE TABLE call_participants (
    call_id   text NOT NULL CHECK (length(call_id) BETWEEN 1 AND 150),
    agent_id  text NOT NULL,
    how       text NOT NULL CHECK (how IN ('rung', 'answered', 'transferred')),
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, agent_id, how)
);
CREATE INDEX call_participants_at_idx ON call_participants (at);
