-- Armed ticks: a schedule's next tick (its row, its run, the run's key due at the instant) is
-- written at the previous tick, so at the due second only a run worker's claim of that key
-- remains. Only additions: the functions of earlier migrations stay for a release still running
-- them during a rolling deploy; the new ones are versioned and called with named arguments.
--
-- An armed tick is a schedule_ticks row with outcome 'armed' (still unique by schedule and due
-- time: the old path's INSERT of the same instant finds it and fires nothing), whose run is
-- queued and whose run key waits in work_queue with wait_kind 'armed' until the instant: a
-- firm wait, which no hint ends (p38_ingest_v2 ends only 'requeue' waits). `armed` holds what
-- the run decides with at the instant: the schedule's content hash (a change re-arms), its
-- cron, time zone and concurrency.

ALTER TABLE schedule_ticks DROP CONSTRAINT schedule_ticks_outcome_check;
ALTER TABLE schedule_ticks ADD CONSTRAINT schedule_ticks_outcome_check
    CHECK (outcome IN ('fired', 'skipped', 'armed'));
ALTER TABLE schedule_ticks ADD COLUMN armed jsonb;
CREATE INDEX schedule_ticks_armed ON schedule_ticks (run_id) WHERE outcome = 'armed';

ALTER TABLE work_queue DROP CONSTRAINT work_queue_wait_kind_check;
ALTER TABLE work_queue ADD CONSTRAINT work_queue_wait_kind_check
    CHECK (wait_kind IN ('requeue', 'backoff', 'coalesce', 'armed'));

-- Withdraw the armed ticks of a schedule that are not yet due (and, with p_late_before, those
-- due before that instant, which the schedule takes over: its catch-up rules decide them),
-- except the one due at p_keep_due armed with p_keep_hash: the tick rows, their queued runs and
-- the run keys no worker holds. A run key a worker holds right now finds its tick gone when it
-- fires (p38_fire_armed_v1) and runs nothing. Returns how many were withdrawn.
CREATE FUNCTION p38_disarm_v1(p_schedule text, p_keep_due timestamptz, p_keep_hash text,
                              p_late_before timestamptz)
RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;

-- Arm the tick of p_schedule due at p_due_at (in the future) for agent p_agent: its row
-- (outcome 'armed', p_armed: what the run decides with), a queued run, and the run's key due at
-- that instant with a firm wait. Withdraws first what is armed otherwise (p38_disarm_v1).
-- Once only: an instant that has a row already (armed, fired or skipped) is left as it is.
-- Returns the run armed (NULL: nothing new was armed).
CREATE FUNCTION p38_arm_tick_v1(p_schedule text, p_due_at timestamptz, p_agent text,
                                p_armed jsonb, p_late_before timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;

-- The instant of an armed tick, decided by the run worker that claimed its run: p_outcome
-- 'fired' (the run goes on) or 'skipped' (p_reason; the run, never started, is removed), only
-- while the tick is still armed for run p_run (a change of the schedule withdrew it: nothing
-- happens, `decided` is false). Then arms the following instant p_next (p38_arm_tick_v1) when
-- given. One statement for the whole instant.
CREATE FUNCTION p38_fire_armed_v1(p_schedule text, p_due_at timestamptz, p_run bigint,
                                  p_outcome text, p_reason text, p_next timestamptz,
                                  p_agent text, p_armed jsonb)
RETURNS TABLE (decided boolean, next_run bigint)
LANGUAGE plpgsql VOLATILE AS $$
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
END $$;
