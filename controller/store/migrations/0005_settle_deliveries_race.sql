-- Two keys of one delivery settled at the same moment each saw the other's key still pending
-- (neither had committed), so neither marked the delivery processed and it stayed pending.
-- Now each settle locks the delivery rows first (in id order) and counts after the lock: the
-- second waits for the first to commit, then sees its key done.
CREATE OR REPLACE FUNCTION p38_settle_deliveries(p_ids bigint[], p_error text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM deliveries WHERE id = ANY(p_ids) AND status = 'pending'
    ORDER BY id FOR UPDATE;
    UPDATE deliveries d
    SET status = CASE WHEN s.failed > 0 THEN 'failed' ELSE 'processed' END,
        processed_at = now(), error = CASE WHEN s.failed > 0 THEN p_error ELSE NULL END
    FROM (
        SELECT delivery_id,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'pending') AS pending
        FROM delivery_keys WHERE delivery_id = ANY(p_ids) GROUP BY delivery_id
    ) s
    WHERE d.id = s.delivery_id AND s.pending = 0 AND d.status = 'pending';
END $$;
