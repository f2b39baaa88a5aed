-- 0001_init: the broker's records, one table per bbolt bucket.
--
-- Records are kept as the JSON of the store types, exactly as the bbolt
-- backend keeps them, so that both backends stay in lock-step; columns
-- exist only where a constraint or an index needs them. The type is json,
-- not jsonb: json keeps the text as written, so the json.RawMessage fields
-- of a record (context, parameters, config) come back byte for byte.
--
-- Keys are COLLATE "C": byte order, as in bbolt, and no dependence on the
-- server's locale.

CREATE TABLE instances (
    id        text COLLATE "C" PRIMARY KEY,
    -- NULL when the instance has no OAuth client (bbolt indexes only
    -- non-empty client ids).
    client_id text COLLATE "C" UNIQUE,
    data      json NOT NULL
);

CREATE TABLE bindings (
    id          text COLLATE "C" PRIMARY KEY,
    instance_id text COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    data        json NOT NULL
);
CREATE INDEX bindings_instance_id ON bindings (instance_id);

-- A certificate belongs to one binding; a binding has at most one.
CREATE TABLE fingerprints (
    fingerprint text COLLATE "C" PRIMARY KEY,
    binding_id  text COLLATE "C" NOT NULL UNIQUE REFERENCES bindings (id) ON DELETE CASCADE
);

CREATE TABLE role_collections (
    name  text COLLATE "C" PRIMARY KEY,
    -- The owning instance id, '' for collections made through the admin
    -- API. Not a foreign key: bbolt does not require the owner to exist.
    owner text COLLATE "C" NOT NULL DEFAULT '',
    data  json NOT NULL
);
CREATE INDEX role_collections_owner ON role_collections (owner);

CREATE TABLE users (
    id       text COLLATE "C" PRIMARY KEY,
    username text COLLATE "C" NOT NULL UNIQUE,
    data     json NOT NULL
);

CREATE TABLE ephemeral (
    key        text COLLATE "C" PRIMARY KEY,
    -- Unix nanoseconds, as in bbolt, so that expiry compares exactly alike
    -- in both backends (timestamptz keeps only microseconds).
    expires_at bigint NOT NULL,
    value      bytea NOT NULL
);
CREATE INDEX ephemeral_expires_at ON ephemeral (expires_at);

CREATE TABLE meta (
    key   text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE sequences (
    name  text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);

-- One row counting committed changes. Every Update that writes bumps it
-- (and sends NOTIFY broker_changes) in its transaction; replicas poll it
-- as the fallback for lost notifications. Writers also lock this table
-- first, which serialises them across replicas.
CREATE TABLE changes (
    id integer PRIMARY KEY CHECK (id = 1),
    n  bigint NOT NULL
);
INSERT INTO changes (id, n) VALUES (1, 0);
