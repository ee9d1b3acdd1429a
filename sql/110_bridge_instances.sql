-- Several `crm-bridge run` instances on one database (issue 18): each keeps one row here,
-- refreshed every `[cluster] takeover_s` / 3 by its lease loop (bridge/cluster/lease.py).
-- Peers are the rows seen within a few takeover_s; `role` says which one holds the
-- singleton jobs' advisory-lock lease ('leader') and which wait ('standby'). A row whose
-- instance died stays until the leader prunes it (seen over a day ago).
CREATE TABLE bridge_instances (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    host        text NOT NULL DEFAULT '',
    pid         integer NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    role        text NOT NULL DEFAULT 'standby' CHECK (role IN ('leader', 'standby'))
);
CREATE INDEX bridge_instances_seen_idx ON bridge_instances (seen_at);
