-- A source that returns to a tree it was at before (a local folder's revert, a force-push back
-- to an older commit) is a revision acted on like any other: /api/revisions lists it as the
-- newest entry. Each entry now carries the source's state version it was acted at
-- (`generation`; NULL for entries recorded before this migration), and the uniqueness that
-- made a record idempotent includes it, so the same (revision, tree, status) may be recorded
-- again at a later version, and once per version.
--
-- Not only additions: the old UNIQUE (source, revision, tree, status) is dropped, since a
-- return breaks it. A release older than this one, still running during a rolling deploy,
-- names that constraint in its ON CONFLICT and fails to record a revision until it is
-- stopped; its reconcile retries, and the new release records the revision.
ALTER TABLE manifest_revisions ADD COLUMN generation bigint;
ALTER TABLE manifest_revisions
    DROP CONSTRAINT manifest_revisions_source_revision_tree_status_key;
CREATE UNIQUE INDEX manifest_revisions_once_idx
    ON manifest_revisions (source, revision, tree, status, generation);
