-- The schema the migrations build, read back from PostgreSQL's catalogs
-- (controller/store/snapshot.py). Not applied by anything: the migrations are the source;
-- this file shows the result in one place and a test keeps it true.

CREATE TABLE actions (
    id bigint NOT NULL DEFAULT nextval('actions_id_seq'::regclass),
    idempotency_key text NOT NULL,
    kind text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    status text NOT NULL DEFAULT 'pending'::text,
    reason text,
    attempts integer NOT NULL DEFAULT 0,
    result jsonb,
    error text,
    key text,
    reconcile_id uuid,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    description text NOT NULL DEFAULT ''::text
);
ALTER TABLE actions ADD CONSTRAINT actions_idempotency_key_key UNIQUE (idempotency_key);
ALTER TABLE actions ADD CONSTRAINT actions_pkey PRIMARY KEY (id);
ALTER TABLE actions ADD CONSTRAINT actions_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'dry_run'::text, 'held'::text, 'skipped'::text])));

CREATE TABLE agent_rebuilds (
    agent text NOT NULL,
    after_version integer NOT NULL,
    asked_by text NOT NULL,
    asked_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE agent_rebuilds ADD CONSTRAINT agent_rebuilds_pkey PRIMARY KEY (agent);

CREATE TABLE agent_runs (
    id bigint NOT NULL DEFAULT nextval('agent_runs_id_seq'::regclass),
    agent text NOT NULL,
    version integer,
    trigger text NOT NULL,
    requested_by text,
    schedule text,
    input jsonb,
    state text NOT NULL DEFAULT 'queued'::text,
    outcome text,
    result jsonb,
    error text,
    stderr text,
    tool_calls jsonb NOT NULL DEFAULT '[]'::jsonb,
    tokens bigint NOT NULL DEFAULT 0,
    usd numeric(12,6) NOT NULL DEFAULT 0,
    isolation jsonb,
    stop_requested text,
    requested_at timestamp with time zone NOT NULL DEFAULT now(),
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    interruptions integer NOT NULL DEFAULT 0
);
ALTER TABLE agent_runs ADD CONSTRAINT agent_runs_outcome_check CHECK ((outcome = ANY (ARRAY['succeeded'::text, 'failed'::text, 'timed_out'::text, 'killed'::text, 'over_budget'::text, 'cancelled'::text, 'interrupted'::text])));
ALTER TABLE agent_runs ADD CONSTRAINT agent_runs_pkey PRIMARY KEY (id);
ALTER TABLE agent_runs ADD CONSTRAINT agent_runs_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'running'::text, 'finished'::text])));
ALTER TABLE agent_runs ADD CONSTRAINT agent_runs_trigger_check CHECK ((trigger = ANY (ARRAY['schedule'::text, 'manual'::text, 'n8n'::text])));

CREATE TABLE agent_state (
    agent text NOT NULL,
    state jsonb NOT NULL,
    run_id bigint NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE agent_state ADD CONSTRAINT agent_state_pkey PRIMARY KEY (agent);

CREATE TABLE agent_versions (
    agent text NOT NULL,
    number integer NOT NULL,
    spec_hash text NOT NULL,
    state text NOT NULL DEFAULT 'PENDING'::text,
    origin text NOT NULL,
    model text,
    spec jsonb NOT NULL,
    code text,
    test text,
    report jsonb NOT NULL DEFAULT '{}'::jsonb,
    rounds integer NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cache_read_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    usd numeric(12,6) NOT NULL DEFAULT 0,
    duration_ms double precision,
    error text,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    finished_at timestamp with time zone,
    failure text,
    failed_credential text,
    session jsonb
);
ALTER TABLE agent_versions ADD CONSTRAINT agent_versions_failure_check CHECK (((failure IS NULL) OR (failure = ANY (ARRAY['agent'::text, 'provider'::text]))));
ALTER TABLE agent_versions ADD CONSTRAINT agent_versions_number_check CHECK ((number > 0));
ALTER TABLE agent_versions ADD CONSTRAINT agent_versions_origin_check CHECK ((origin = ANY (ARRAY['generated'::text, 'code'::text])));
ALTER TABLE agent_versions ADD CONSTRAINT agent_versions_pkey PRIMARY KEY (agent, number);
ALTER TABLE agent_versions ADD CONSTRAINT agent_versions_state_check CHECK ((state = ANY (ARRAY['PENDING'::text, 'GENERATING'::text, 'VALIDATING'::text, 'READY'::text, 'FAILED'::text])));

CREATE TABLE applied_objects (
    source text NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    content_hash text NOT NULL,
    document jsonb NOT NULL,
    revision text,
    applied_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE applied_objects ADD CONSTRAINT applied_objects_pkey PRIMARY KEY (source, kind, name);

CREATE TABLE approvals (
    idempotency_key text NOT NULL,
    approved_by text NOT NULL,
    approved_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE approvals ADD CONSTRAINT approvals_pkey PRIMARY KEY (idempotency_key);

CREATE TABLE audit (
    id bigint NOT NULL DEFAULT nextval('audit_id_seq'::regclass),
    reconcile_id uuid NOT NULL,
    key text NOT NULL,
    kind text NOT NULL,
    worker text NOT NULL,
    deliveries bigint[] NOT NULL DEFAULT '{}'::bigint[],
    attempt integer NOT NULL,
    outcome text NOT NULL,
    phases jsonb NOT NULL DEFAULT '{}'::jsonb,
    decision text,
    reason text,
    actions jsonb NOT NULL DEFAULT '[]'::jsonb,
    error text,
    started_at timestamp with time zone NOT NULL,
    duration_ms double precision NOT NULL
);
ALTER TABLE audit ADD CONSTRAINT audit_pkey PRIMARY KEY (id);
ALTER TABLE audit ADD CONSTRAINT audit_reconcile_id_key UNIQUE (reconcile_id);

CREATE TABLE claude_tasks (
    id bigint NOT NULL DEFAULT nextval('claude_tasks_id_seq'::regclass),
    repo text NOT NULL,
    issue integer NOT NULL,
    comment_id bigint NOT NULL,
    installation_id bigint,
    on_pull boolean NOT NULL DEFAULT false,
    requested_by text NOT NULL,
    command text NOT NULL,
    retry_of bigint,
    state text NOT NULL DEFAULT 'RECEIVED'::text,
    reason text NOT NULL DEFAULT ''::text,
    history jsonb NOT NULL DEFAULT '[]'::jsonb,
    model text,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cache_read_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    usd numeric(12,6) NOT NULL DEFAULT 0,
    tool_calls integer NOT NULL DEFAULT 0,
    base_branch text,
    base_sha text,
    branch text,
    change jsonb,
    title text,
    summary text,
    pull_number integer,
    pull_url text,
    commit_sha text,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    finished_at timestamp with time zone,
    untrusted_input text[] NOT NULL DEFAULT '{}'::text[],
    session jsonb
);
ALTER TABLE claude_tasks ADD CONSTRAINT claude_tasks_pkey PRIMARY KEY (id);
ALTER TABLE claude_tasks ADD CONSTRAINT claude_tasks_repo_comment_id_key UNIQUE (repo, comment_id);
ALTER TABLE claude_tasks ADD CONSTRAINT claude_tasks_retry_of_fkey FOREIGN KEY (retry_of) REFERENCES claude_tasks(id);
ALTER TABLE claude_tasks ADD CONSTRAINT claude_tasks_state_check CHECK ((state = ANY (ARRAY['RECEIVED'::text, 'AUTHORIZED'::text, 'WORKING'::text, 'PR_OPENED'::text, 'FAILED'::text, 'REFUSED'::text, 'CANCELLED'::text, 'DRY_RUN'::text])));

CREATE TABLE controllers (
    id uuid NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    workers integer NOT NULL DEFAULT 0,
    run_workers integer NOT NULL DEFAULT 0,
    started_at timestamp with time zone NOT NULL DEFAULT now(),
    last_seen timestamp with time zone NOT NULL DEFAULT now(),
    role text NOT NULL DEFAULT 'serve'::text,
    jobs jsonb NOT NULL DEFAULT '{}'::jsonb
);
ALTER TABLE controllers ADD CONSTRAINT controllers_pkey PRIMARY KEY (id);
ALTER TABLE controllers ADD CONSTRAINT controllers_role_check CHECK ((role = ANY (ARRAY['serve'::text, 'worker'::text])));

CREATE TABLE deliveries (
    id bigint NOT NULL DEFAULT nextval('deliveries_id_seq'::regclass),
    source text NOT NULL,
    hook text NOT NULL DEFAULT ''::text,
    guid text NOT NULL,
    event text NOT NULL,
    action text,
    received_at timestamp with time zone NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'pending'::text,
    accepted integer NOT NULL DEFAULT 1,
    processed_at timestamp with time zone,
    error text
);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_identity UNIQUE (guid, source, hook);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'processed'::text, 'failed'::text, 'ignored'::text])));
ALTER TABLE deliveries SET (fillfactor=80);

CREATE TABLE delivery_keys (
    delivery_id bigint NOT NULL,
    key text NOT NULL,
    status text NOT NULL DEFAULT 'pending'::text
);
ALTER TABLE delivery_keys ADD CONSTRAINT delivery_keys_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES deliveries(id) ON DELETE CASCADE;
ALTER TABLE delivery_keys ADD CONSTRAINT delivery_keys_pkey PRIMARY KEY (delivery_id, key);
ALTER TABLE delivery_keys ADD CONSTRAINT delivery_keys_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'done'::text, 'failed'::text])));

CREATE TABLE delivery_payloads (
    delivery_id bigint NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    payload text NOT NULL
);
ALTER TABLE delivery_payloads ADD CONSTRAINT delivery_payloads_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES deliveries(id) ON DELETE CASCADE;
ALTER TABLE delivery_payloads ADD CONSTRAINT delivery_payloads_pkey PRIMARY KEY (delivery_id);
ALTER TABLE delivery_payloads SET (toast_tuple_target=8160);

CREATE TABLE killswitches (
    source text NOT NULL,
    by_whom text NOT NULL,
    since timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE killswitches ADD CONSTRAINT killswitches_pkey PRIMARY KEY (source);

CREATE TABLE manifest_blobs (
    sha text NOT NULL,
    content text NOT NULL,
    fetched_at timestamp with time zone NOT NULL DEFAULT now(),
    used_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE manifest_blobs ADD CONSTRAINT manifest_blobs_pkey PRIMARY KEY (sha);

CREATE TABLE manifest_revisions (
    id bigint NOT NULL DEFAULT nextval('manifest_revisions_id_seq'::regclass),
    source text NOT NULL,
    revision text NOT NULL,
    tree text,
    status text NOT NULL,
    objects integer NOT NULL,
    changes jsonb NOT NULL DEFAULT '[]'::jsonb,
    problems jsonb NOT NULL DEFAULT '[]'::jsonb,
    recorded_at timestamp with time zone NOT NULL DEFAULT now(),
    generation bigint
);
ALTER TABLE manifest_revisions ADD CONSTRAINT manifest_revisions_pkey PRIMARY KEY (id);
ALTER TABLE manifest_revisions ADD CONSTRAINT manifest_revisions_status_check CHECK ((status = ANY (ARRAY['applied'::text, 'invalid'::text])));

CREATE TABLE object_status (
    key text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    reason text NOT NULL,
    message text NOT NULL DEFAULT ''::text,
    revision text,
    source text,
    since timestamp with time zone NOT NULL DEFAULT now(),
    reconciled_at timestamp with time zone NOT NULL DEFAULT now(),
    reconcile_id uuid
);
ALTER TABLE object_status ADD CONSTRAINT object_status_pkey PRIMARY KEY (key);
ALTER TABLE object_status ADD CONSTRAINT object_status_status_check CHECK ((status = ANY (ARRAY['Ready'::text, 'Reconciling'::text, 'Waiting'::text, 'Stalled'::text, 'Blocked'::text])));

CREATE TABLE operator_actions (
    id bigint NOT NULL DEFAULT nextval('operator_actions_id_seq'::regclass),
    at timestamp with time zone NOT NULL DEFAULT now(),
    by_whom text NOT NULL,
    via text NOT NULL,
    verb text NOT NULL,
    target text NOT NULL,
    outcome text NOT NULL,
    detail jsonb
);
ALTER TABLE operator_actions ADD CONSTRAINT operator_actions_pkey PRIMARY KEY (id);
ALTER TABLE operator_actions ADD CONSTRAINT operator_actions_via_check CHECK ((via = ANY (ARRAY['cli'::text, 'api'::text, 'page'::text])));

CREATE TABLE policy_epoch (
    only_row boolean NOT NULL DEFAULT true,
    epoch bigint NOT NULL
);
ALTER TABLE policy_epoch ADD CONSTRAINT policy_epoch_only_row_check CHECK (only_row);
ALTER TABLE policy_epoch ADD CONSTRAINT policy_epoch_pkey PRIMARY KEY (only_row);

CREATE TABLE resource_state (
    kind text NOT NULL,
    name text NOT NULL,
    state text NOT NULL,
    version integer NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE resource_state ADD CONSTRAINT resource_state_pkey PRIMARY KEY (kind, name);

CREATE TABLE schedule_ticks (
    schedule text NOT NULL,
    due_at timestamp with time zone NOT NULL,
    fired_at timestamp with time zone NOT NULL DEFAULT now(),
    outcome text NOT NULL,
    reason text,
    run_id bigint,
    armed jsonb
);
ALTER TABLE schedule_ticks ADD CONSTRAINT schedule_ticks_outcome_check CHECK ((outcome = ANY (ARRAY['fired'::text, 'skipped'::text, 'armed'::text])));
ALTER TABLE schedule_ticks ADD CONSTRAINT schedule_ticks_pkey PRIMARY KEY (schedule, due_at);

CREATE TABLE schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE schema_migrations ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

CREATE TABLE service_bad_commits (
    service text NOT NULL,
    commit_sha text NOT NULL,
    deployment text NOT NULL,
    reason text NOT NULL,
    marked_at timestamp with time zone NOT NULL DEFAULT now(),
    cleared_at timestamp with time zone,
    cleared_by text
);
ALTER TABLE service_bad_commits ADD CONSTRAINT service_bad_commits_pkey PRIMARY KEY (service, commit_sha);

CREATE TABLE service_incidents (
    service text NOT NULL,
    deployment text NOT NULL,
    commit_sha text,
    status text NOT NULL,
    rolled_back_to text,
    rolled_back_commit text,
    opened_at timestamp with time zone NOT NULL DEFAULT now(),
    closed_at timestamp with time zone,
    closed_by text
);
ALTER TABLE service_incidents ADD CONSTRAINT service_incidents_pkey PRIMARY KEY (service, deployment);

CREATE TABLE transitions (
    id bigint NOT NULL DEFAULT nextval('transitions_id_seq'::regclass),
    kind text NOT NULL,
    name text NOT NULL,
    from_state text,
    to_state text NOT NULL,
    version integer NOT NULL,
    reason text,
    reconcile_id uuid,
    at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE transitions ADD CONSTRAINT transitions_pkey PRIMARY KEY (id);

CREATE TABLE work_queue (
    key text NOT NULL,
    kind text NOT NULL,
    state text NOT NULL DEFAULT 'queued'::text,
    not_before timestamp with time zone NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    dirty boolean NOT NULL DEFAULT false,
    lease_holder text,
    lease_token uuid,
    lease_expires timestamp with time zone,
    last_error text,
    enqueued_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    wait_kind text,
    failing_since timestamp with time zone
);
ALTER TABLE work_queue ADD CONSTRAINT work_queue_pkey PRIMARY KEY (key);
ALTER TABLE work_queue ADD CONSTRAINT work_queue_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'dead'::text])));
ALTER TABLE work_queue ADD CONSTRAINT work_queue_wait_kind_check CHECK ((wait_kind = ANY (ARRAY['requeue'::text, 'backoff'::text, 'coalesce'::text, 'armed'::text])));

CREATE INDEX actions_held_idx ON public.actions USING btree (id DESC) WHERE (status = 'held'::text);
CREATE UNIQUE INDEX actions_idempotency_key_key ON public.actions USING btree (idempotency_key);
CREATE INDEX actions_key_idx ON public.actions USING btree (key, id DESC);
CREATE UNIQUE INDEX actions_pkey ON public.actions USING btree (id);
CREATE UNIQUE INDEX agent_rebuilds_pkey ON public.agent_rebuilds USING btree (agent);
CREATE INDEX agent_runs_active ON public.agent_runs USING btree (agent) WHERE (state <> 'finished'::text);
CREATE INDEX agent_runs_agent ON public.agent_runs USING btree (agent, id DESC);
CREATE INDEX agent_runs_ended ON public.agent_runs USING btree (ended_at) WHERE (state = 'finished'::text);
CREATE UNIQUE INDEX agent_runs_pkey ON public.agent_runs USING btree (id);
CREATE UNIQUE INDEX agent_state_pkey ON public.agent_state USING btree (agent);
CREATE INDEX agent_versions_hash ON public.agent_versions USING btree (agent, spec_hash, number DESC);
CREATE UNIQUE INDEX agent_versions_pkey ON public.agent_versions USING btree (agent, number);
CREATE UNIQUE INDEX applied_objects_pkey ON public.applied_objects USING btree (source, kind, name);
CREATE UNIQUE INDEX approvals_pkey ON public.approvals USING btree (idempotency_key);
CREATE INDEX audit_failed_idx ON public.audit USING btree (id DESC) WHERE (outcome = ANY (ARRAY['retry'::text, 'dead'::text]));
CREATE INDEX audit_key_idx ON public.audit USING btree (key, id DESC);
CREATE UNIQUE INDEX audit_pkey ON public.audit USING btree (id);
CREATE UNIQUE INDEX audit_reconcile_id_key ON public.audit USING btree (reconcile_id);
CREATE INDEX audit_started_brin ON public.audit USING brin (started_at);
CREATE INDEX claude_tasks_created_brin ON public.claude_tasks USING brin (created_at);
CREATE UNIQUE INDEX claude_tasks_pkey ON public.claude_tasks USING btree (id);
CREATE INDEX claude_tasks_pull_idx ON public.claude_tasks USING btree (repo, pull_number) WHERE (pull_number IS NOT NULL);
CREATE UNIQUE INDEX claude_tasks_repo_comment_id_key ON public.claude_tasks USING btree (repo, comment_id);
CREATE INDEX claude_tasks_thread_idx ON public.claude_tasks USING btree (repo, issue, id DESC);
CREATE INDEX controllers_last_seen_idx ON public.controllers USING btree (last_seen);
CREATE UNIQUE INDEX controllers_pkey ON public.controllers USING btree (id);
CREATE UNIQUE INDEX deliveries_identity ON public.deliveries USING btree (guid, source, hook);
CREATE UNIQUE INDEX deliveries_pkey ON public.deliveries USING btree (id);
CREATE INDEX deliveries_received_brin ON public.deliveries USING brin (received_at);
CREATE INDEX deliveries_source_event_idx ON public.deliveries USING btree (source, event, id DESC);
CREATE INDEX delivery_keys_key_idx ON public.delivery_keys USING btree (key, delivery_id DESC);
CREATE INDEX delivery_keys_pending_idx ON public.delivery_keys USING btree (key, delivery_id) WHERE (status = 'pending'::text);
CREATE UNIQUE INDEX delivery_keys_pkey ON public.delivery_keys USING btree (delivery_id, key);
CREATE UNIQUE INDEX delivery_payloads_pkey ON public.delivery_payloads USING btree (delivery_id);
CREATE UNIQUE INDEX killswitches_pkey ON public.killswitches USING btree (source);
CREATE UNIQUE INDEX manifest_blobs_pkey ON public.manifest_blobs USING btree (sha);
CREATE INDEX manifest_blobs_used_idx ON public.manifest_blobs USING btree (used_at);
CREATE UNIQUE INDEX manifest_revisions_once_idx ON public.manifest_revisions USING btree (source, revision, tree, status, generation);
CREATE UNIQUE INDEX manifest_revisions_pkey ON public.manifest_revisions USING btree (id);
CREATE INDEX manifest_revisions_source_idx ON public.manifest_revisions USING btree (source, id DESC);
CREATE INDEX object_status_kind_idx ON public.object_status USING btree (kind, reconciled_at);
CREATE UNIQUE INDEX object_status_pkey ON public.object_status USING btree (key);
CREATE INDEX object_status_source_idx ON public.object_status USING btree (source, status);
CREATE UNIQUE INDEX operator_actions_pkey ON public.operator_actions USING btree (id);
CREATE INDEX operator_actions_target_idx ON public.operator_actions USING btree (target, id DESC);
CREATE UNIQUE INDEX policy_epoch_pkey ON public.policy_epoch USING btree (only_row);
CREATE UNIQUE INDEX resource_state_pkey ON public.resource_state USING btree (kind, name);
CREATE INDEX resource_state_pull_head_idx ON public.resource_state USING btree (((data ->> 'head_sha'::text))) WHERE (kind = 'pull'::text);
CREATE INDEX schedule_ticks_armed ON public.schedule_ticks USING btree (run_id) WHERE (outcome = 'armed'::text);
CREATE INDEX schedule_ticks_fired ON public.schedule_ticks USING btree (fired_at);
CREATE UNIQUE INDEX schedule_ticks_pkey ON public.schedule_ticks USING btree (schedule, due_at);
CREATE UNIQUE INDEX schema_migrations_pkey ON public.schema_migrations USING btree (version);
CREATE UNIQUE INDEX service_bad_commits_pkey ON public.service_bad_commits USING btree (service, commit_sha);
CREATE INDEX service_incidents_open_idx ON public.service_incidents USING btree (service, opened_at DESC);
CREATE UNIQUE INDEX service_incidents_pkey ON public.service_incidents USING btree (service, deployment);
CREATE INDEX transitions_object_idx ON public.transitions USING btree (kind, name, id DESC);
CREATE UNIQUE INDEX transitions_pkey ON public.transitions USING btree (id);
CREATE UNIQUE INDEX work_queue_pkey ON public.work_queue USING btree (key);
CREATE INDEX work_queue_ready_idx ON public.work_queue USING btree (not_before) WHERE (state = 'queued'::text);

CREATE OR REPLACE FUNCTION public.p38_agent_version_frozen_v1()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF OLD.state IN ('READY', 'FAILED') THEN
        RAISE EXCEPTION 'agent version %/% is % and cannot change', OLD.agent, OLD.number,
            OLD.state USING ERRCODE = 'P3803';
    END IF;
    RETURN NEW;
END $function$;

CREATE OR REPLACE FUNCTION public.p38_arm_tick_v1(p_schedule text, p_due_at timestamp with time zone, p_agent text, p_armed jsonb, p_late_before timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_run bigint;
BEGIN
    PERFORM p38_disarm_v1(p_schedule => p_schedule, p_keep_due => p_due_at,
                          p_keep_hash => p_armed->>'hash', p_late_before => p_late_before);
    IF p_due_at IS NULL OR p_due_at <= now() THEN
        RETURN NULL;
    END IF;
    INSERT INTO schedule_ticks (schedule, due_at, outcome, reason, armed)
    VALUES (p_schedule, p_due_at, 'armed', 'armed: due at its instant', p_armed)
    ON CONFLICT (schedule, due_at) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO agent_runs (agent, trigger, requested_by, schedule, input)
    VALUES (p_agent, 'schedule', NULL, p_schedule,
            jsonb_build_object('due_at', to_char(p_due_at AT TIME ZONE 'UTC',
                                                 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')))
    RETURNING id INTO v_run;
    UPDATE schedule_ticks SET run_id = v_run WHERE schedule = p_schedule AND due_at = p_due_at;
    INSERT INTO work_queue (key, kind, not_before, wait_kind)
    VALUES ('run:' || substring(p_agent from 7) || '#' || v_run, 'run', p_due_at, 'armed')
    ON CONFLICT (key) DO NOTHING;
    RETURN v_run;
END $function$;

CREATE OR REPLACE FUNCTION public.p38_disarm_v1(p_schedule text, p_keep_due timestamp with time zone, p_keep_hash text, p_late_before timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_runs bigint[];
BEGIN
    WITH gone AS (
        DELETE FROM schedule_ticks t
        WHERE t.schedule = p_schedule AND t.outcome = 'armed'
          AND (t.due_at > now() OR t.due_at < p_late_before)
          AND NOT (t.due_at IS NOT DISTINCT FROM p_keep_due
                   AND t.armed->>'hash' IS NOT DISTINCT FROM p_keep_hash)
        RETURNING t.run_id
    )
    SELECT array_agg(run_id) INTO v_runs FROM gone;
    IF v_runs IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM work_queue q USING agent_runs r
    WHERE r.id = ANY(v_runs)
      AND q.key = 'run:' || substring(r.agent from 7) || '#' || r.id
      AND (q.lease_expires IS NULL OR q.lease_expires < now());
    DELETE FROM agent_runs WHERE id = ANY(v_runs) AND state = 'queued';
    RETURN cardinality(v_runs);
END $function$;

CREATE OR REPLACE FUNCTION public.p38_fire_armed_v1(p_schedule text, p_due_at timestamp with time zone, p_run bigint, p_outcome text, p_reason text, p_next timestamp with time zone, p_agent text, p_armed jsonb)
 RETURNS TABLE(decided boolean, next_run bigint)
 LANGUAGE plpgsql
AS $function$
BEGIN
    UPDATE schedule_ticks
    SET outcome = p_outcome, reason = p_reason, fired_at = now(),
        run_id = CASE WHEN p_outcome = 'fired' THEN run_id END
    WHERE schedule = p_schedule AND due_at = p_due_at AND outcome = 'armed'
      AND run_id = p_run;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::bigint;
        RETURN;
    END IF;
    IF p_outcome <> 'fired' THEN
        DELETE FROM agent_runs WHERE id = p_run AND state = 'queued';
    END IF;
    RETURN QUERY SELECT true, CASE WHEN p_next IS NULL THEN NULL::bigint ELSE
        p38_arm_tick_v1(p_schedule => p_schedule, p_due_at => p_next, p_agent => p_agent,
                        p_armed => p_armed) END;
END $function$;

CREATE OR REPLACE FUNCTION public.p38_hint_v1(p_keys text[], p_guid text, p_event text, p_origin jsonb)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_keys text[];
BEGIN
    SELECT array_agg(DISTINCT k ORDER BY k) INTO v_keys FROM unnest(p_keys) AS k;
    IF v_keys IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM p38_ingest_v2(
        p_idx => ARRAY[0], p_source => ARRAY['p38'], p_hook => ARRAY[''],
        p_guid => ARRAY[p_guid], p_event => ARRAY[p_event], p_action => ARRAY[NULL::text],
        p_headers => ARRAY['{}'], p_payload => ARRAY[p_origin::text],
        p_status => ARRAY['pending'], p_key_idx => array_fill(0, ARRAY[cardinality(v_keys)]),
        p_key => v_keys);
    RETURN cardinality(v_keys);
END $function$;

CREATE OR REPLACE FUNCTION public.p38_ingest(p_idx integer[], p_source text[], p_hook text[], p_guid text[], p_event text[], p_action text[], p_headers text[], p_payload text[], p_status text[], p_key_idx integer[], p_key text[])
 RETURNS TABLE(id bigint, idx integer, redelivered boolean)
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1338, hashtext(k))
    FROM (SELECT DISTINCT unnest(p_key) AS k ORDER BY 1) AS keys;

    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_idx, p_source, p_hook, p_guid, p_event, p_action, p_headers,
                             p_payload, p_status)
            AS t(idx, source, hook, guid, event, action, headers, payload, status)
    ), stored AS (
        INSERT INTO deliveries AS d (source, hook, guid, event, action, status)
        SELECT i.source, i.hook, i.guid, i.event, i.action, i.status
        FROM input i ORDER BY i.guid, i.source, i.hook
        ON CONFLICT ON CONSTRAINT deliveries_identity DO UPDATE
            SET status = excluded.status, accepted = d.accepted + 1, received_at = now(),
                processed_at = NULL, error = NULL, event = excluded.event,
                action = excluded.action
            WHERE d.status = 'failed'
        RETURNING d.id, d.source, d.hook, d.guid, d.accepted > 1 AS redelivered
    ), matched AS (
        SELECT s.id, s.redelivered, i.idx, i.headers, i.payload
        FROM stored s JOIN input i ON (i.source, i.hook, i.guid) = (s.source, s.hook, s.guid)
    ), kept AS (
        -- A redelivery replaces what was received (same GUID, possibly a newer body).
        INSERT INTO delivery_payloads AS p (delivery_id, headers, payload)
        SELECT m.id, m.headers::jsonb, m.payload FROM matched m ORDER BY m.id
        ON CONFLICT (delivery_id) DO UPDATE SET headers = excluded.headers,
                                                payload = excluded.payload
        RETURNING p.delivery_id
    ), linked AS (
        INSERT INTO delivery_keys AS dk (delivery_id, key)
        SELECT m.id, k.key
        FROM matched m JOIN unnest(p_key_idx, p_key) AS k(idx, key) ON k.idx = m.idx
        ORDER BY m.id, k.key
        ON CONFLICT (delivery_id, key) DO UPDATE SET status = 'pending'
        RETURNING dk.key
    ), queued AS (
        -- A key already queued is left alone (no row lock): its pending delivery_keys row is
        -- the hint, and the worker that completes it looks for exactly that.
        INSERT INTO work_queue AS q (key, kind)
        SELECT DISTINCT l.key, split_part(l.key, ':', 1) FROM linked l ORDER BY 1
        ON CONFLICT (key) DO NOTHING
        RETURNING q.key
    ), revived AS (
        UPDATE work_queue AS q
        SET state = 'queued', attempts = 0, not_before = now(), updated_at = now()
        WHERE q.key IN (SELECT l.key FROM linked l) AND q.state = 'dead'
        RETURNING q.key
    ), woken AS (
        -- Wake workers only for keys that became due now; a key already queued is waiting on
        -- its lease, debounce or backoff, and the workers' own timers cover it.
        SELECT pg_notify('p38_queue', '')
        FROM (SELECT 1 FROM queued UNION ALL SELECT 1 FROM revived LIMIT 1) AS newly_due
    )
    SELECT m.id, m.idx, m.redelivered
    FROM matched m
    WHERE (SELECT count(*) FROM woken) + (SELECT count(*) FROM queued)
          + (SELECT count(*) FROM revived) + (SELECT count(*) FROM kept) >= 0;  -- all run
END $function$;

CREATE OR REPLACE FUNCTION public.p38_ingest_v2(p_idx integer[], p_source text[], p_hook text[], p_guid text[], p_event text[], p_action text[], p_headers text[], p_payload text[], p_status text[], p_key_idx integer[], p_key text[])
 RETURNS TABLE(id bigint, idx integer, redelivered boolean)
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM p38_lock_keys_v1(p_shared => p_key, p_exclusive => NULL);

    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_idx, p_source, p_hook, p_guid, p_event, p_action, p_headers,
                             p_payload, p_status)
            AS t(idx, source, hook, guid, event, action, headers, payload, status)
    ), stored AS (
        INSERT INTO deliveries AS d (source, hook, guid, event, action, status)
        SELECT i.source, i.hook, i.guid, i.event, i.action, i.status
        FROM input i ORDER BY i.guid, i.source, i.hook
        ON CONFLICT ON CONSTRAINT deliveries_identity DO UPDATE
            SET status = excluded.status, accepted = d.accepted + 1, received_at = now(),
                processed_at = NULL, error = NULL, event = excluded.event,
                action = excluded.action
            WHERE d.status = 'failed'
        RETURNING d.id, d.source, d.hook, d.guid, d.accepted > 1 AS redelivered
    ), matched AS (
        SELECT s.id, s.redelivered, i.idx, i.headers, i.payload
        FROM stored s JOIN input i ON (i.source, i.hook, i.guid) = (s.source, s.hook, s.guid)
    ), kept AS (
        INSERT INTO delivery_payloads AS p (delivery_id, headers, payload)
        SELECT m.id, m.headers::jsonb, m.payload FROM matched m ORDER BY m.id
        ON CONFLICT (delivery_id) DO UPDATE SET headers = excluded.headers,
                                                payload = excluded.payload
        RETURNING p.delivery_id
    ), linked AS (
        INSERT INTO delivery_keys AS dk (delivery_id, key)
        SELECT m.id, k.key
        FROM matched m JOIN unnest(p_key_idx, p_key) AS k(idx, key) ON k.idx = m.idx
        ORDER BY m.id, k.key
        ON CONFLICT (delivery_id, key) DO UPDATE SET status = 'pending'
        RETURNING dk.key
    ), queued AS (
        INSERT INTO work_queue AS q (key, kind)
        SELECT DISTINCT l.key, split_part(l.key, ':', 1) FROM linked l ORDER BY 1
        ON CONFLICT (key) DO NOTHING
        RETURNING q.key
    ), revived AS (
        UPDATE work_queue AS q
        SET state = 'queued', attempts = 0, failing_since = NULL, wait_kind = NULL,
            not_before = now(), updated_at = now()
        WHERE q.key IN (SELECT l.key FROM linked l) AND q.state = 'dead'
        RETURNING q.key
    ), woken AS (
        -- A Waiting key is due now; rows someone holds are skipped (see the discipline).
        UPDATE work_queue AS q
        SET not_before = now(), wait_kind = NULL, updated_at = now()
        WHERE q.key IN (SELECT w.key FROM work_queue w
                        WHERE w.key IN (SELECT l.key FROM linked l) AND w.state = 'queued'
                          AND w.wait_kind = 'requeue' AND w.not_before > now()
                        FOR UPDATE SKIP LOCKED)
        RETURNING q.key
    ), notified AS (
        SELECT pg_notify('p38_queue', '')
        FROM (SELECT 1 FROM queued UNION ALL SELECT 1 FROM revived
              UNION ALL SELECT 1 FROM woken LIMIT 1) AS newly_due
    )
    SELECT m.id, m.idx, m.redelivered
    FROM matched m
    WHERE (SELECT count(*) FROM notified) + (SELECT count(*) FROM queued)
          + (SELECT count(*) FROM revived) + (SELECT count(*) FROM woken)
          + (SELECT count(*) FROM kept) >= 0;  -- all run
END $function$;

CREATE OR REPLACE FUNCTION public.p38_lock_keys_v1(p_shared text[], p_exclusive text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT l.h, bool_or(l.excl) AS excl
        FROM (SELECT hashtext(k) AS h, false AS excl FROM unnest(p_shared) AS k
              UNION ALL
              SELECT hashtext(p_exclusive), true WHERE p_exclusive IS NOT NULL) AS l
        GROUP BY l.h ORDER BY l.h
    LOOP
        IF r.excl THEN
            PERFORM pg_advisory_xact_lock(1338, r.h);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(1338, r.h);
        END IF;
    END LOOP;
END $function$;

CREATE OR REPLACE FUNCTION public.p38_policy_epoch_bump_v1()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    UPDATE policy_epoch SET epoch = epoch + 1;
    RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.p38_resync_v1(p_kinds text[], p_periods double precision[], p_guid text)
 RETURNS text[]
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_keys text[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(1339, 0) THEN
        RETURN NULL;  -- another replica is resyncing right now
    END IF;
    SELECT array_agg(s.key ORDER BY s.key) INTO v_keys
    FROM object_status s
    JOIN unnest(p_kinds, p_periods) AS p(kind, period) ON p.kind = s.kind
    LEFT JOIN work_queue q ON q.key = s.key
    WHERE s.reconciled_at < now() - make_interval(secs => p.period)
      AND (q.key IS NULL OR (q.state = 'dead' AND s.reason = 'GaveUp'));
    IF v_keys IS NOT NULL THEN
        PERFORM p38_hint_v1(p_keys => v_keys, p_guid => p_guid, p_event => 'resync',
                            p_origin => '{"from": "resync"}');
    END IF;
    RETURN v_keys;
END $function$;

CREATE OR REPLACE FUNCTION public.p38_settle(p_key text, p_token uuid, p_outcome text, p_deliveries bigint[], p_delay double precision, p_coalesce double precision, p_error text, p_t_to text, p_t_from text, p_t_data jsonb, p_t_expected integer, p_t_reason text, p_reconcile_id uuid, p_worker text, p_attempt integer, p_phases jsonb, p_decision text, p_reason text, p_actions jsonb, p_started timestamp with time zone, p_duration_ms double precision)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_kind text := split_part(p_key, ':', 1);
    v_name text := substr(p_key, length(split_part(p_key, ':', 1)) + 2);
    v_dirty boolean;
    v_more boolean;
    v_version int;
    v_failed bigint[];
BEGIN
    IF p_outcome = 'dead' THEN
        -- The key's deliveries are failed: wait for batches in flight, to fail theirs too.
        PERFORM pg_advisory_xact_lock(1338, hashtext(p_key));
    END IF;
    SELECT dirty INTO v_dirty FROM work_queue WHERE key = p_key AND lease_token = p_token
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease on % is no longer held', p_key USING ERRCODE = 'P3801';
    END IF;

    IF p_outcome IN ('done', 'requeue') THEN
        -- Will the row stay? Yes if it is dirty or other deliveries are pending. If it may go
        -- ('done' and nothing else pending), wait for ingest batches in flight for this key
        -- (they hold its lock shared) and look again, so none of their deliveries is orphaned.
        -- The lock is taken before this transaction changes any row an ingest could wait on.
        v_more := v_dirty OR EXISTS (
            SELECT 1 FROM delivery_keys
            WHERE key = p_key AND status = 'pending' AND NOT (delivery_id = ANY(p_deliveries)));
        IF p_outcome = 'done' AND NOT v_more THEN
            PERFORM pg_advisory_xact_lock(1338, hashtext(p_key));
            v_more := EXISTS (
                SELECT 1 FROM delivery_keys
                WHERE key = p_key AND status = 'pending' AND NOT (delivery_id = ANY(p_deliveries)));
        END IF;
    END IF;

    IF p_t_to IS NOT NULL AND p_outcome IN ('done', 'requeue') THEN
        IF p_t_expected IS NULL THEN
            INSERT INTO resource_state (kind, name, state, version, data)
            VALUES (v_kind, v_name, p_t_to, 1, p_t_data)
            ON CONFLICT (kind, name) DO NOTHING
            RETURNING version INTO v_version;
        ELSE
            UPDATE resource_state
            SET state = p_t_to, data = p_t_data, version = version + 1, updated_at = now()
            WHERE kind = v_kind AND name = v_name AND version = p_t_expected
            RETURNING version INTO v_version;
        END IF;
        IF v_version IS NULL THEN
            RAISE EXCEPTION '% changed since it was observed', p_key USING ERRCODE = 'P3802';
        END IF;
        INSERT INTO transitions (kind, name, from_state, to_state, version, reason, reconcile_id)
        VALUES (v_kind, v_name, p_t_from, p_t_to, v_version, p_t_reason, p_reconcile_id);
    END IF;

    IF p_outcome IN ('done', 'requeue') THEN
        UPDATE delivery_keys SET status = 'done'
        WHERE key = p_key AND delivery_id = ANY(p_deliveries) AND status = 'pending';
        PERFORM p38_settle_deliveries(p_deliveries, NULL);
        IF p_outcome = 'done' AND NOT v_more THEN
            DELETE FROM work_queue WHERE key = p_key;
        ELSE
            UPDATE work_queue
            SET lease_holder = NULL, lease_token = NULL, lease_expires = NULL, dirty = false,
                attempts = 0, last_error = NULL, updated_at = now(),
                not_before = now() + make_interval(secs => CASE
                    WHEN p_outcome = 'done' THEN p_coalesce
                    WHEN v_more THEN LEAST(p_delay, p_coalesce)
                    ELSE p_delay END)
            WHERE key = p_key;
        END IF;
    ELSIF p_outcome = 'retry' THEN
        UPDATE work_queue
        SET lease_holder = NULL, lease_token = NULL, lease_expires = NULL,
            not_before = now() + make_interval(secs => p_delay), last_error = p_error,
            updated_at = now()
        WHERE key = p_key;
    ELSIF p_outcome = 'dead' THEN
        UPDATE work_queue
        SET state = 'dead', lease_holder = NULL, lease_token = NULL, lease_expires = NULL,
            dirty = false, last_error = p_error, updated_at = now()
        WHERE key = p_key;
        WITH failed AS (
            UPDATE delivery_keys SET status = 'failed'
            WHERE key = p_key AND status = 'pending'
            RETURNING delivery_id
        )
        SELECT array_agg(delivery_id) INTO v_failed FROM failed;
        IF v_failed IS NOT NULL THEN
            PERFORM p38_settle_deliveries(v_failed, p_error);
        END IF;
    ELSE
        RAISE EXCEPTION 'unknown outcome %', p_outcome;
    END IF;

    INSERT INTO audit (reconcile_id, key, kind, worker, deliveries, attempt, outcome, phases,
                       decision, reason, actions, error, started_at, duration_ms)
    VALUES (p_reconcile_id, p_key, v_kind, p_worker, p_deliveries, p_attempt, p_outcome,
            p_phases, p_decision, p_reason, p_actions, p_error, p_started, p_duration_ms);
END $function$;

CREATE OR REPLACE FUNCTION public.p38_settle_deliveries(p_ids bigint[], p_error text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM 1 FROM deliveries WHERE id = ANY(p_ids) AND status = 'pending'
    ORDER BY id FOR UPDATE;
    UPDATE deliveries d
    SET status = CASE WHEN s.failed > 0 THEN 'failed' ELSE 'processed' END,
        processed_at = now(), error = CASE WHEN s.failed > 0 THEN p_error ELSE NULL END
    FROM (
        SELECT delivery_id,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'pending') AS pending
        FROM delivery_keys WHERE delivery_id = ANY(p_ids) GROUP BY delivery_id
    ) s
    WHERE d.id = s.delivery_id AND s.pending = 0 AND d.status = 'pending';
END $function$;

CREATE OR REPLACE FUNCTION public.p38_settle_v2(p_key text, p_token uuid, p_outcome text, p_deliveries bigint[], p_delay double precision, p_coalesce double precision, p_error text, p_transition jsonb, p_enqueue text[], p_status jsonb, p_audit jsonb, p_firm boolean DEFAULT false)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_kind text := split_part(p_key, ':', 1);
    v_name text := substr(p_key, length(split_part(p_key, ':', 1)) + 2);
    v_settled boolean := p_outcome IN ('done', 'requeue');
    v_enqueue text[] := CASE WHEN p_outcome IN ('done', 'requeue')
                             THEN array_remove(coalesce(p_enqueue, '{}'), p_key) ELSE '{}' END;
    v_reconcile uuid := (p_audit->>'reconcile_id')::uuid;
    v_dirty boolean;
    v_more boolean := false;
    v_version int;
    v_failed bigint[];
BEGIN
    PERFORM p38_lock_keys_v1(
        p_shared => v_enqueue,
        p_exclusive => CASE WHEN p_outcome = 'retry' THEN NULL ELSE p_key END);

    SELECT dirty INTO v_dirty FROM work_queue WHERE key = p_key AND lease_token = p_token
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease on % is no longer held', p_key USING ERRCODE = 'P3801';
    END IF;
    IF p_outcome <> 'retry' THEN
        -- Hints that arrived while it ran (batches in flight have committed: their lock).
        v_more := v_dirty OR EXISTS (
            SELECT 1 FROM delivery_keys
            WHERE key = p_key AND status = 'pending' AND NOT (delivery_id = ANY(p_deliveries)));
    END IF;

    IF p_transition IS NOT NULL AND v_settled THEN
        IF p_transition->'expected' IS NULL OR jsonb_typeof(p_transition->'expected') = 'null'
        THEN
            INSERT INTO resource_state (kind, name, state, version, data)
            VALUES (v_kind, v_name, p_transition->>'to', 1, p_transition->'data')
            ON CONFLICT (kind, name) DO NOTHING
            RETURNING version INTO v_version;
        ELSE
            UPDATE resource_state
            SET state = p_transition->>'to', data = p_transition->'data',
                version = version + 1, updated_at = now()
            WHERE kind = v_kind AND name = v_name
              AND version = (p_transition->>'expected')::int
            RETURNING version INTO v_version;
        END IF;
        IF v_version IS NULL THEN
            RAISE EXCEPTION '% changed since it was observed', p_key USING ERRCODE = 'P3802';
        END IF;
        INSERT INTO transitions (kind, name, from_state, to_state, version, reason, reconcile_id)
        VALUES (v_kind, v_name, p_transition->>'from', p_transition->>'to', v_version,
                p_transition->>'reason', v_reconcile);
    END IF;

    IF cardinality(v_enqueue) > 0 THEN
        PERFORM p38_hint_v1(
            p_keys => v_enqueue, p_guid => v_reconcile::text, p_event => 'enqueue',
            p_origin => jsonb_build_object('from', p_key, 'reconcile_id', v_reconcile,
                                           'decision', p_audit->>'decision'));
    END IF;

    IF v_settled THEN
        UPDATE delivery_keys SET status = 'done'
        WHERE key = p_key AND delivery_id = ANY(p_deliveries) AND status = 'pending';
        PERFORM p38_settle_deliveries(p_ids => p_deliveries, p_error => NULL);
        IF p_outcome = 'done' AND NOT v_more THEN
            DELETE FROM work_queue WHERE key = p_key;
        ELSE
            UPDATE work_queue
            SET lease_holder = NULL, lease_token = NULL, lease_expires = NULL, dirty = false,
                attempts = 0, failing_since = NULL, last_error = NULL, updated_at = now(),
                wait_kind = CASE WHEN v_more THEN 'coalesce'
                                 WHEN p_outcome = 'requeue' AND p_delay > 0
                                 THEN CASE WHEN p_firm THEN 'backoff' ELSE 'requeue' END END,
                not_before = now() + make_interval(secs => CASE
                    WHEN p_outcome = 'done' THEN p_coalesce
                    WHEN v_more THEN LEAST(p_delay, p_coalesce)
                    ELSE p_delay END)
            WHERE key = p_key;
        END IF;
    ELSIF p_outcome = 'retry' THEN
        UPDATE work_queue
        SET lease_holder = NULL, lease_token = NULL, lease_expires = NULL,
            not_before = now() + make_interval(secs => p_delay), last_error = p_error,
            wait_kind = 'backoff', failing_since = coalesce(failing_since, now()),
            updated_at = now()
        WHERE key = p_key;
    ELSIF p_outcome = 'dead' THEN
        IF v_more THEN  -- a new hint revives it at once, as it would a dead key
            UPDATE work_queue
            SET lease_holder = NULL, lease_token = NULL, lease_expires = NULL, dirty = false,
                attempts = 0, failing_since = NULL, wait_kind = 'coalesce', last_error = p_error,
                not_before = now() + make_interval(secs => p_coalesce), updated_at = now()
            WHERE key = p_key;
        ELSE
            UPDATE work_queue
            SET state = 'dead', lease_holder = NULL, lease_token = NULL, lease_expires = NULL,
                dirty = false, last_error = p_error, wait_kind = NULL,
                failing_since = coalesce(failing_since, now()), updated_at = now()
            WHERE key = p_key;
        END IF;
        WITH failed AS (
            UPDATE delivery_keys SET status = 'failed'
            WHERE key = p_key AND status = 'pending' AND delivery_id = ANY(p_deliveries)
            RETURNING delivery_id
        )
        SELECT array_agg(delivery_id) INTO v_failed FROM failed;
        IF v_failed IS NOT NULL THEN
            PERFORM p38_settle_deliveries(p_ids => v_failed, p_error => p_error);
        END IF;
    ELSE
        RAISE EXCEPTION 'unknown outcome %', p_outcome;
    END IF;

    IF coalesce((p_status->>'forget')::boolean, false) THEN
        DELETE FROM object_status WHERE key = p_key;
    ELSIF p_status IS NOT NULL THEN
        INSERT INTO object_status AS s (key, kind, status, reason, message, revision, source,
                                        reconciled_at, reconcile_id)
        VALUES (p_key, v_kind, p_status->>'status', p_status->>'reason',
                coalesce(p_status->>'message', ''), p_status->>'revision',
                p_status->>'source', now(), v_reconcile)
        ON CONFLICT (key) DO UPDATE
            SET since = CASE WHEN s.status = excluded.status THEN s.since ELSE now() END,
                status = excluded.status, reason = excluded.reason, message = excluded.message,
                revision = coalesce(excluded.revision, s.revision), source = excluded.source,
                reconciled_at = now(), reconcile_id = excluded.reconcile_id;
    END IF;

    INSERT INTO audit (reconcile_id, key, kind, worker, deliveries, attempt, outcome, phases,
                       decision, reason, actions, error, started_at, duration_ms)
    VALUES (v_reconcile, p_key, v_kind, p_audit->>'worker', p_deliveries,
            (p_audit->>'attempt')::int, p_outcome, coalesce(p_audit->'phases', '{}'),
            p_audit->>'decision', p_audit->>'reason', coalesce(p_audit->'actions', '[]'),
            p_error, (p_audit->>'started')::timestamptz, (p_audit->>'duration_ms')::float8);
END $function$;
