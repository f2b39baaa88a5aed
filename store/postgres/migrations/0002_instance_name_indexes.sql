-- 0002_instance_name_indexes: indexed lookups of instances by xsappname,
-- by plan and xsappname without its suffix, and by space and instance
-- name, so that provision and update need not read every instance of the
-- zone (issue 7). Role collections already have their owner index.
--
-- The new columns are derived from the data column by a trigger, not
-- written by the broker: replicas of the previous release, still running
-- during a rolling upgrade, write instances without knowing the columns,
-- and their writes must be indexed too. The trigger also does the
-- backfill of the rows already there.
--
-- Like bbolt, the xsappname columns are NULL (not indexed) for instances
-- without an xsappname (identity instances), and instance_name is NULL for
-- instances without an instance name.

ALTER TABLE instances
    ADD COLUMN xsappname      text COLLATE "C", -- full xsappname, "bookshop!t3"
    ADD COLUMN xsappname_base text COLLATE "C", -- before the first '!': store.BaseAppName
    ADD COLUMN plan           text COLLATE "C",
    ADD COLUMN space_guid     text COLLATE "C",
    ADD COLUMN instance_name  text COLLATE "C";

CREATE FUNCTION instances_index_columns() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    raw text := NEW.data::text;
    doc json := NEW.data;
BEGIN
    -- PostgreSQL cannot turn the escape \u0000 (a NUL, which Go's
    -- encoding/json writes for one) into text, and fails on it anywhere in
    -- the document. Such a record, rare as it is, must still be written, so
    -- its NULs are read as U+FFFD. The escaped backslashes are set aside
    -- first, so that "\\u0000" (a backslash, then "u0000") stays as it is.
    IF strpos(raw, '\u0000') > 0 THEN
        doc := replace(replace(replace(raw, '\\', chr(1)), '\u0000', '\ufffd'), chr(1), '\\')::json;
    END IF;
    SELECT nullif(r.xsappname, ''), r.plan, r.space_guid, nullif(r.instance_name, '')
        INTO NEW.xsappname, NEW.plan, NEW.space_guid, NEW.instance_name
        FROM json_to_record(doc) AS r (xsappname text, plan text, space_guid text, instance_name text);
    NEW.xsappname_base := split_part(NEW.xsappname, '!', 1);
    RETURN NEW;
END
$$;

CREATE TRIGGER instances_index_columns
    BEFORE INSERT OR UPDATE OF data ON instances
    FOR EACH ROW EXECUTE FUNCTION instances_index_columns();

-- Backfill: the trigger fills the columns of every row.
UPDATE instances SET data = data;

-- The id ends each index so that the lookups, sorted by id, read the rows
-- in index order.
CREATE INDEX instances_xsappname ON instances (xsappname, id);
CREATE INDEX instances_app_name ON instances (plan, xsappname_base, id);
CREATE INDEX instances_service_name ON instances (space_guid, instance_name, id);
