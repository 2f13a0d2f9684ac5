-- Issue 18. `controllers`: one row per running controller process (`p38 up`, `p38 serve`),
-- written when it starts and every few seconds while it runs, removed when it stops cleanly;
-- a row not seen for a while is a process that was killed or lost its database (shown as
-- gone by `p38 status`, pruned after a day). `agent_versions.failure` says whose fault a
-- FAILED version is ('provider': the API refused the key or was away; 'agent': the code),
-- with the provider's credential fingerprint at the time, so a changed key retries it.
-- `agent_rebuilds`: `p38 agents rebuild` asks for a new version after the newest one.
-- Only additions.
CREATE TABLE controllers (
    id uuid PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    workers integer NOT NULL DEFAULT 0,      -- reconcile workers (0: this process only ingests)
    run_workers integer NOT NULL DEFAULT 0,  -- agent run workers
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX controllers_last_seen_idx ON controllers (last_seen);

ALTER TABLE agent_versions ADD COLUMN failure text
    CHECK (failure IS NULL OR failure IN ('agent', 'provider'));
ALTER TABLE agent_versions ADD COLUMN failed_credential text;  -- a fingerprint, never the key

CREATE TABLE agent_rebuilds (
    agent text PRIMARY KEY,                  -- agent:<source>/<name>
    after_version integer NOT NULL,          -- build anew unless a newer version exists
    asked_by text NOT NULL,
    asked_at timestamptz NOT NULL DEFAULT now()
);
