-- The built-in CRM store: customers, their phones, tags and the business records agents
-- need on a screen-pop, plus the agents themselves and who owns which customer.

CREATE TABLE agents (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor', 'admin')),
    device      text NOT NULL UNIQUE CHECK (device ~ '^[A-Za-z0-9_.+-]{1,64}$'),
    token_hash  text NOT NULL UNIQUE,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One customer per phone: the primary key on the E.164 number enforces it.
CREATE TABLE customer_phones (
    e164        text PRIMARY KEY CHECK (e164 ~ '^\+[1-9][0-9]{5,14}$'),
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_phones_customer_idx ON customer_phones (customer_id);

CREATE TABLE customer_tags (
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    tag         text NOT NULL CHECK (tag ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    PRIMARY KEY (customer_id, tag)
);
CREATE INDEX customer_tags_tag_idx ON customer_tags (tag);

-- Which agent owns which customer (at most one owner per customer).
CREATE TABLE customer_owners (
    customer_id text PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    agent_id    text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    since       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_owners_agent_idx ON customer_owners (agent_id);

CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    reference   text NOT NULL DEFAULT '',
    product     text NOT NULL,
    amount      numeric(14, 2) NOT NULL DEFAULT 0,
    currency    text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    status      text NOT NULL DEFAULT 'placed',
    ordered_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_recent_idx ON orders (customer_id, ordered_at DESC);

-- Contracts and loans with their progress (e.g. 7 of 24 instalments paid).
CREATE TABLE contracts (
    id            bigserial PRIMARY KEY,
    customer_id   text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind          text NOT NULL DEFAULT 'contract' CHECK (kind IN ('contract', 'loan', 'subscription')),
    reference     text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'active',
    stage         text NOT NULL DEFAULT '',
    progress_pct  numeric(5, 2) NOT NULL DEFAULT 0 CHECK (progress_pct BETWEEN 0 AND 100),
    total_amount  numeric(14, 2),
    paid_amount   numeric(14, 2),
    started_at    timestamptz NOT NULL DEFAULT now(),
    due_at        timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contracts_customer_idx ON contracts (customer_id, started_at DESC);

-- Marketing history: campaigns reached and coupons issued or redeemed.
CREATE TABLE marketing_events (
    id           bigserial PRIMARY KEY,
    customer_id  text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    campaign     text NOT NULL,
    channel      text NOT NULL DEFAULT '',
    coupon_code  text,
    status       text NOT NULL DEFAULT 'sent',
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX marketing_events_customer_idx ON marketing_events (customer_id, occurred_at DESC);

-- Ordered routing rules. Conditions combine with AND; NULL means "no condition".
CREATE TABLE routing_rules (
    name            text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,80}$'),
    position        integer NOT NULL,
    queue           text NOT NULL CHECK (queue ~ '^[A-Za-z0-9_.-]{1,80}$'),
    priority        integer NOT NULL DEFAULT 0,
    tags_any        text[],
    tags_all        text[],
    unknown_caller  boolean NOT NULL DEFAULT false,
    caller_prefix   text,
    did             text,
    when_spec       text,
    attr_spec       text,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_rules_position_idx ON routing_rules (position, name);

-- One row per call, keyed by the call's Linkedid (CONTRACT "Call records").
CREATE TABLE call_records (
    call_id         text PRIMARY KEY CHECK (length(call_id) BETWEEN 1 AND 150),
    caller          text NOT NULL DEFAULT '',
    customer_id     text,
    did             text NOT NULL DEFAULT '',
    queue           text,
    rule            text,
    agents          jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(agents) = 'array'),
    started_at      timestamptz,
    answered_at     timestamptz,
    ended_at        timestamptz,
    duration_s      integer,
    talk_s          integer,
    outcome         text CHECK (outcome IN ('answered', 'abandoned', 'unanswered')),
    recording_path  text,
    disposition     text CHECK (disposition IN ('resolved', 'follow_up', 'complaint')),
    notes           text,
    degraded        boolean NOT NULL DEFAULT false,
    inferred        text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_records_customer_idx ON call_records (customer_id, ended_at DESC);
CREATE INDEX call_records_ended_idx ON call_records (ended_at DESC);

-- Per-customer service history: calls, plus anything the CRM imports (tickets, visits).
CREATE TABLE service_history (
    id           bigserial PRIMARY KEY,
    customer_id  text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    call_id      text UNIQUE,
    kind         text NOT NULL DEFAULT 'call',
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    agent_id     text,
    summary      text NOT NULL DEFAULT '',
    outcome      text,
    disposition  text,
    notes        text
);
CREATE INDEX service_history_customer_idx ON service_history (customer_id, occurred_at DESC);
