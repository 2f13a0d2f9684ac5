-- When a cached blob was last read: retention deletes the blobs nothing has read for
-- P38_RETENTION_DAYS (every blob a /claude task's search read was kept for ever). The
-- manifests being applied read theirs at every plan, an open task within its session.
ALTER TABLE manifest_blobs ADD COLUMN used_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX manifest_blobs_used_idx ON manifest_blobs (used_at);
