-- The commits a Service must not deploy again (issue 17): marked when a deployment of the
-- commit failed, crashed or turned unhealthy and was rolled back, so that no resync or restart
-- deploys it again; cleared by hand (`p38 services clear-bad`), recorded with who did it. A
-- newer commit on the branch is deployed whatever the marks. Only additions.
CREATE TABLE service_bad_commits (
    service text NOT NULL,            -- the Service's key: service:<source>/<name>
    commit_sha text NOT NULL,
    deployment text NOT NULL,         -- the Railway deployment that failed
    reason text NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now(),
    cleared_at timestamptz,
    cleared_by text,
    PRIMARY KEY (service, commit_sha)
);
