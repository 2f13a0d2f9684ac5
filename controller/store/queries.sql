-- Named queries, loaded once into a dict by controller/store/queries.py.
-- Each starts with a "-- name: <name>" line; everything up to the next such line is its text.

-- name: ingest_batch
-- See p38_ingest_v2 in migrations/0009_engine.sql.
SELECT id, idx, redelivered
FROM p38_ingest_v2(p_idx => $1::int[], p_source => $2::text[], p_hook => $3::text[],
                   p_guid => $4::text[], p_event => $5::text[], p_action => $6::text[],
                   p_headers => $7::text[], p_payload => $8::text[], p_status => $9::text[],
                   p_key_idx => $10::int[], p_key => $11::text[]);

-- name: queue_enqueue
-- An operator's word (`p38 replay`, `p38 approve`): due now whatever the key waits for,
-- coalescing with its row; a dead key is revived with a fresh count.
WITH queued AS (
    INSERT INTO work_queue AS q (key, kind)
    SELECT k, split_part(k, ':', 1) FROM unnest($1::text[]) AS k ORDER BY k
    ON CONFLICT (key) DO UPDATE
        SET state = 'queued',
            dirty = q.lease_token IS NOT NULL,
            not_before = LEAST(q.not_before, now()),
            wait_kind = NULL,
            attempts = CASE WHEN q.state = 'dead' THEN 0 ELSE q.attempts END,
            failing_since = CASE WHEN q.state = 'dead' THEN NULL ELSE q.failing_since END,
            updated_at = now()
    RETURNING q.key
)
SELECT count(*) FROM queued, LATERAL (SELECT pg_notify('p38_queue', '')) AS n;

-- name: queue_hint
-- The controller's own hint (a watcher, a reconcile's follow-ups): see p38_hint_v1.
SELECT p38_hint_v1(p_keys => $1::text[], p_guid => $2, p_event => $3, p_origin => $4::jsonb);

-- name: queue_resync
-- See p38_resync_v1: keys of these kinds idle for their period, or dead, hinted again.
SELECT p38_resync_v1(p_kinds => $1::text[], p_periods => $2::float8[], p_guid => $3);

-- name: queue_claim
-- Lease the next due key no live worker holds (an expired lease is a crashed worker's, and is
-- taken over). Returns the pending deliveries of the key this reconcile answers for. The wait
-- is over; a fresh count (attempts 0: new, revived, or after a success) restarts the failure
-- clock, whoever revived the key. $4: only these kinds (NULL: any); $5: never these kinds
-- (agent runs have workers of their own, so a long run never holds a reconcile worker).
WITH claimed AS (
    UPDATE work_queue AS q
    SET lease_holder = $1, lease_token = $2, lease_expires = now() + make_interval(secs => $3),
        dirty = false, attempts = q.attempts + 1, wait_kind = NULL,
        failing_since = CASE WHEN q.attempts = 0 THEN NULL ELSE q.failing_since END,
        updated_at = now()
    WHERE q.key = (
        SELECT key FROM work_queue
        WHERE state = 'queued' AND not_before <= now()
          AND (lease_expires IS NULL OR lease_expires < now())
          AND ($4::text[] IS NULL OR kind = ANY($4::text[]))
          AND NOT (kind = ANY($5::text[]))
        ORDER BY not_before
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING q.key, q.kind, q.attempts,
              EXTRACT(EPOCH FROM now() - q.failing_since)::float8 AS failing_for
)
SELECT c.key, c.kind, c.attempts, c.failing_for,
       ARRAY(SELECT delivery_id FROM delivery_keys
             WHERE key = c.key AND status = 'pending' ORDER BY delivery_id) AS deliveries,
       (SELECT epoch FROM policy_epoch) AS policy_epoch, NULL::float8 AS next_due
FROM claimed c
UNION ALL
-- Nothing to claim: when the next key (of these kinds) is due, as queue_next_due says, so
-- an idle worker needs no second statement to know how long to wait.
SELECT NULL, NULL, NULL, NULL, NULL, NULL,
       (SELECT EXTRACT(EPOCH FROM min(GREATEST(not_before, coalesce(lease_expires, not_before)))
                                  - now())::float8
        FROM work_queue WHERE state = 'queued'
          AND ($4::text[] IS NULL OR kind = ANY($4::text[])) AND NOT (kind = ANY($5::text[])))
WHERE NOT EXISTS (SELECT 1 FROM claimed);

-- name: queue_next_due
-- Seconds until the next queued key becomes due (negative: due already), NULL when the queue is
-- empty. (Not GREATEST(0, ...): GREATEST ignores a NULL, which made an empty queue "due now".)
SELECT EXTRACT(EPOCH FROM min(GREATEST(not_before, coalesce(lease_expires, not_before)))
                          - now())::float8
FROM work_queue WHERE state = 'queued'
  AND ($1::text[] IS NULL OR kind = ANY($1::text[])) AND NOT (kind = ANY($2::text[]));

-- name: queue_renew
UPDATE work_queue SET lease_expires = now() + make_interval(secs => $3)
WHERE key = $1 AND lease_token = $2
RETURNING key;

-- name: queue_release
-- Give a lease back unfinished (shutdown): not a failure, due again at once.
UPDATE work_queue
SET lease_holder = NULL, lease_token = NULL, lease_expires = NULL,
    attempts = GREATEST(attempts - 1, 0), not_before = now(), updated_at = now()
WHERE key = $1 AND lease_token = $2;

-- name: queue_depth
SELECT state, (lease_expires IS NOT NULL AND lease_expires > now()) AS leased, count(*)::int AS n
FROM work_queue GROUP BY 1, 2;

-- name: queue_keys_of_kinds
-- Every known key of these kinds: each has a status once reconciled (hinted at start).
SELECT key FROM object_status WHERE kind = ANY($1::text[]) ORDER BY key LIMIT 10000;

-- name: queue_list
SELECT key, kind, state, not_before, wait_kind, attempts, failing_since, dirty, lease_holder,
       lease_expires, last_error, enqueued_at, updated_at,
       (SELECT count(*) FROM delivery_keys dk
        WHERE dk.key = work_queue.key AND dk.status = 'pending')::int AS pending_deliveries
FROM work_queue
WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR key > $2)
ORDER BY key LIMIT $3;

-- name: queue_settle
-- See p38_settle_v2 in migrations/0009_engine.sql.
SELECT p38_settle_v2(p_key => $1, p_token => $2, p_outcome => $3, p_deliveries => $4::bigint[],
                     p_delay => $5, p_coalesce => $6, p_error => $7, p_transition => $8::jsonb,
                     p_enqueue => $9::text[], p_status => $10::jsonb, p_audit => $11::jsonb,
                     p_firm => $12);

-- name: delivery_by_guid
SELECT d.id, d.source, d.hook, d.guid, d.event, d.action, d.status, d.accepted, d.received_at,
       d.processed_at, d.error, p.headers, p.payload,
       EXISTS (SELECT 1 FROM actions a WHERE a.idempotency_key = 'github:redeliver:' || d.guid
               AND a.status = 'succeeded' AND a.result ? 'requested') AS recovered
FROM deliveries d JOIN delivery_payloads p ON p.delivery_id = d.id
WHERE d.guid = $1 ORDER BY d.id DESC LIMIT 1;

-- name: delivery_by_id
SELECT d.id, d.source, d.hook, d.guid, d.event, d.action, d.status, d.accepted, d.received_at,
       d.processed_at, d.error, p.headers, p.payload
FROM deliveries d JOIN delivery_payloads p ON p.delivery_id = d.id
WHERE d.id = $1;

-- name: delivery_keys_of
SELECT key, status FROM delivery_keys WHERE delivery_id = $1 ORDER BY key;

-- name: delivery_reopen
-- Replay: the delivery and its keys are pending again.
WITH keys AS (
    UPDATE delivery_keys SET status = 'pending' WHERE delivery_id = $1 RETURNING key
), reopened AS (
    UPDATE deliveries SET status = 'pending', processed_at = NULL, error = NULL
    WHERE id = $1 AND EXISTS (SELECT 1 FROM delivery_keys WHERE delivery_id = $1)
)
SELECT array_agg(key ORDER BY key) FROM keys;

-- name: deliveries_list
-- `recovered`: it arrived because the controller asked GitHub to send it again.
SELECT id, source, hook, guid, event, action, status, accepted, received_at, processed_at, error,
       EXISTS (SELECT 1 FROM actions a WHERE a.idempotency_key = 'github:redeliver:' || guid
               AND a.status = 'succeeded' AND a.result ? 'requested') AS recovered
FROM deliveries
WHERE (($1::text IS NULL AND source <> 'p38') OR source = $1) AND ($2::text IS NULL OR event = $2)
  AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR id < $4)
ORDER BY id DESC LIMIT $5;

-- name: deliveries_counts
-- By status, webhooks apart from the controller's own hints (source p38).
SELECT source = 'p38' AS own, status, count(*)::int AS n FROM deliveries GROUP BY 1, 2;

-- name: recent_payloads_for_key
-- The newest deliveries that produced a key (optionally only some events, older than $4, only
-- those the key has not settled yet when $5); the controller's own hints (source p38) say
-- nothing about the object and are left out.
SELECT d.id, d.source, d.event, d.action, p.payload
FROM delivery_keys k
JOIN deliveries d ON d.id = k.delivery_id
JOIN delivery_payloads p ON p.delivery_id = k.delivery_id
WHERE k.key = $1 AND ($3::text[] IS NULL OR d.event = ANY($3::text[])) AND d.source <> 'p38'
  AND k.delivery_id < coalesce($4::bigint, 9223372036854775807)
  AND ($5::bool IS NOT TRUE OR k.status = 'pending')
ORDER BY k.delivery_id DESC LIMIT $2;

-- name: action_record
-- Record an action before it runs. A key that already succeeded keeps its row untouched.
-- $9: the policy epoch the plan was gated under (migration 0025): when the epoch moved since,
-- nothing is written and no row is returned (the plan is gated again); NULL: no check.
INSERT INTO actions AS a (idempotency_key, kind, params, status, reason, key, reconcile_id,
                          description)
SELECT $1, $2, $3::jsonb, $4, $5, $6, $7, $8
WHERE $9::bigint IS NULL OR $9::bigint = (SELECT epoch FROM policy_epoch)
ON CONFLICT (idempotency_key) DO UPDATE
    SET status = CASE WHEN a.status = 'succeeded' THEN a.status ELSE excluded.status END,
        reason = CASE WHEN a.status = 'succeeded' THEN a.reason ELSE excluded.reason END,
        reconcile_id = CASE WHEN a.status = 'succeeded' THEN a.reconcile_id
                            ELSE excluded.reconcile_id END,
        updated_at = now()
RETURNING id, status;

-- name: actions_begin_many
-- Record actions of one kind and start them, in one statement (their runner is about to run
-- them): each row is written running with its first attempt, or an earlier row of the key
-- (pending, failed, running when a crash cut it off) is started again; a key that already
-- succeeded keeps its row untouched and is returned 'succeeded' (never run again). $1, $3,
-- $4, $7: one entry per action, in order (the keys distinct). $8: the policy epoch the
-- actions were gated under (as action_record). Returns each action's id and status with its
-- key.
INSERT INTO actions AS a (idempotency_key, kind, params, status, reason, key, reconcile_id,
                          description, attempts)
SELECT u.k, $2, u.p, 'running', u.r, $5, $6, u.d, 1
FROM unnest($1::text[], $3::jsonb[], $4::text[], $7::text[]) AS u(k, p, r, d)
WHERE $8::bigint IS NULL OR $8::bigint = (SELECT epoch FROM policy_epoch)
ON CONFLICT (idempotency_key) DO UPDATE
    SET status = CASE WHEN a.status = 'succeeded' THEN a.status ELSE 'running' END,
        reason = CASE WHEN a.status = 'succeeded' THEN a.reason ELSE excluded.reason END,
        reconcile_id = CASE WHEN a.status = 'succeeded' THEN a.reconcile_id
                            ELSE excluded.reconcile_id END,
        attempts = CASE WHEN a.status = 'succeeded' THEN a.attempts ELSE a.attempts + 1 END,
        updated_at = now()
RETURNING id, status, idempotency_key;

-- name: actions_finish_many
-- action_finish for many actions: $1 ids, $3 their results (one per id), $2 the status and
-- $4 the error shared by all.
UPDATE actions AS a SET status = $2, result = u.r, error = $4, updated_at = now()
FROM unnest($1::bigint[], $3::jsonb[]) AS u(id, r) WHERE a.id = u.id;

-- name: action_finish
UPDATE actions SET status = $2, result = $3::jsonb, error = $4, updated_at = now() WHERE id = $1;

-- name: actions_list
SELECT id, idempotency_key, kind, description, params, status, reason, attempts, result,
       error, key, reconcile_id, created_at, updated_at
FROM actions WHERE ($1::text IS NULL OR key = $1) AND ($2::bigint IS NULL OR id < $2)
  AND ($4::text IS NULL OR status = $4)
ORDER BY id DESC LIMIT $3;

-- name: approvals_for
SELECT idempotency_key FROM approvals WHERE idempotency_key = ANY($1::text[]);

-- name: approval_grant
INSERT INTO approvals (idempotency_key, approved_by) VALUES ($1, $2)
ON CONFLICT (idempotency_key) DO NOTHING;

-- name: resource_get
SELECT state, version, data FROM resource_state WHERE kind = $1 AND name = $2;

-- name: pulls_with_head
-- The open pull requests of repository $1 whose recorded head is commit $2.
SELECT name FROM resource_state
WHERE kind = 'pull' AND data ->> 'head_sha' = $2 AND state = 'open'
  AND starts_with(name, $1 || '#')
ORDER BY name LIMIT 100;

-- name: pulls_list
-- Tracked pull requests with their status, newest reconcile first; repository $1 and state $2
-- when given, at most $3.
SELECT r.name, r.state, r.version, r.data, r.updated_at, s.status, s.reason, s.message
FROM resource_state r LEFT JOIN object_status s ON s.key = 'pull:' || r.name
WHERE r.kind = 'pull' AND ($1::text IS NULL OR starts_with(r.name, $1 || '#'))
  AND ($2::text IS NULL OR r.state = $2)
ORDER BY r.updated_at DESC LIMIT $3;

-- name: pull_get
-- One tracked pull request (`owner/repo#N`) with its status.
SELECT r.name, r.state, r.version, r.data, r.updated_at, s.status, s.reason, s.message
FROM resource_state r LEFT JOIN object_status s ON s.key = 'pull:' || r.name
WHERE r.kind = 'pull' AND r.name = $1;

-- name: pulls_counts
-- Tracked pull requests by state: how many auto-merge judges in scope, how many it merged.
SELECT state, count(*) AS n,
       count(*) FILTER (WHERE (data -> 'automerge' ->> 'in_scope')::boolean) AS in_scope,
       count(*) FILTER (WHERE data -> 'automerge' -> 'merge' ->> 'by' = 'project38') AS by_us
FROM resource_state WHERE kind = 'pull' GROUP BY state ORDER BY state;

-- name: resource_insert
-- The worker writes state inside p38_settle; these two are for tools and tests that act as
-- another writer of the same versioned row.
INSERT INTO resource_state (kind, name, state, version, data) VALUES ($1, $2, $3, 1, $4::jsonb)
ON CONFLICT (kind, name) DO NOTHING
RETURNING version;

-- name: resource_update
UPDATE resource_state SET state = $3, data = $4::jsonb, version = version + 1, updated_at = now()
WHERE kind = $1 AND name = $2 AND version = $5
RETURNING version;

-- name: resources_list
SELECT kind, name, state, version, data, updated_at FROM resource_state
WHERE ($1::text IS NULL OR kind = $1) ORDER BY kind, name LIMIT $2;

-- name: audit_record
INSERT INTO audit (reconcile_id, key, kind, worker, deliveries, attempt, outcome, phases,
                   decision, reason, actions, error, started_at, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11::jsonb, $12, $13, $14);

-- name: audit_list
SELECT id, reconcile_id, key, kind, worker, deliveries, attempt, outcome, phases, decision,
       reason, actions, error, started_at, duration_ms
FROM audit
WHERE ($1::text IS NULL OR key = $1) AND ($2::text IS NULL OR outcome = $2)
  AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC LIMIT $4;

-- name: applied_objects_of
SELECT kind, name, content_hash, document, revision, applied_at
FROM applied_objects WHERE source = $1 ORDER BY kind, name;

-- name: applied_objects_all
SELECT source, kind, name, content_hash, revision, applied_at
FROM applied_objects ORDER BY source, kind, name;

-- name: applied_object_upsert
INSERT INTO applied_objects (source, kind, name, content_hash, document, revision)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (source, kind, name) DO UPDATE
    SET content_hash = excluded.content_hash, document = excluded.document,
        revision = excluded.revision, applied_at = now();

-- name: applied_objects_upsert_many
-- applied_object_upsert for many objects in one statement (one array per column, in order).
INSERT INTO applied_objects (source, kind, name, content_hash, document, revision)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])
ON CONFLICT (source, kind, name) DO UPDATE
    SET content_hash = excluded.content_hash, document = excluded.document,
        revision = excluded.revision, applied_at = now();

-- name: applied_object_delete
DELETE FROM applied_objects WHERE source = $1 AND kind = $2 AND name = $3;

-- name: manifest_blobs_get
-- The cached blobs, marked used (at most once a day each: retention keeps what is read).
WITH touched AS (
    UPDATE manifest_blobs SET used_at = now()
    WHERE sha = ANY($1::text[]) AND used_at < now() - interval '1 day'
)
SELECT sha, content FROM manifest_blobs WHERE sha = ANY($1::text[]);

-- name: manifest_blobs_put
INSERT INTO manifest_blobs (sha, content)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (sha) DO NOTHING;

-- name: action_result
-- The result of the action with this idempotency key, if it succeeded.
SELECT result FROM actions WHERE idempotency_key = $1 AND status = 'succeeded';

-- name: last_audit_of
SELECT DISTINCT ON (key) key, reconcile_id, outcome, decision, reason, error, started_at
FROM audit WHERE key = ANY($1::text[]) ORDER BY key, id DESC;

-- name: manifest_revision_record
-- Once per source state version ($8, generation): a return to an earlier tree is recorded
-- again, a retry of the same record is not.
INSERT INTO manifest_revisions (source, revision, tree, status, objects, changes, problems,
                                generation)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)
ON CONFLICT DO NOTHING;

-- name: manifest_revisions_list
SELECT id, source, revision, tree, status, objects, changes, problems, recorded_at, generation
FROM manifest_revisions
WHERE ($1::text IS NULL OR source = $1) AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC LIMIT $3;

-- name: prune_deliveries
-- Delete up to $2 settled deliveries (never pending) received more than $1 days ago; their
-- payloads and keys go with them (ON DELETE CASCADE). SKIP LOCKED: replicas share the work.
WITH doomed AS (
    SELECT id FROM deliveries
    WHERE received_at < now() - make_interval(days => $1) AND status <> 'pending'
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM deliveries d USING doomed WHERE d.id = doomed.id RETURNING 1
)
SELECT count(*) FROM gone;

-- name: prune_runs
-- Delete up to $2 agent runs that ended more than $1 days ago (never a queued or running
-- one); the state an agent hands over is kept apart (agent_state) and stays.
WITH doomed AS (
    SELECT id FROM agent_runs
    WHERE state = 'finished' AND ended_at < now() - make_interval(days => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM agent_runs r USING doomed WHERE r.id = doomed.id RETURNING 1
)
SELECT count(*) FROM gone;

-- name: prune_ticks
-- Delete up to $2 schedule ticks due more than $1 days ago, never a schedule's newest: it is
-- where the schedule counts the next instants from.
WITH doomed AS (
    SELECT t.schedule, t.due_at FROM schedule_ticks t
    WHERE t.due_at < now() - make_interval(days => $1)
      AND t.outcome <> 'armed'
      AND t.due_at < (SELECT max(n.due_at) FROM schedule_ticks n
                      WHERE n.schedule = t.schedule AND n.outcome <> 'armed')
    LIMIT $2 FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM schedule_ticks t USING doomed
    WHERE t.schedule = doomed.schedule AND t.due_at = doomed.due_at RETURNING 1
)
SELECT count(*) FROM gone;

-- name: prune_blobs
-- Delete up to $2 cached manifest and repository blobs nothing has read for $1 days.
WITH doomed AS (
    SELECT sha FROM manifest_blobs WHERE used_at < now() - make_interval(days => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM manifest_blobs b USING doomed WHERE b.sha = doomed.sha RETURNING 1
)
SELECT count(*) FROM gone;

-- name: prune_audit
-- Delete up to $2 audit rows of reconciles that started more than $1 days ago.
WITH doomed AS (
    SELECT id FROM audit WHERE started_at < now() - make_interval(days => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM audit a USING doomed WHERE a.id = doomed.id RETURNING 1
)
SELECT count(*) FROM gone;

-- name: statuses_list
-- Objects' statuses with their queue row (leased: a reconcile is running now), by key.
SELECT s.key, s.kind, s.status, s.reason, s.message, s.revision, s.source, s.since,
       s.reconciled_at, s.reconcile_id, q.state AS queue_state, q.not_before, q.wait_kind,
       q.attempts, (q.lease_expires IS NOT NULL AND q.lease_expires > now()) AS leased
FROM object_status s LEFT JOIN work_queue q ON q.key = s.key
WHERE ($1::text IS NULL OR s.kind = $1) AND ($2::text IS NULL OR s.status = $2)
  AND ($3::text IS NULL OR s.key > $3) AND ($5::text IS NULL OR s.source = $5)
ORDER BY s.key LIMIT $4;

-- name: statuses_of
SELECT key, kind, status, reason, message, revision, source, since, reconciled_at
FROM object_status WHERE key = ANY($1::text[]);

-- name: statuses_recorded_only
-- Objects whose actions were only recorded (dry-run, no credentials): a process that starts
-- may have the credentials or settings they lacked.
SELECT key FROM object_status
WHERE status = 'Blocked' AND reason IN ('NoCredentials', 'DryRun') ORDER BY key LIMIT 10000;

-- name: statuses_held
-- Objects of a source whose actions are held (the killswitch, an approval).
SELECT key, kind, status, reason, message, revision, source, since, reconciled_at
FROM object_status
WHERE source = $1 AND status = 'Blocked' AND reason IN ('Killswitch', 'AwaitingApproval')
ORDER BY key;

-- name: statuses_counts
SELECT status, count(*)::int AS n FROM object_status GROUP BY status;

-- name: killswitch_on
INSERT INTO killswitches (source, by_whom) VALUES ($1, $2)
ON CONFLICT (source) DO NOTHING;

-- name: killswitch_off
DELETE FROM killswitches WHERE source = $1 RETURNING by_whom;

-- name: policies_current
-- What the gate needs, in one snapshot: the policy epoch (migration 0025), the Policy object
-- applied from each source (at most one per source) and the killswitches turned on.
SELECT (SELECT epoch FROM policy_epoch) AS epoch,
       ARRAY(SELECT ROW(source, name, document::text) FROM applied_objects WHERE kind = 'Policy'
             ORDER BY source, name) AS policies,
       ARRAY(SELECT ROW(source, by_whom) FROM killswitches ORDER BY source) AS killswitches;

-- name: policy_epoch_approvals
-- Just before a plan's actions run: which of them a person approved, and the policy epoch now
-- (moved since the claim: the gate's policies are read again and the plan decided again).
SELECT (SELECT epoch FROM policy_epoch) AS epoch,
       ARRAY(SELECT idempotency_key FROM approvals
             WHERE idempotency_key = ANY($1::text[])) AS approved;

-- name: killswitches_all
SELECT source, by_whom, since FROM killswitches ORDER BY source;

-- name: applied_policies
-- The Policy object applied from each source (at most one per source).
SELECT source, name, document FROM applied_objects WHERE kind = 'Policy' ORDER BY source, name;

-- name: applied_referring
-- The applied objects of one kind in a source whose spec.<$3> is $4 (the Schedules of an Agent).
SELECT kind, name, content_hash, document, revision, applied_at
FROM applied_objects
WHERE source = $1 AND kind = $2 AND document -> 'spec' ->> $3::text = $4::text
ORDER BY name;

-- name: applied_object_get
SELECT kind, name, content_hash, document, revision, applied_at
FROM applied_objects WHERE source = $1 AND kind = $2 AND name = $3;

-- name: applied_of_kind
SELECT source, kind, name, content_hash, document, revision, applied_at
FROM applied_objects WHERE kind = $1 ORDER BY source, name;

-- name: action_by_key
SELECT id, kind, status, key, result, error FROM actions WHERE idempotency_key = $1;

-- name: action_by_id
-- One action with its params (a job worker's work: controller/engine/executor.py).
SELECT idempotency_key, kind, status, key, params, result, error, description
FROM actions WHERE id = $1;

-- name: prune_statuses
-- Delete up to $2 statuses of objects not reconciled for $1 days and not queued (a pull
-- request closed long ago); objects that resync are reconciled far more often than that.
WITH doomed AS (
    SELECT s.key FROM object_status s
    WHERE s.reconciled_at < now() - make_interval(days => $1)
      AND NOT EXISTS (SELECT 1 FROM work_queue q WHERE q.key = s.key)
    LIMIT $2 FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM object_status s USING doomed WHERE s.key = doomed.key RETURNING 1
)
SELECT count(*) FROM gone;

-- name: deliveries_stored
-- Which of these GUIDs from a source are stored (any hook).
SELECT DISTINCT guid FROM deliveries WHERE guid = ANY($2::text[]) AND source = $1;

-- name: redeliveries_summary
-- Deliveries the controller asked GitHub to send again, and how many of them arrived.
SELECT count(*)::int AS asked,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM deliveries d WHERE d.source = 'github'
             AND d.guid = a.params->>'guid'))::int AS arrived
FROM actions a
WHERE a.kind = 'github.redeliver' AND a.status = 'succeeded' AND a.result ? 'requested';

-- name: agent_version_find
-- The newest version of an agent built from this spec hash (find before create).
SELECT number, state, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
       usd::float8 AS usd, session
FROM agent_versions WHERE agent = $1 AND spec_hash = $2 ORDER BY number DESC LIMIT 1;

-- name: agent_version_session_save
-- A generation as of its last round (messages, round, report), while it is unfinished.
UPDATE agent_versions SET session = $3::jsonb
WHERE agent = $1 AND number = $2 AND state NOT IN ('READY', 'FAILED');

-- name: agent_version_create
-- A new version, numbered after the agent's last; PENDING until its build starts.
INSERT INTO agent_versions (agent, number, spec_hash, origin, model, spec)
SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5::jsonb
FROM agent_versions WHERE agent = $1
RETURNING number;

-- name: agent_version_move
-- The one write of a version's state (controller/providers/lifecycle.py): to $3, only from
-- the states $4 its machine allows ($5: the state ends it: READY, FAILED), with what it has so
-- far (NULL: kept). Returns the new state (`moved`, NULL when refused) and the state it was
-- in (`was`, NULL: no such version). A finished version matches no from-state, so the
-- trigger that freezes it is never reached from here.
WITH moved AS (
    UPDATE agent_versions
    SET state = $3, code = coalesce($6::text, code), test = coalesce($7::text, test),
        rounds = coalesce($8::int, rounds),
        input_tokens = coalesce($9::bigint, input_tokens),
        output_tokens = coalesce($10::bigint, output_tokens),
        cache_read_tokens = coalesce($11::bigint, cache_read_tokens),
        cache_write_tokens = coalesce($12::bigint, cache_write_tokens),
        usd = coalesce($13::numeric, usd), report = coalesce($14::jsonb, report),
        error = coalesce($15::text, error),
        duration_ms = coalesce($16::float8, duration_ms),
        finished_at = CASE WHEN $5::boolean THEN now() END
    WHERE agent = $1 AND number = $2 AND state = ANY($4::text[])
    RETURNING state
)
SELECT (SELECT state FROM moved) AS moved,
       (SELECT state FROM agent_versions WHERE agent = $1 AND number = $2) AS was;

-- name: agent_versions_of
-- An agent's versions, newest first, without their code.
SELECT number, spec_hash, state, origin, model, rounds, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, usd::float8 AS usd, duration_ms, error,
       created_at, finished_at, failure, failed_credential
FROM agent_versions WHERE agent = $1 ORDER BY number DESC LIMIT $2;

-- name: agent_version_get
SELECT agent, number, spec_hash, state, origin, model, spec, code, test, report, rounds,
       input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, usd::float8 AS usd,
       duration_ms, error, created_at, finished_at
FROM agent_versions WHERE agent = $1 AND number = $2;

-- name: agent_version_current
-- The version runs use: the newest READY one.
SELECT number, spec, code, test FROM agent_versions
WHERE agent = $1 AND state = 'READY' ORDER BY number DESC LIMIT 1;

-- name: agent_run_create
-- A run, queued, and the hint that makes a run worker pick it up, in one statement.
WITH run AS (
    INSERT INTO agent_runs (agent, trigger, requested_by, schedule, input)
    VALUES ($1, $2, $3, $4, $5::jsonb)
    RETURNING id
)
SELECT id, p38_hint_v1(p_keys => ARRAY['run:' || substring($1 from 7) || '#' || id],
                       p_guid => 'run:' || id,
                       p_event => 'run', p_origin => jsonb_build_object('from', $2))
FROM run;

-- name: agent_run_get
SELECT id, agent, version, trigger, requested_by, schedule, input, state, outcome, result,
       error, stderr, tool_calls, tokens, usd::float8 AS usd, isolation, stop_requested,
       requested_at, started_at, ended_at, interruptions,
       EXTRACT(EPOCH FROM coalesce(ended_at, now()) - started_at)::float8 AS seconds
FROM agent_runs WHERE id = $1;

-- name: agent_run_move
-- The one write of a run's state (controller/providers/lifecycle.py): to $2, only from the
-- states $3 its machine allows; $4: the state ends it (`finished`, with outcome $5 and error
-- $7); what the run did ($6 result, $8 stderr, $9 tool calls, $10 tokens, $11 usd, $12
-- isolation, $13 version; NULL: kept); $14: an interruption (counted); $15: only while it has
-- been interrupted fewer times than that; $16: the state the run hands to the agent's next
-- run (written with the move, never over a newer run's). Returns the new state (`moved`, NULL
-- when refused) and the state it was in (`was`, NULL: no such run); moving to `running`, also
-- what the run starts with (its `input`, version $13's `code`, the agent's `handed` state), so
-- a start is one round trip.
WITH moved AS (
    UPDATE agent_runs
    SET state = $2,
        outcome = CASE WHEN $4::boolean THEN $5::text END,
        error = CASE WHEN $4::boolean THEN $7::text END,
        result = coalesce($6::jsonb, result), stderr = coalesce($8::text, stderr),
        tool_calls = coalesce($9::jsonb, tool_calls), tokens = coalesce($10::bigint, tokens),
        usd = coalesce($11::numeric, usd), isolation = coalesce($12::jsonb, isolation),
        version = coalesce($13::int, version),
        started_at = CASE WHEN $2 = 'running' THEN now()
                          WHEN $4::boolean THEN coalesce(started_at, now())
                          ELSE started_at END,
        ended_at = CASE WHEN $4::boolean THEN now() END,
        interruptions = interruptions + CASE WHEN coalesce($14::boolean, false) THEN 1
                                             ELSE 0 END
    WHERE id = $1 AND state = ANY($3::text[])
      AND ($15::int IS NULL OR interruptions < $15::int)
    RETURNING id, agent, state
), handed AS (
    INSERT INTO agent_state (agent, state, run_id)
    SELECT m.agent, $16::jsonb, m.id FROM moved m WHERE $16::jsonb IS NOT NULL
    ON CONFLICT (agent) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id,
                                      updated_at = now()
    WHERE agent_state.run_id < EXCLUDED.run_id
)
SELECT (SELECT state FROM moved) AS moved, r.state AS was,
       CASE WHEN $2 = 'running' THEN r.input END AS input,
       CASE WHEN $2 = 'running' THEN (SELECT v.code FROM agent_versions v
                                      WHERE v.agent = r.agent AND v.number = $13::int)
       END AS code,
       CASE WHEN $2 = 'running' THEN (SELECT s.state FROM agent_state s
                                      WHERE s.agent = r.agent)
       END AS handed
FROM (SELECT 1) AS one LEFT JOIN agent_runs r ON r.id = $1;

-- name: agent_run_stop
-- Ask a queued or running run to stop (a schedule's `replace`, an operator).
UPDATE agent_runs SET stop_requested = $2 WHERE id = $1 AND state <> 'finished'
RETURNING id;

-- name: agent_run_cancel
-- An operator stops a run ($2: why, with who): a queued one ends cancelled at its next look,
-- a running one within a second (its process group killed); the run's key is hinted in the
-- same statement. Returns the run's state (NULL: no such run).
WITH asked AS (
    UPDATE agent_runs SET stop_requested = coalesce(stop_requested, $2)
    WHERE id = $1 AND state <> 'finished'
    RETURNING id, agent, state
)
SELECT r.state, r.outcome,
       (SELECT p38_hint_v1(p_keys => ARRAY['run:' || substring(a.agent from 7) || '#' || a.id],
                           p_guid => 'cancel:' || a.id || ':' || gen_random_uuid(),
                           p_event => 'cancel', p_origin => jsonb_build_object('by', $2))
        FROM asked a) AS hinted
FROM agent_runs r WHERE r.id = $1;

-- name: agent_run_stop_requested
SELECT stop_requested FROM agent_runs WHERE id = $1;

-- name: agent_runs_of
SELECT id, agent, version, trigger, requested_by, schedule, state, outcome, error, tokens,
       usd::float8 AS usd, requested_at, started_at, ended_at,
       jsonb_array_length(tool_calls) AS tool_calls
FROM agent_runs
WHERE ($1::text IS NULL OR agent = $1) AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC LIMIT $3;

-- name: agent_runs_active
-- The runs of an agent not finished yet, oldest first.
SELECT id, state, schedule FROM agent_runs
WHERE agent = $1 AND state <> 'finished' ORDER BY id;

-- name: agent_spend_today
-- US dollars an agent's runs spent since midnight UTC.
SELECT coalesce(sum(usd), 0)::float8 FROM agent_runs
WHERE agent = $1 AND requested_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                      AT TIME ZONE 'UTC';

-- name: agent_state_get
SELECT state FROM agent_state WHERE agent = $1;

-- name: agent_state_put
INSERT INTO agent_state (agent, state, run_id) VALUES ($1, $2::jsonb, $3)
ON CONFLICT (agent) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id,
                                  updated_at = now()
WHERE agent_state.run_id < EXCLUDED.run_id;

-- name: schedule_tick_record
-- The tick's row: the INSERT that wins fires it (NULL: another process did already).
INSERT INTO schedule_ticks (schedule, due_at, outcome, reason)
VALUES ($1, $2, $3, $4)
ON CONFLICT (schedule, due_at) DO NOTHING
RETURNING schedule;

-- name: schedule_tick_run
UPDATE schedule_ticks SET run_id = $3 WHERE schedule = $1 AND due_at = $2;

-- name: schedule_tick_last
-- The newest tick of a schedule decided (due time, outcome), NULL when it never ticked; an
-- armed tick (not due yet, or being decided by a run worker) is not one.
SELECT due_at, fired_at, outcome, reason, run_id FROM schedule_ticks
WHERE schedule = $1 AND outcome <> 'armed' ORDER BY due_at DESC LIMIT 1;

-- name: schedule_tick_armed
-- The schedule's armed tick, with the settings it was armed with: the oldest, when one due now
-- and the next armed beside it both exist (the due one is what may need taking over).
SELECT due_at, run_id, armed FROM schedule_ticks
WHERE schedule = $1 AND outcome = 'armed' ORDER BY due_at LIMIT 1;

-- name: schedule_arm
-- Arm schedule $1's tick due at $2 ($3: the agent, $4: the settings; $2 NULL: withdraw only),
-- withdrawing what else is armed and not due yet, and what is due before $5. Returns the run
-- armed (NULL: none).
SELECT p38_arm_tick_v1(p_schedule => $1, p_due_at => $2, p_agent => $3, p_armed => $4::jsonb,
                       p_late_before => $5);

-- name: schedule_fire_armed
-- The instant of schedule $1's armed tick due at $2 (run $3) decided: $4 fired or skipped
-- ($5: why), and its next instant $6 armed (agent $7, settings $8). Returns `decided` (false:
-- it was withdrawn meanwhile) and the next run armed.
SELECT decided, next_run
FROM p38_fire_armed_v1(p_schedule => $1, p_due_at => $2, p_run => $3, p_outcome => $4,
                       p_reason => $5, p_next => $6, p_agent => $7, p_armed => $8::jsonb);

-- name: agent_run_observe
-- Everything a run's reconcile reads, in one round trip: run $1 of agent $2 (`agent:...`) from
-- source $3, agent name $4; the database's clock; the armed tick it belongs to (still armed);
-- the agent's newest version and newest READY one; what it spent today; the source's
-- installation; the applied Agent; the other runs of its schedule not ended.
SELECT r.id, r.agent, r.state, r.trigger, r.schedule, r.stop_requested, now() AS now,
       t.due_at AS armed_due, t.armed,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'number', v.number, 'spec_hash', v.spec_hash, 'state', v.state,
                'origin', v.origin, 'error', v.error) ORDER BY v.number DESC), '[]')
        FROM (SELECT * FROM (SELECT number, spec_hash, state, origin, error
                             FROM agent_versions WHERE agent = $2
                             ORDER BY number DESC LIMIT 1) n
              UNION
              SELECT * FROM (SELECT number, spec_hash, state, origin, error
                             FROM agent_versions WHERE agent = $2 AND state = 'READY'
                             ORDER BY number DESC LIMIT 1) ready) v) AS versions,
       (SELECT coalesce(sum(usd), 0)::float8 FROM agent_runs
        WHERE agent = $2 AND requested_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                             AT TIME ZONE 'UTC') AS spent_today,
       (SELECT data->'installation_id' FROM resource_state
        WHERE kind = 'manifests' AND name = $3) AS installation_id,
       a.kind AS applied_kind, a.name AS applied_name, a.content_hash, a.document,
       a.revision, a.applied_at,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('id', o.id, 'state', o.state)
                                  ORDER BY o.id), '[]')
        FROM agent_runs o
        WHERE t.due_at IS NOT NULL AND o.agent = $2 AND o.state <> 'finished'
          AND o.schedule = r.schedule AND o.id <> r.id) AS active
FROM agent_runs r
LEFT JOIN schedule_ticks t ON t.run_id = r.id AND t.outcome = 'armed'
LEFT JOIN applied_objects a ON a.source = $3 AND a.kind = 'Agent' AND a.name = $4
WHERE r.id = $1 AND r.agent = $2;

-- name: schedule_ticks_of
-- A schedule's newest ticks decided (an armed one, still to come, is not listed).
SELECT due_at, fired_at, outcome, reason, run_id FROM schedule_ticks
WHERE schedule = $1 AND outcome <> 'armed' ORDER BY due_at DESC LIMIT $2;

-- name: clock_now
-- The database's clock: the one every controller process agrees on (schedules are due by it).
SELECT now();

-- name: claude_task_open
-- A `/claude` work command's task, once per comment, RECEIVED (the first step of its
-- history); the intake's verdict moves it on in the same transaction (claude_task_move).
-- Returns its id and `made` (false: the comment already has this task).
WITH made AS (
    INSERT INTO claude_tasks (repo, issue, comment_id, installation_id, on_pull, requested_by,
                              command, retry_of, history)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
            jsonb_build_array(
                jsonb_build_object('state', 'RECEIVED', 'at', now(),
                                   'reason', 'comment ' || $3::bigint::text || ' by @' || $6::text)))
    ON CONFLICT (repo, comment_id) DO NOTHING
    RETURNING id
)
SELECT id, true AS made FROM made
UNION ALL
SELECT id, false FROM claude_tasks WHERE repo = $1 AND comment_id = $3
LIMIT 1;

-- name: claude_task_get
SELECT * FROM claude_tasks WHERE id = $1;

-- name: claude_task_by_comment
SELECT * FROM claude_tasks WHERE repo = $1 AND comment_id = $2;

-- name: claude_tasks_thread
-- The tasks of one issue or pull request, newest first.
SELECT * FROM claude_tasks WHERE repo = $1 AND issue = $2 ORDER BY id DESC LIMIT $3;

-- name: claude_tasks_of_pull
-- The tasks that made pull request $2 or worked on it (a follow-up on the pull request), but
-- those refused or only recorded (they did nothing); those that read untrusted text first, so
-- no number of others hides one.
SELECT * FROM claude_tasks
WHERE repo = $1 AND (pull_number = $2 OR (on_pull AND issue = $2))
  AND state NOT IN ('REFUSED', 'DRY_RUN')
ORDER BY cardinality(untrusted_input) > 0 DESC, id DESC LIMIT 50;

-- name: claude_tasks_list
-- Newest first, below id $1 (NULL: from the newest), of state $2 and repository $3 when given.
SELECT * FROM claude_tasks
WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR repo = $3)
ORDER BY id DESC LIMIT $4;

-- name: claude_task_move
-- The one write of a task's state (controller/providers/lifecycle.py): to $2 for reason $5
-- (in its history too), only from the states $3 its machine allows; $4: the state ends it.
-- With PR_OPENED, its pull request ($6 number, $7 URL, $8 commit; NULL: kept). Returns the
-- new state (`moved`, NULL when refused) and the state it was in (`was`, NULL: no such task).
WITH moved AS (
    UPDATE claude_tasks
    SET state = $2, reason = $5, updated_at = now(),
        history = history || jsonb_build_array(jsonb_build_object('state', $2::text, 'at', now(),
                                                                  'reason', $5::text)),
        finished_at = CASE WHEN $4::boolean THEN now() END,
        pull_number = coalesce($6::int, pull_number), pull_url = coalesce($7::text, pull_url),
        commit_sha = coalesce($8::text, commit_sha)
    WHERE id = $1 AND state = ANY($3::text[])
    RETURNING state
)
SELECT (SELECT state FROM moved) AS moved, (SELECT state FROM claude_tasks WHERE id = $1) AS was;

-- name: claude_task_session_save
-- The session as of its last turn (messages, change, files read in part), while it works.
UPDATE claude_tasks SET session = $2::jsonb, updated_at = now()
WHERE id = $1 AND state = 'WORKING';

-- name: claude_task_figures
-- What the task has spent so far (written after every model call and tool call).
UPDATE claude_tasks
SET model = $2, input_tokens = $3, output_tokens = $4, cache_read_tokens = $5,
    cache_write_tokens = $6, usd = $7, tool_calls = $8, updated_at = now()
WHERE id = $1;

-- name: claude_task_change
-- The change Claude finished with, to be pushed (the task stays WORKING until it is), and
-- the authors without a writer's association whose text it read ($9).
UPDATE claude_tasks
SET base_branch = $2, base_sha = $3, branch = $4, change = $5::jsonb, title = $6,
    summary = $7, pull_number = $8, untrusted_input = $9::text[], updated_at = now()
WHERE id = $1 AND state = 'WORKING';

-- name: claude_task_state
SELECT state FROM claude_tasks WHERE id = $1;

-- name: service_bad_mark
-- Mark a Service's commit bad (once: a second mark of the same commit changes nothing, unless
-- it was cleared, which marks it again).
INSERT INTO service_bad_commits (service, commit_sha, deployment, reason)
VALUES ($1, $2, $3, $4)
ON CONFLICT (service, commit_sha) DO UPDATE
    SET deployment = excluded.deployment, reason = excluded.reason, marked_at = now(),
        cleared_at = NULL, cleared_by = NULL
    WHERE service_bad_commits.cleared_at IS NOT NULL
RETURNING commit_sha;

-- name: service_bad_list
-- The commits of Service $1 marked bad and not cleared, newest first.
SELECT commit_sha, deployment, reason, marked_at FROM service_bad_commits
WHERE service = $1 AND cleared_at IS NULL ORDER BY marked_at DESC LIMIT 100;

-- name: service_bad_clear
-- Clear a mark by hand ($3: who), returning the commit when one was marked.
UPDATE service_bad_commits SET cleared_at = now(), cleared_by = $3
WHERE service = $1 AND commit_sha = $2 AND cleared_at IS NULL
RETURNING commit_sha;

-- name: service_incident_record
-- Record the incident of Service $1's failed deployment $2 (once; a later record of the same
-- failure only fills in the rollback when there was none).
INSERT INTO service_incidents (service, deployment, commit_sha, status, rolled_back_to,
                               rolled_back_commit)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (service, deployment) DO UPDATE
    SET rolled_back_to = excluded.rolled_back_to,
        rolled_back_commit = excluded.rolled_back_commit
    WHERE service_incidents.rolled_back_to IS NULL AND excluded.rolled_back_to IS NOT NULL
RETURNING deployment;

-- name: service_incidents_close
-- Close Service $1's open incidents: deployment $2 runs healthy.
UPDATE service_incidents SET closed_at = now(), closed_by = $2
WHERE service = $1 AND closed_at IS NULL
RETURNING deployment;

-- name: service_incidents_list
-- Service $1's incidents, newest first ($2: how many); the open ones are those not closed.
SELECT deployment, commit_sha, status, rolled_back_to, rolled_back_commit, opened_at,
       closed_at, closed_by
FROM service_incidents WHERE service = $1 ORDER BY opened_at DESC LIMIT $2;

-- name: transitions_of_many
-- The state changes of objects of kind $1 named in $2, oldest first (a timeline each).
SELECT name, from_state, to_state, reason, at FROM transitions
WHERE kind = $1 AND name = ANY($2::text[]) ORDER BY id LIMIT 2000;

-- name: services_list
-- Every applied Service with its status (when reconciled), by key.
SELECT 'service:' || a.source || '/' || a.name AS key, a.source, a.name, a.document,
       a.revision, s.status, s.reason, s.message, s.reconciled_at
FROM applied_objects a LEFT JOIN object_status s ON s.key = 'service:' || a.source || '/' || a.name
WHERE a.kind = 'Service' ORDER BY a.source, a.name LIMIT 1000;

-- name: deployments_of_service
-- The Railway deployments followed from webhooks for Railway service $1, newest change first.
SELECT name AS id, state, data, updated_at FROM resource_state
WHERE kind = 'deployment' AND data ->> 'service' = $1 ORDER BY updated_at DESC LIMIT 50;

-- name: controller_beat
-- A running controller says it is alive (written at start and every few seconds; a row pruned
-- during a long outage of the database is written again).
INSERT INTO controllers (id, host, pid, version, workers, run_workers, role, jobs)
VALUES ($1, $2, $3, $4, $5, coalesce(($7::jsonb->>'run')::int, 0), $6, $7::jsonb)
ON CONFLICT (id) DO UPDATE SET last_seen = now();

-- name: controller_gone
-- A controller that stops cleanly removes its row.
DELETE FROM controllers WHERE id = $1;

-- name: controllers_prune
-- Rows of controllers not seen for $1 seconds (killed long ago).
DELETE FROM controllers WHERE last_seen < now() - make_interval(secs => $1);

-- name: controllers_list
-- Every controller with a row, newest first; `seen_ago`: seconds since its last beat (the
-- database's clock), `alive`: seen within $1 seconds.
SELECT id, host, pid, version, workers, run_workers, role, jobs, started_at, last_seen,
       extract(epoch FROM now() - last_seen)::float8 AS seen_ago,
       extract(epoch FROM now() - started_at)::float8 AS up_for,
       last_seen > now() - make_interval(secs => $1) AS alive
FROM controllers ORDER BY started_at DESC LIMIT 50;


-- name: queue_summary
-- The queue as an operator reads it: due now (or merging events for a moment), running,
-- waiting for a later instant (a schedule's next tick, a requeue), retrying after an error,
-- dead; with the soonest instant of each.
SELECT CASE WHEN state = 'dead' THEN 'dead'
            WHEN lease_expires IS NOT NULL AND lease_expires > now() THEN 'running'
            WHEN not_before <= now() OR wait_kind = 'coalesce' THEN 'due'
            WHEN wait_kind = 'backoff' THEN 'retrying'
            ELSE 'later' END AS bucket,
       count(*)::int AS n,
       extract(epoch FROM min(not_before) - now())::float8 AS next_in
FROM work_queue GROUP BY 1;

-- name: jobs_summary
-- Long work by kind ($1: the job kinds) and state: running (leased), queued (due), waiting
-- (retrying later, or held), gave_up.
SELECT kind, CASE WHEN state = 'dead' THEN 'gave_up'
                  WHEN lease_expires IS NOT NULL AND lease_expires > now() THEN 'running'
                  WHEN not_before <= now() THEN 'queued'
                  ELSE 'waiting' END AS state,
       count(*)::int AS n
FROM work_queue WHERE kind = ANY($1::text[]) GROUP BY 1, 2;

-- name: statuses_summary
-- Objects by status; Blocked ones apart when all they lack is a provider's credentials
-- (reason NoCredentials, or a message naming an unconfigured provider: $1, LIKE patterns).
SELECT status, (status = 'Blocked' AND (reason = 'NoCredentials'
                                       OR message LIKE ANY($1::text[]))) AS credentials,
       count(*)::int AS n
FROM object_status GROUP BY 1, 2;

-- name: statuses_not_ready
-- Objects that are not Ready, with `credentials` as in statuses_summary, by key.
SELECT key, status, reason, message,
       (status = 'Blocked' AND (reason = 'NoCredentials'
                                OR message LIKE ANY($1::text[]))) AS credentials
FROM object_status WHERE status <> 'Ready' ORDER BY key LIMIT $2;

-- name: agent_rebuild_ask
-- `p38 agents rebuild` / POST /api/agents/{name}/rebuild: a new version after the agent's
-- newest ($1 agent key, $2 who), and the hint that makes the agent's key look, in one
-- statement. Returns the version the new one comes after.
WITH asked AS (
    INSERT INTO agent_rebuilds (agent, after_version, asked_by)
    SELECT $1, coalesce(max(number), 0), $2 FROM agent_versions WHERE agent = $1
    ON CONFLICT (agent) DO UPDATE
        SET after_version = EXCLUDED.after_version, asked_by = EXCLUDED.asked_by,
            asked_at = now()
    RETURNING after_version
)
SELECT after_version, p38_hint_v1(p_keys => ARRAY[$1::text],
                                  p_guid => 'rebuild:' || $1 || ':' || gen_random_uuid(),
                                  p_event => 'rebuild', p_origin => jsonb_build_object('by', $2))
FROM asked;

-- name: agent_rebuild_of
-- The version a rebuild asked for comes after (none: no rebuild asked).
SELECT after_version FROM agent_rebuilds WHERE agent = $1;

-- name: agent_version_blame
-- Whose fault a failure is ('provider': the API refused the key), with the credential's
-- fingerprint, written just before the version is finished FAILED.
UPDATE agent_versions SET failure = $3, failed_credential = $4
WHERE agent = $1 AND number = $2 AND state NOT IN ('READY', 'FAILED');

-- name: agents_failed_by_provider
-- Agents whose newest version FAILED because the provider refused its credential: a process
-- that starts may have a new one (hinted at start).
SELECT v.agent FROM agent_versions v
WHERE v.failure = 'provider'
  AND v.number = (SELECT max(number) FROM agent_versions w WHERE w.agent = v.agent)
ORDER BY v.agent LIMIT 10000;

-- name: manifest_sources_known
-- Every manifest source the controller has a record of (`p38 plan --source` checks the name).
SELECT name FROM resource_state WHERE kind = 'manifests'
UNION SELECT source FROM applied_objects
ORDER BY 1;

-- name: queue_of_key
-- One key's work-queue row (none: nothing is waiting for it), as `p38 describe` shows it.
SELECT key, kind, state, not_before, wait_kind, attempts, failing_since, last_error,
       (lease_expires IS NOT NULL AND lease_expires > now()) AS leased
FROM work_queue WHERE key = $1;

-- name: deliveries_of_key
-- The newest deliveries (at most $2) that named key $1, without their payloads; the
-- controller's own hints (source p38) included: they say why it looked again.
SELECT d.id, d.source, d.guid, d.event, d.action, d.status, d.received_at, d.processed_at,
       k.status AS key_status
FROM delivery_keys k JOIN deliveries d ON d.id = k.delivery_id
WHERE k.key = $1 ORDER BY k.delivery_id DESC LIMIT $2;

-- name: database_clients
-- The other client connections of this server, by the name they gave (a controller's:
-- "p38 pid N on HOST"): what `p38 db-stop` would cut.
SELECT coalesce(nullif(application_name, ''), 'a client') AS name,
       count(*)::int AS connections, min(backend_start) AS since
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1 ORDER BY 3;

-- name: operator_action_record
-- An operator's word and what came of it (controller/engine/operator.py).
INSERT INTO operator_actions (by_whom, via, verb, target, outcome, detail)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
RETURNING id;

-- name: operator_actions_list
-- Newest first, below id $1 (NULL: from the newest), of target $2 when given.
SELECT id, at, by_whom, via, verb, target, outcome, detail FROM operator_actions
WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR target = $2)
ORDER BY id DESC LIMIT $3;

-- name: actions_held
-- The actions held for an approval or a killswitch, newest first (the operator's page).
SELECT id, idempotency_key, kind, description, status, reason, key, created_at, updated_at
FROM actions WHERE status = 'held' ORDER BY id DESC LIMIT $1;

-- name: page_activity
-- Webhook deliveries and reconciles per minute over the last hour (the overview's chart).
SELECT 'deliveries' AS series, date_trunc('minute', received_at) AS minute, count(*)::int AS n
FROM deliveries
WHERE received_at >= date_trunc('minute', now()) - interval '59 minutes' AND source <> 'p38'
GROUP BY 2
UNION ALL
SELECT 'reconciles', date_trunc('minute', started_at), count(*)::int
FROM audit WHERE started_at >= date_trunc('minute', now()) - interval '59 minutes'
GROUP BY 2;

-- name: page_sources
-- Every source the controller knows of (its applied objects, a killswitch set on it).
SELECT source FROM applied_objects GROUP BY source
UNION SELECT source FROM killswitches ORDER BY 1;

-- name: page_failures
-- The newest reconciles that failed (retried or gave up), for the overview.
SELECT id, key, kind, outcome, decision, reason, error, started_at
FROM audit WHERE outcome IN ('retry', 'dead') ORDER BY id DESC LIMIT $1;

-- pages: pages-b

-- name: page_agents
-- Applied agents after source $1 and name $2 (NULL: from the first), at most $3, in key
-- order (the primary key's), with their status, the version runs use, the newest version
-- and what the runs asked for since midnight UTC spent (as agent_spend_today counts them;
-- found through the indexes of unfinished runs and of runs that ended today).
WITH agents AS (
    SELECT a.source, a.name, a.document, 'agent:' || a.source || '/' || a.name AS key
    FROM applied_objects a
    WHERE a.kind = 'Agent'
      AND ($1::text IS NULL OR (a.source, a.kind, a.name) > ($1::text, 'Agent', $2::text))
    ORDER BY a.source, a.kind, a.name LIMIT $3
), midnight AS (
    SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS at
), today AS (
    SELECT r.agent, count(*)::int AS runs, sum(r.tokens)::bigint AS tokens,
           sum(r.usd)::float8 AS usd
    FROM agent_runs r, midnight m
    WHERE r.agent IN (SELECT key FROM agents) AND r.requested_at >= m.at
      AND (r.state <> 'finished' OR (r.state = 'finished' AND r.ended_at >= m.at))
    GROUP BY r.agent
)
SELECT g.key, g.source, g.name, g.document, s.status, s.reason, s.message,
       (SELECT v.number FROM agent_versions v WHERE v.agent = g.key AND v.state = 'READY'
        ORDER BY v.number DESC LIMIT 1) AS running_version,
       n.number AS newest_version, n.state AS newest_state,
       coalesce(t.runs, 0) AS runs_today, coalesce(t.tokens, 0)::bigint AS tokens_today,
       coalesce(t.usd, 0)::float8 AS usd_today
FROM agents g
LEFT JOIN object_status s ON s.key = g.key
LEFT JOIN LATERAL (SELECT v.number, v.state FROM agent_versions v WHERE v.agent = g.key
                   ORDER BY v.number DESC LIMIT 1) n ON true
LEFT JOIN today t ON t.agent = g.key
ORDER BY g.source, g.name;

-- name: page_agent_versions
-- Agent $1's versions below number $2 (NULL: from the newest), at most $3, without code.
SELECT number, state, origin, model, rounds, input_tokens, output_tokens, cache_read_tokens,
       cache_write_tokens, usd::float8 AS usd, duration_ms, error, created_at, finished_at
FROM agent_versions WHERE agent = $1 AND ($2::int IS NULL OR number < $2)
ORDER BY number DESC LIMIT $3;

-- name: page_services
-- Applied Services after source $1 and name $2 (NULL: from the first), at most $3, in key
-- order, with their status: services_list's rows, a page at a time.
SELECT 'service:' || a.source || '/' || a.name AS key, a.source, a.name, a.document,
       a.revision, s.status, s.reason, s.message, s.reconciled_at
FROM applied_objects a
LEFT JOIN object_status s ON s.key = 'service:' || a.source || '/' || a.name
WHERE a.kind = 'Service'
  AND ($1::text IS NULL OR (a.source, a.kind, a.name) > ($1::text, 'Service', $2::text))
ORDER BY a.source, a.kind, a.name LIMIT $3;

-- name: page_service
-- One applied Service (source $1, name $2) as services_list shows it.
SELECT 'service:' || a.source || '/' || a.name AS key, a.source, a.name, a.document,
       a.revision, s.status, s.reason, s.message, s.reconciled_at
FROM applied_objects a
LEFT JOIN object_status s ON s.key = 'service:' || a.source || '/' || a.name
WHERE a.source = $1 AND a.kind = 'Service' AND a.name = $2;

-- name: page_pulls
-- Tracked pull requests after name $1 (`owner/repo#N`; NULL: from the first), of repository
-- $2 and state $3 when given, at most $4, by name (the primary key's order), with their
-- status: pulls_list's rows, a page at a time.
SELECT r.name, r.state, r.version, r.data, r.updated_at, s.status, s.reason, s.message
FROM resource_state r LEFT JOIN object_status s ON s.key = 'pull:' || r.name
WHERE r.kind = 'pull' AND ($1::text IS NULL OR r.name > $1)
  AND ($2::text IS NULL OR starts_with(r.name, $2 || '#'))
  AND ($3::text IS NULL OR r.state = $3)
ORDER BY r.name LIMIT $4;

-- name: applied_objects_of_refs
-- The applied objects of these (source, kind, name) triples only (one page's objects).
SELECT a.source, a.kind, a.name, a.content_hash, a.revision, a.applied_at
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(source, kind, name)
JOIN applied_objects a ON a.source = k.source AND a.kind = k.kind AND a.name = k.name;

-- name: resources_named
-- The records of kind $1 named in $2 only.
SELECT name, data FROM resource_state WHERE kind = $1 AND name = ANY($2::text[]);
