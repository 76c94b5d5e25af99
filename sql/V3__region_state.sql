-- Operator state per region (drained or not), shared by every node. Platform data:
-- not tenant-owned; GLOBAL on CockroachDB (read everywhere, written rarely).
CREATE TABLE region_state (
    region     text        NOT NULL PRIMARY KEY,
    drained    boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT ''
);

GRANT SELECT, INSERT, UPDATE ON region_state TO meridian_app;
