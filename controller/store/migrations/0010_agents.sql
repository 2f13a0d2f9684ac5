-- Agents: their versions (immutable once finished), their runs, the state one run hands to the
-- next, and schedule ticks (one row per schedule and due time, so a tick fires once whatever
-- the number of controller processes). Only additions.

-- One version of an agent's code: written by Claude from the manifest, or read from the
-- repository (`spec.code`). PENDING -> GENERATING -> VALIDATING -> READY | FAILED; a finished
-- version never changes (the trigger below). `agent` is the object key (agent:source/name).
CREATE TABLE agent_versions (
    agent              text        NOT NULL,
    number             integer     NOT NULL CHECK (number > 0),
    spec_hash          text        NOT NULL,
    state              text        NOT NULL DEFAULT 'PENDING'
                       CHECK (state IN ('PENDING', 'GENERATING', 'VALIDATING', 'READY',
                                        'FAILED')),
    origin             text        NOT NULL CHECK (origin IN ('generated', 'code')),
    model              text,
    spec               jsonb       NOT NULL,
    code               text,
    test               text,
    report             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    rounds             integer     NOT NULL DEFAULT 0,
    input_tokens       bigint      NOT NULL DEFAULT 0,
    output_tokens      bigint      NOT NULL DEFAULT 0,
    cache_read_tokens  bigint      NOT NULL DEFAULT 0,
    cache_write_tokens bigint      NOT NULL DEFAULT 0,
    usd                numeric(12, 6) NOT NULL DEFAULT 0,
    duration_ms        double precision,
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    PRIMARY KEY (agent, number)
);
CREATE INDEX agent_versions_hash ON agent_versions (agent, spec_hash, number DESC);

CREATE FUNCTION p38_agent_version_frozen_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state IN ('READY', 'FAILED') THEN
        RAISE EXCEPTION 'agent version %/% is % and cannot change', OLD.agent, OLD.number,
            OLD.state USING ERRCODE = 'P3803';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER agent_versions_frozen BEFORE UPDATE ON agent_versions
    FOR EACH ROW EXECUTE FUNCTION p38_agent_version_frozen_v1();

-- One run of an agent. `outcome` is NULL while queued or running.
CREATE TABLE agent_runs (
    id           bigserial   PRIMARY KEY,
    agent        text        NOT NULL,
    version      integer,
    trigger      text        NOT NULL CHECK (trigger IN ('schedule', 'manual', 'n8n')),
    requested_by text,
    schedule     text,
    input        jsonb,
    state        text        NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'finished')),
    outcome      text        CHECK (outcome IN ('succeeded', 'failed', 'timed_out', 'killed',
                                                'over_budget', 'cancelled')),
    result       jsonb,
    error        text,
    stderr       text,
    tool_calls   jsonb       NOT NULL DEFAULT '[]'::jsonb,
    tokens       bigint      NOT NULL DEFAULT 0,
    usd          numeric(12, 6) NOT NULL DEFAULT 0,
    isolation    jsonb,
    stop_requested text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    ended_at     timestamptz
);
CREATE INDEX agent_runs_agent ON agent_runs (agent, id DESC);
CREATE INDEX agent_runs_active ON agent_runs (agent) WHERE state <> 'finished';
CREATE INDEX agent_runs_ended ON agent_runs (ended_at) WHERE state = 'finished';

-- What the last successful run of an agent handed over (`task.state`).
CREATE TABLE agent_state (
    agent      text        PRIMARY KEY,
    state      jsonb       NOT NULL,
    run_id     bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per schedule and due time: the INSERT that wins fires the tick.
CREATE TABLE schedule_ticks (
    schedule  text        NOT NULL,
    due_at    timestamptz NOT NULL,
    fired_at  timestamptz NOT NULL DEFAULT now(),
    outcome   text        NOT NULL CHECK (outcome IN ('fired', 'skipped')),
    reason    text,
    run_id    bigint,
    PRIMARY KEY (schedule, due_at)
);
CREATE INDEX schedule_ticks_fired ON schedule_ticks (fired_at);
