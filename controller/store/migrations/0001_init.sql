-- project38 initial schema: inbox (deliveries), work queue, outbox (actions), audit, resource state.

CREATE TABLE deliveries (
    id            bigserial PRIMARY KEY,
    source        text        NOT NULL,               -- github | railway | n8n
    hook          text        NOT NULL DEFAULT '',    -- hook id, else installation id, else ''
    guid          text        NOT NULL,               -- X-GitHub-Delivery (or derived)
    event         text        NOT NULL,
    action        text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processed', 'failed', 'ignored')),
    accepted      integer     NOT NULL DEFAULT 1,     -- times accepted (1 + redeliveries after failure)
    processed_at  timestamptz,
    error         text,
    -- guid first: the same index finds a delivery by GUID alone (the API, `p38 replay`).
    CONSTRAINT deliveries_identity UNIQUE (guid, source, hook)
) WITH (fillfactor = 80);  -- room for HOT updates when a delivery's status changes
CREATE INDEX deliveries_source_event_idx ON deliveries (source, event, id DESC);

-- What was received, written once and never updated (status changes touch only the small
-- row above). The payload is the JSON document exactly as received (the handler validated
-- it): re-verifiable, and not parsed again here. Read it as payload::jsonb in SQL.
CREATE TABLE delivery_payloads (
    delivery_id  bigint PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    headers      jsonb  NOT NULL DEFAULT '{}',
    payload      text   NOT NULL
) WITH (toast_tuple_target = 8160);  -- a compressed payload stays in the row, not in TOAST
-- lz4 compresses payloads several times faster than pglz; servers built without it keep pglz.
DO $$
BEGIN
    ALTER TABLE delivery_payloads ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server; delivery payloads use pglz';
END $$;

-- Which reconcile keys each delivery produced, and whether each was reconciled since: the
-- record of what is pending. A reconcile answers for the pending rows of its key it saw when
-- it claimed the key.
CREATE TABLE delivery_keys (
    delivery_id  bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    key          text   NOT NULL,
    status       text   NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    PRIMARY KEY (delivery_id, key)
);
CREATE INDEX delivery_keys_key_idx ON delivery_keys (key, delivery_id DESC);
CREATE INDEX delivery_keys_pending_idx ON delivery_keys (key, delivery_id) WHERE status = 'pending';

-- One row per key (coalescing), constant size however many hints arrive. `dirty`: a hint
-- arrived while the key was leased, so it is reconciled again after the current lease.
CREATE TABLE work_queue (
    key            text        PRIMARY KEY,
    kind           text        NOT NULL,
    state          text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'dead')),
    not_before     timestamptz NOT NULL DEFAULT now(),
    attempts       integer     NOT NULL DEFAULT 0,
    dirty          boolean     NOT NULL DEFAULT false,
    lease_holder   text,
    lease_token    uuid,
    lease_expires  timestamptz,
    last_error     text,
    enqueued_at    timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_queue_ready_idx ON work_queue (not_before) WHERE state = 'queued';

-- The outbox: every side effect, recorded before it runs.
CREATE TABLE actions (
    id               bigserial PRIMARY KEY,
    idempotency_key  text        NOT NULL UNIQUE,
    kind             text        NOT NULL,
    params           jsonb       NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                                       'dry_run', 'held', 'skipped')),
    reason           text,
    attempts         integer     NOT NULL DEFAULT 0,
    result           jsonb,
    error            text,
    key              text,
    reconcile_id     uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX actions_key_idx ON actions (key, id DESC);

CREATE TABLE approvals (
    idempotency_key  text        PRIMARY KEY,
    approved_by      text        NOT NULL,
    approved_at      timestamptz NOT NULL DEFAULT now()
);

-- Current state of each object a reconciler owns, with an optimistic-concurrency version.
CREATE TABLE resource_state (
    kind        text        NOT NULL,
    name        text        NOT NULL,
    state       text        NOT NULL,
    version     integer     NOT NULL,
    data        jsonb       NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);

CREATE TABLE transitions (
    id            bigserial PRIMARY KEY,
    kind          text        NOT NULL,
    name          text        NOT NULL,
    from_state    text,
    to_state      text        NOT NULL,
    version       integer     NOT NULL,
    reason        text,
    reconcile_id  uuid,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transitions_object_idx ON transitions (kind, name, id DESC);

-- One row per reconcile.
CREATE TABLE audit (
    id            bigserial PRIMARY KEY,
    reconcile_id  uuid        NOT NULL UNIQUE,
    key           text        NOT NULL,
    kind          text        NOT NULL,
    worker        text        NOT NULL,
    deliveries    bigint[]    NOT NULL DEFAULT '{}',
    attempt       integer     NOT NULL,
    outcome       text        NOT NULL,     -- done | requeue | retry | dead | lost
    phases        jsonb       NOT NULL DEFAULT '{}',
    decision      text,
    reason        text,
    actions       jsonb       NOT NULL DEFAULT '[]',
    error         text,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision NOT NULL
);
CREATE INDEX audit_key_idx ON audit (key, id DESC);
