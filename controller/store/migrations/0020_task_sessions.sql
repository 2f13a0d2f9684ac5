-- A `/claude` task's session as of its last turn (issue 24): the messages sent and received,
-- the tool results, the change so far and the files read in part, written after every turn,
-- so that a session stopped by a deploy or a crash resumes at that turn on any process
-- instead of asking (and paying for) its turns again. Only additions.
ALTER TABLE claude_tasks ADD COLUMN session jsonb;
