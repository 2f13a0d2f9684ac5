-- Runs across a deploy (issue 24): a run interrupted by a shutdown or a crash is run once more
-- when its agent allows it (`spec.retryOnInterrupt`; by default scheduled runs do), else it
-- ends `interrupted` (not `failed`) with the reason. `interruptions` counts them, so a run is
-- retried once and once only.
ALTER TABLE agent_runs ADD COLUMN interruptions integer NOT NULL DEFAULT 0;
ALTER TABLE agent_runs DROP CONSTRAINT agent_runs_outcome_check;
ALTER TABLE agent_runs ADD CONSTRAINT agent_runs_outcome_check CHECK (outcome = ANY (ARRAY[
    'succeeded', 'failed', 'timed_out', 'killed', 'over_budget', 'cancelled', 'interrupted']));
