-- A Service's incidents (issue 17): one row per failed deployment (FAILED, CRASHED, or
-- unhealthy after SUCCESS), recorded for every Service, a local folder's included, whether or
-- not its source repository also gets an incident issue. `rolled_back_to` says what was done;
-- `closed_at` is set once a later deployment runs healthy. Only additions.
CREATE TABLE service_incidents (
    service text NOT NULL,             -- the Service's key: service:<source>/<name>
    deployment text NOT NULL,          -- the Railway deployment that failed
    commit_sha text,
    status text NOT NULL,              -- FAILED, CRASHED, UNHEALTHY (...)
    rolled_back_to text,               -- the deployment rolled back to (none: not rolled back)
    rolled_back_commit text,
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    closed_by text,                    -- the healthy deployment that closed it
    PRIMARY KEY (service, deployment)
);
CREATE INDEX service_incidents_open_idx ON service_incidents (service, opened_at DESC);
