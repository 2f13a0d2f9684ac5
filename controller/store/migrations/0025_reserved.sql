-- Reserved: the number the lead's migration of issue 20 takes (branch `armed` numbers its own
-- 0026). This file only keeps the numbers without a gap on that branch; it is replaced by the
-- lead's 0025 when the branches are merged.
SELECT 1;
