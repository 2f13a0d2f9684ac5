-- Retention: what the pruner selects by age. BRIN indexes are tiny and nearly free to keep up
-- at ingest (rows arrive in time order), which matters on the hot insert path; a redelivery
-- that moves received_at only widens its block range's summary.
CREATE INDEX deliveries_received_brin ON deliveries USING brin (received_at);
CREATE INDEX audit_started_brin ON audit USING brin (started_at);
