-- `/claude` tasks: one row per work command (or retry), from the comment that asked to the pull
-- request Claude's change became. RECEIVED -> AUTHORIZED -> WORKING -> PR_OPENED | FAILED |
-- REFUSED | CANCELLED | DRY_RUN (no Anthropic key or no App credentials: recorded with what
-- it would have done). `history` lists every step with its reason (also in the audit, by the
-- task's key). `change` is what Claude wrote ({path: {"content": text or null, "mode"}}) until
-- it is pushed. Only additions.
CREATE TABLE claude_tasks (
    id                 bigserial   PRIMARY KEY,
    repo               text        NOT NULL,
    issue              integer     NOT NULL,
    comment_id         bigint      NOT NULL,
    installation_id    bigint,
    on_pull            boolean     NOT NULL DEFAULT false,
    requested_by       text        NOT NULL,
    command            text        NOT NULL,
    retry_of           bigint      REFERENCES claude_tasks (id),
    state              text        NOT NULL DEFAULT 'RECEIVED'
                       CHECK (state IN ('RECEIVED', 'AUTHORIZED', 'WORKING', 'PR_OPENED',
                                        'FAILED', 'REFUSED', 'CANCELLED', 'DRY_RUN')),
    reason             text        NOT NULL DEFAULT '',
    history            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    model              text,
    input_tokens       bigint      NOT NULL DEFAULT 0,
    output_tokens      bigint      NOT NULL DEFAULT 0,
    cache_read_tokens  bigint      NOT NULL DEFAULT 0,
    cache_write_tokens bigint      NOT NULL DEFAULT 0,
    usd                numeric(12, 6) NOT NULL DEFAULT 0,
    tool_calls         integer     NOT NULL DEFAULT 0,
    base_branch        text,
    base_sha           text,
    branch             text,
    change             jsonb,
    title              text,
    summary            text,
    pull_number        integer,
    pull_url           text,
    commit_sha         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    UNIQUE (repo, comment_id)
);
CREATE INDEX claude_tasks_thread_idx ON claude_tasks (repo, issue, id DESC);
CREATE INDEX claude_tasks_created_brin ON claude_tasks USING brin (created_at);
