-- The engine step: reconciles that enqueue others, waits that a hint ends, giving up by time,
-- and one status per object. Only additions: the functions of 0002/0005 stay for a release
-- still running them during a rolling deploy; new ones are versioned (_v1, _v2) and called with
-- named arguments.
--
-- Lock discipline (every function below follows it, so none can wait in a circle):
-- 1. Per-key advisory locks (1338, hashtext(key)) first, all in one pass, in the order of the
--    lock id (p38_lock_keys_v1): shared by whoever adds a hint for a key (an ingest batch, an
--    internal hint), exclusive by the settle of a key that may remove its row, dead-letter it
--    or set its wait, so it sees every hint committed before it decides.
-- 2. Then rows of work_queue: a settle its own row; a hint inserts rows (ON CONFLICT DO NOTHING)
--    and updates only rows it can lock at once (SKIP LOCKED); whoever holds a skipped row is a
--    claim or a settle of that key, and the settle sees the hint through its pending
--    delivery_keys row once the hint commits (it holds the key's lock exclusively by then).
-- 3. Then deliveries rows (p38_settle_deliveries locks them in id order).

-- Why a queued key waits: 'requeue' (Waiting: a hint ends it), 'backoff' (after an error: hints
-- do not shorten it), 'coalesce' (a short debounce after hints arrived mid-reconcile); NULL:
-- due at not_before. failing_since: the first failure of the current run of failures, so a key
-- gives up after a time, not only a number of attempts.
ALTER TABLE work_queue
    ADD COLUMN wait_kind text CHECK (wait_kind IN ('requeue', 'backoff', 'coalesce')),
    ADD COLUMN failing_since timestamptz;

-- One status per object (key), written at the end of every reconcile whatever happened: what
-- people read in /api/objects and `p38 status`, and what the resync selects on.
CREATE TABLE object_status (
    key            text        PRIMARY KEY,
    kind           text        NOT NULL,
    status         text        NOT NULL
                   CHECK (status IN ('Ready', 'Reconciling', 'Waiting', 'Stalled', 'Blocked')),
    reason         text        NOT NULL,              -- CamelCase
    message        text        NOT NULL DEFAULT '',
    revision       text,                              -- what was observed (commit, hash, id)
    source         text,                              -- whose Policy governs it (NULL: none)
    since          timestamptz NOT NULL DEFAULT now(), -- when the status last changed
    reconciled_at  timestamptz NOT NULL DEFAULT now(),
    reconcile_id   uuid
);
CREATE INDEX object_status_kind_idx ON object_status (kind, reconciled_at);
CREATE INDEX object_status_source_idx ON object_status (source, status);

-- Sources were the only kind re-read periodically before; their resync continues at once.
INSERT INTO object_status (key, kind, status, reason, message, reconciled_at)
SELECT 'manifests:' || name, 'manifests', 'Reconciling', 'Upgraded',
       'status is recorded from the next reconcile', '-infinity'
FROM resource_state WHERE kind = 'manifests'
ON CONFLICT (key) DO NOTHING;

-- Take the advisory locks of `p_shared` (shared) and `p_exclusive` (exclusive) in lock-id
-- order, exclusive first where two keys share an id, so two transactions never wait on each
-- other's locks in a circle.
CREATE FUNCTION p38_lock_keys_v1(p_shared text[], p_exclusive text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;

-- p38_ingest (0002) plus: locks in the global order; a hint for a key in a 'requeue' wait
-- makes it due now (earliest wins), leaving error backoff alone; a dead key is revived with a
-- fresh count and failure clock.
CREATE FUNCTION p38_ingest_v2(
    p_idx int[], p_source text[], p_hook text[], p_guid text[], p_event text[],
    p_action text[], p_headers text[], p_payload text[], p_status text[],
    p_key_idx int[], p_key text[]
) RETURNS TABLE (id bigint, idx int, redelivered boolean)
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;

-- A hint from the controller itself (a reconcile's follow-ups, a watcher, the resync): stored
-- as a delivery of source 'p38' whose payload says where it came from, so it is pending,
-- coalesced, revives dead keys and ends waits exactly as a webhook does, and is listed with
-- the deliveries. Returns how many keys were hinted.
CREATE FUNCTION p38_hint_v1(p_keys text[], p_guid text, p_event text, p_origin jsonb)
RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;

-- End a reconcile (p38_settle of 0002, fenced by the lease token) plus: the keys the plan
-- enqueues, hinted in this same transaction (never lost by a crash, never claimable before
-- this commit); the kind of wait; the failure clock; the object's status.
-- p_outcome: done | requeue (after p_delay; a hint ends the wait, unless p_firm: a rate limit
-- must not be hammered) | retry (after p_delay; backoff) | dead (unless a hint arrived during
-- this last attempt: that revives the key with a fresh count, and only this attempt's
-- deliveries are failed). p_transition: {"to", "from", "data", "expected", "reason"} or NULL.
-- p_status: {"status", "reason", "message", "revision", "source", "forget"}. p_audit: {"reconcile_id",
-- "worker", "attempt", "phases", "decision", "reason", "actions", "started", "duration_ms"}.
CREATE FUNCTION p38_settle_v2(
    p_key text, p_token uuid, p_outcome text, p_deliveries bigint[], p_delay float8,
    p_coalesce float8, p_error text, p_transition jsonb, p_enqueue text[], p_status jsonb,
    p_audit jsonb, p_firm boolean DEFAULT false
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;

-- The periodic re-read: hint every key of the given kinds whose last reconcile is older than
-- its kind's period and which is not queued already, and the dead ones that gave up after
-- failures a later attempt may not meet (revived with a fresh count; a terminal error waits
-- for a person: a delivery or `p38 replay`). One replica at a time (a transaction lock);
-- returns the keys hinted.
CREATE FUNCTION p38_resync_v1(p_kinds text[], p_periods float8[], p_guid text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;
