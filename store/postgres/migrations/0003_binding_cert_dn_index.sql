-- 0003_binding_cert_dn_index: indexed lookup of bindings by the subject
-- and issuer DN of their certificate, so that the token server finds the
-- unpinned self-managed certificate (certificate-pinning false) a client
-- presents without reading every binding.
--
-- As in 0002, the columns are derived from the data column by a trigger,
-- not written by the broker: replicas of the previous release, still
-- running during a rolling upgrade, insert bindings without knowing the
-- columns, and their bindings must be found too. The trigger also does
-- the backfill. Bindings are only ever inserted and deleted, never
-- updated, and a delete (also the cascade from an instance) takes the
-- index entry with the row.
--
-- Like bbolt, the columns are NULL for bindings without a certificate, and
-- an empty DN is NULL: it identifies no one, and the broker never looks it
-- up.

ALTER TABLE bindings
    ADD COLUMN cert_subject text COLLATE "C",
    ADD COLUMN cert_issuer  text COLLATE "C";

CREATE FUNCTION bindings_index_columns() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    raw text := NEW.data::text;
    doc json := NEW.data;
BEGIN
    -- PostgreSQL cannot turn the JSON escape \u0000 (a NUL) into text,
    -- and fails on it anywhere in the document; such a record must still
    -- be written. Its NULs are read as U+FFFD, with the escaped
    -- backslashes set aside first so that "\\u0000" stays as it is (see
    -- 0002). A DN with a NUL thus gets a column value that is not its DN;
    -- the broker compares the DNs of the rows it finds, so this can only
    -- make it miss the binding, never return a wrong one.
    IF strpos(raw, '\u0000') > 0 THEN
        doc := replace(replace(replace(raw, '\\', chr(1)), '\u0000', '\ufffd'), chr(1), '\\')::json;
    END IF;
    NEW.cert_subject := NULL;
    NEW.cert_issuer := NULL;
    IF json_typeof(doc->'cert') = 'object' THEN
        SELECT nullif(c.subject, ''), nullif(c.issuer, '')
            INTO NEW.cert_subject, NEW.cert_issuer
            FROM json_to_record(doc->'cert') AS c (subject text, issuer text);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER bindings_index_columns
    BEFORE INSERT OR UPDATE OF data ON bindings
    FOR EACH ROW EXECUTE FUNCTION bindings_index_columns();

-- Backfill: the trigger fills the columns of every row that can have a
-- certificate; the others keep their NULLs without being rewritten. The
-- filter is a text search, not a JSON lookup, because a lookup fails on a
-- document with \u0000; a "cert" key elsewhere in a record costs only a
-- needless rewrite.
UPDATE bindings SET data = data WHERE strpos(data::text, '"cert"') > 0;

-- The index holds hashes of the DNs, not the DNs: a certificate the user
-- brought may have DNs of any length, and a btree entry must fit in a
-- third of a page (about 2700 bytes), or the insert fails. The lookup
-- compares the columns as well. The id ends the index so that the lookup,
-- sorted by id, reads the rows in index order.
CREATE INDEX bindings_cert_dn ON bindings (md5(cert_subject), md5(cert_issuer), id)
    WHERE cert_subject IS NOT NULL AND cert_issuer IS NOT NULL;
