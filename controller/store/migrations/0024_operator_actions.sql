-- Issue 19. `operator_actions`: every operator's word, from the CLI, the API or the operator's
-- page (approve a held action, replay a delivery, revive a dead key, set or lift a source's
-- killswitch, run or cancel an agent run), with who gave it and through what, so the page and
-- the audit can say who did what. Only additions.
CREATE TABLE operator_actions (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    by_whom text NOT NULL,
    via text NOT NULL CHECK (via IN ('cli', 'api', 'page')),
    verb text NOT NULL,
    target text NOT NULL,
    outcome text NOT NULL,
    detail jsonb
);
CREATE INDEX operator_actions_target_idx ON operator_actions (target, id DESC);

-- The held actions, newest first, for the operator's page (a few among many).
CREATE INDEX actions_held_idx ON actions (id DESC) WHERE status = 'held';
-- The reconciles that failed, newest first (the overview's recent failures).
CREATE INDEX audit_failed_idx ON audit (id DESC) WHERE outcome IN ('retry', 'dead');
