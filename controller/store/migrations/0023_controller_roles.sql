-- Issue 24. What each controller process carries out: `role` ('serve': `p38 up`/`p38 serve`;
-- 'worker': `p38 worker`, job workers only) and `jobs`, its job workers by kind
-- ({"generation": 2, "session": 2, "run": 4}), so `p38 status` can say which long work has
-- no live process to carry it out. `run_workers` stays, written as jobs->'run'. Only additions.
ALTER TABLE controllers ADD COLUMN role text NOT NULL DEFAULT 'serve'
    CHECK (role IN ('serve', 'worker'));
ALTER TABLE controllers ADD COLUMN jobs jsonb NOT NULL DEFAULT '{}'::jsonb;
