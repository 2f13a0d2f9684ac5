-- A generation as of its last round (issue 24): the messages sent and received, the round it
-- is at and its report, written after every round while the version is unfinished, so that a
-- generation stopped by a deploy or a crash resumes at that round on any process (its fix
-- rounds are not started over, its spend so far is counted once). Only additions.
ALTER TABLE agent_versions ADD COLUMN session jsonb;
