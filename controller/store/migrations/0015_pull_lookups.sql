-- Auto-merge's lookups (issue 21): the open pull requests whose recorded head is a commit (a
-- commit status or a check run that names no pull request maps to them), and the `/claude`
-- tasks that made a pull request (its provenance). Only additions.
CREATE INDEX resource_state_pull_head_idx ON resource_state ((data ->> 'head_sha'))
    WHERE kind = 'pull';
CREATE INDEX claude_tasks_pull_idx ON claude_tasks (repo, pull_number)
    WHERE pull_number IS NOT NULL;
