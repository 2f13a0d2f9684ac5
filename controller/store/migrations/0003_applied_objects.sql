-- What the controller last applied from each manifest source (a repository, or `local`):
-- the normalised document and its content hash, to diff the next revision against.
CREATE TABLE applied_objects (
    source        text        NOT NULL,
    kind          text        NOT NULL,
    name          text        NOT NULL,
    content_hash  text        NOT NULL,
    document      jsonb       NOT NULL,
    revision      text,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, kind, name)
);
