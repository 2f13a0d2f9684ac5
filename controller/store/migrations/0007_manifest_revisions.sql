-- Every revision of a manifest source the controller acted on: applied (with what changed) or
-- invalid (with its problems). The history an operator reads to see what was applied when.
CREATE TABLE manifest_revisions (
    id           bigserial   PRIMARY KEY,
    source       text        NOT NULL,
    revision     text        NOT NULL,
    tree         text,
    status       text        NOT NULL CHECK (status IN ('applied', 'invalid')),
    objects      integer     NOT NULL,
    changes      jsonb       NOT NULL DEFAULT '[]',
    problems     jsonb       NOT NULL DEFAULT '[]',
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, revision, tree, status)
);
CREATE INDEX manifest_revisions_source_idx ON manifest_revisions (source, id DESC);
