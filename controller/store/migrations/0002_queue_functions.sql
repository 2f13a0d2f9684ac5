-- The queue's multi-step operations as functions: one round trip each, so the locks they take
-- are held for the function's run, never while a busy client gets back to its transaction.
-- Each statement in a volatile function sees a fresh snapshot (READ COMMITTED): after
-- waiting for a lock, the next statement sees what the lock holder committed.
-- Errors: P3801 lease lost (fenced), P3802 concurrent update of a resource.

-- Store a batch of deliveries, link their keys and enqueue them. First a shared per-key lock
-- (batches share it; p38_settle takes it exclusively before it may delete or dead-letter the
-- key, and so waits for batches in flight). A GUID already stored is a duplicate unless its
-- processing failed, in which case it is accepted again. Sorted for a stable lock order.
CREATE FUNCTION p38_ingest(
    p_idx int[], p_source text[], p_hook text[], p_guid text[], p_event text[],
    p_action text[], p_headers text[], p_payload text[], p_status text[],
    p_key_idx int[], p_key text[]
) RETURNS TABLE (id bigint, idx int, redelivered boolean)
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;

-- Mark deliveries processed (every key done) or failed (any key failed).
CREATE FUNCTION p38_settle_deliveries(p_ids bigint[], p_error text) RETURNS void
LANGUAGE sql VOLATILE AS $$
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
$$;

-- End a reconcile: fenced by the lease token; persists the transition, settles the key's
-- deliveries, updates or removes the queue row, and writes the audit row, atomically.
-- p_outcome: done | requeue (after p_delay) | retry (after p_delay) | dead.
CREATE FUNCTION p38_settle(
    p_key text, p_token uuid, p_outcome text, p_deliveries bigint[], p_delay float8,
    p_coalesce float8, p_error text,
    p_t_to text, p_t_from text, p_t_data jsonb, p_t_expected int, p_t_reason text,
    p_reconcile_id uuid, p_worker text, p_attempt int, p_phases jsonb, p_decision text,
    p_reason text, p_actions jsonb, p_started timestamptz, p_duration_ms float8
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;
