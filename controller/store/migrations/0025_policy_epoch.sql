-- What the gate reads (the Policy objects applied and the killswitches) changes rarely. A
-- counter bumped in the same transaction as any such change lets each process keep the
-- policies it read and read them again only when the counter moved: the claim of a key
-- returns it (no statement of its own), and the check before a plan's actions run reads it
-- again, so a killswitch still holds the very next action. Only additions.
CREATE TABLE policy_epoch (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch bigint NOT NULL
);
INSERT INTO policy_epoch (only_row, epoch) VALUES (true, 1);

CREATE FUNCTION p38_policy_epoch_bump_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE policy_epoch SET epoch = epoch + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER killswitches_policy_epoch
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON killswitches
    FOR EACH STATEMENT EXECUTE FUNCTION p38_policy_epoch_bump_v1();
CREATE TRIGGER applied_policy_written_epoch
    AFTER INSERT OR UPDATE ON applied_objects
    FOR EACH ROW WHEN (NEW.kind = 'Policy') EXECUTE FUNCTION p38_policy_epoch_bump_v1();
CREATE TRIGGER applied_policy_moved_epoch
    AFTER UPDATE OR DELETE ON applied_objects
    FOR EACH ROW WHEN (OLD.kind = 'Policy') EXECUTE FUNCTION p38_policy_epoch_bump_v1();
CREATE TRIGGER applied_objects_truncated_epoch
    AFTER TRUNCATE ON applied_objects
    FOR EACH STATEMENT EXECUTE FUNCTION p38_policy_epoch_bump_v1();
