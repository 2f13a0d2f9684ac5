-- Manifest file contents by git blob SHA (content-addressed, so shared by every source): a
-- push fetches only the blobs it has not seen, and a plan re-reads the rest from here.
CREATE TABLE manifest_blobs (
    sha         text        PRIMARY KEY,
    content     text        NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now()
);
