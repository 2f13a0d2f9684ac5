-- What an action does (or, recorded as dry-run, would have done), in words: `+ Agent/x`,
-- `check run p38/reconcile on abc1234: success`.
ALTER TABLE actions ADD COLUMN description text NOT NULL DEFAULT '';
