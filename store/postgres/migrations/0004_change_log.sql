-- 0004_change_log: what each counted change touched, so that a replica
-- reloads the few instances another replica changed instead of rereading
-- every instance (issue 7).
--
-- Every writing Update bumps changes.n (0001) and, from this release on,
-- writes the row of the new value here in the same transaction. Watch
-- reads the rows after the last value it reported; a value without a row
-- means "unknown, reload everything". Replicas of the previous release,
-- still running during a rolling upgrade, bump the counter without writing
-- a row, and pruned rows are missing too: both fall back to a full reload.
--
-- A counter value that comes round again (the counter was reset by hand)
-- overwrites its row: writers upsert.

CREATE TABLE change_log (
    n                bigint PRIMARY KEY,
    -- The ids of the instances whose record, bindings or owned role
    -- collections the change touched; NULL when there were too many to
    -- list, which reads as "unknown".
    instances        text[],
    -- Role collections without an owner (the admin API's) changed.
    role_collections boolean NOT NULL DEFAULT false,
    -- Meta records (signing keys, CA, zone) changed.
    meta             boolean NOT NULL DEFAULT false,
    logged_at        timestamptz NOT NULL DEFAULT now()
);
-- Pruning deletes by age as well as by counter value.
CREATE INDEX change_log_logged_at ON change_log (logged_at);
