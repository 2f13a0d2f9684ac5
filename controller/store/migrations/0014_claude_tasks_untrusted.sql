-- Who, among the authors of the issue and the thread a `/claude` task read, has no writer's
-- association (OWNER, MEMBER, COLLABORATOR) in the repository: a prompt injection can stay
-- inside the allowed paths, so its pull request says so and auto-merge waits for a writer's
-- approving review (Policy autoMerge.untrustedInput). Only additions.
ALTER TABLE claude_tasks ADD COLUMN untrusted_input text[] NOT NULL DEFAULT '{}';
