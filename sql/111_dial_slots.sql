-- `[dial] per_minute` shared by every bridge instance on the database (issue 18): one row per
-- dial placed in the last minute, per agent, counted under the agent's advisory lock
-- (bridge/dial/slots.py). `at` is seconds on the bridges' wall clock (time.time()).
CREATE TABLE dial_slots (
    agent_id  text NOT NULL,
    at        double precision NOT NULL
);
CREATE INDEX dial_slots_agent_idx ON dial_slots (agent_id, at);
