-- The killswitch as a `/claude stop` comment turns it on for one source (until `/claude
-- resume`): every action of that source's objects that touches the world is held while a row
-- is here, as with the Policy manifest's killswitch and P38_KILLSWITCH.
CREATE TABLE killswitches (
    source  text        PRIMARY KEY,
    by_whom text        NOT NULL,
    since   timestamptz NOT NULL DEFAULT now()
);
