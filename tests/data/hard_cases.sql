-- Hard cases for dump and restore. Load into an empty UTF8 database with
--   psql -X -v ON_ERROR_STOP=1 -d DB -f tests/data/hard_cases.sql
-- Works on PostgreSQL 15 and 17. Deterministic: no now(), random() or clock-dependent defaults in the data,
-- so two loads give identical dumps (except pg_dump's per-run \restrict key).
-- Needs the contrib extensions citext and btree_gist (in Debian's postgresql-15 and in the PyPI PG17 build).
-- Creates no roles (they are cluster-wide and would clash when loaded twice into one cluster).
-- The exact row count of every table is in tests/hard_cases.py (HARD_CASES_ROW_COUNTS); change both together.
-- Hard cases for row counting: partitions and inheritance children are dumped as tables of their own, the
-- partitioned parent and materialized views get no COPY block, text with newlines and a "\." value.

SET client_min_messages = warning;
SET TimeZone = 'UTC';

CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- ---------------------------------------------------------------------------------------------------------
-- Types of our own
-- ---------------------------------------------------------------------------------------------------------
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';             -- enum sort order differs from OID order
CREATE TYPE "Quoted Enum" AS ENUM ('with space', 'it''s', 'ünï', '');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE DOMAIN email AS citext CHECK (VALUE ~ '^[^@\s]+@[^@\s]+$');
CREATE TYPE address AS (street text, city text, zip varchar(10), tags text[]);
CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);

-- ---------------------------------------------------------------------------------------------------------
-- Every common type, with edge values and a row of NULLs
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE all_types (
    id          integer PRIMARY KEY,
    c_int2      smallint,
    c_int4      integer,
    c_int8      bigint,
    c_numeric   numeric(60, 30),
    c_numeric_u numeric,
    c_float4    real,
    c_float8    double precision,
    c_text      text,
    c_varchar   varchar(50),
    c_char      char(5),
    c_citext    citext,
    c_bytea     bytea,
    c_bool      boolean,
    c_date      date,
    c_time      time,
    c_timetz    time with time zone,
    c_ts        timestamp,
    c_tstz      timestamptz,
    c_interval  interval,
    c_uuid      uuid,
    c_json      json,
    c_jsonb     jsonb,
    c_int_arr   integer[],
    c_text_arr  text[],
    c_2d_arr    integer[][],
    c_enum      mood,
    c_enum_arr  mood[],
    c_qenum     "Quoted Enum",
    c_domain    positive_int,
    c_email     email,
    c_composite address,
    c_comp_arr  address[],
    c_int4range int4range,
    c_tstzrange tstzrange,
    c_numrange  numrange,
    c_floatrange floatrange,
    c_multirange int4multirange,
    c_inet      inet,
    c_cidr      cidr,
    c_macaddr   macaddr,
    c_macaddr8  macaddr8,
    c_money     money,
    c_bit       bit(8),
    c_varbit    bit varying(64),
    c_tsvector  tsvector,
    c_tsquery   tsquery,
    c_xml       xml,
    c_point     point,
    c_box       box,
    c_oid       oid
);

INSERT INTO all_types VALUES
(1, 32767, 2147483647, 9223372036854775807,
 '123456789012345678901234567890.123456789012345678901234567890',
 10::numeric ^ 400 + 0.000000000000000000000000000001,
 3.4028235e38, 1.7976931348623157e308,
 E'tab\there\nnewline\r\ncrlf back\\slash ''single'' "double" emoji 🐘🎉 CJK 漢字かなカナ RTL עברית العربية',
 'varchar ∑', 'ab', 'CaseInsensitive',
 '\x00ff00deadbeef0000'::bytea, true,
 '2024-02-29', '23:59:59.999999', '12:00:00+05:30', '2024-12-31 23:59:59.999999', '2024-06-01 12:34:56.789+02',
 '1 year 2 mons -3 days 04:05:06.789',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
 '{"dup": 1, "dup": 2,   "keep": "whitespace"}',
 '{"nested": {"arr": [1, 2.5, null, true, "x\"y"], "emoji": "🐘", "esc": "tab\tnl\n"}}',
 '{1,NULL,3}', ARRAY['comma,here', 'quote"here', 'brace{}', 'back\slash', 'NULL', NULL, '', ' spaced '],
 '{{1,2,3},{4,5,6}}', 'happy', '{sad,meh,NULL}', 'it''s', 42, 'Someone@Example.COM',
 ROW('1 Main St, "Apt" 2', 'Zürich', '8001', ARRAY['a', NULL]),
 ARRAY[ROW('s1', 'c1', '1', NULL)::address, NULL, ROW(NULL, NULL, NULL, '{}')::address],
 '[1,10)', '[2024-01-01 00:00+00,2024-02-01 00:00+00)', '(,5.5]', '[1.5,2.5)', '{[1,3),[5,8)}',
 '2001:db8::ff00:42:8329', '192.168.100.128/25', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
 '1234567.89', B'10101010', B'1101', to_tsvector('english', 'The quick brown foxes jumped'),
 to_tsquery('english', 'fox & !dog'),
 '<doc a="1"><![CDATA[<raw> & stuff]]><e>ünï</e></doc>', '(1.5,-2.5)', '((0,0),(1,1))', 4294967295),
(2, -32768, -2147483648, -9223372036854775808,
 '-0.000000000000000000000000000001', 'NaN', 'NaN', 'NaN',
 E'\\.', '', '', '', '\x'::bytea, false,
 '4713-01-01 BC', '00:00:00', '00:00:00-12', '4713-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999+00',
 '-178000000 years', '00000000-0000-0000-0000-000000000000',
 'null', '"just a string"', '{}', '{}', '{{NULL,NULL}}', 'sad', '{}', '', 1, 'a@b',
 ROW(NULL, NULL, NULL, NULL), '{}', 'empty', 'empty', 'empty', 'empty', '{}',
 '0.0.0.0', '0.0.0.0/0', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff:ff:ff',
 '-92233720368547758.08', B'00000000', B'', '', '', '<empty/>', '(0,0)', '((0,0),(0,0))', 0),
(3, 0, 0, 0, 0, 'Infinity', 'Infinity', 'Infinity',
 E'line1\nline2\n\\N\n\\.\nlast\\', ' ', 'x', 'ß', E'\\x5c2e0a'::bytea, NULL,
 'infinity', '24:00:00', '24:00:00+14', 'infinity', 'infinity', '0', NULL,
 '[]', '[{"a": [[]]}]', '{-0}', '{"\\\\", "\"", "{", "}", ","}', '{{1},{2},{3}}', 'ok', '{ok,ok}',
 'with space', 2147483647, NULL, ROW('', '', '', '{""}'), NULL, '(,)', '(,)', '[-infinity,infinity]',
 '(,)', '{(,)}', '::1', '::/0', NULL, NULL, '0', B'11111111', repeat('1', 64)::varbit,
 'a:1A b:2B ''quoted lexeme'':3', 'a <-> b', '<a>text &amp; &lt;</a>', NULL, NULL, NULL),
(4, NULL, NULL, NULL, NULL, '-Infinity', '-Infinity', '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL,
 '-infinity', NULL, NULL, '-infinity', '-infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL),
(5, 1, 1, 1, 0.1, 0.1, 1.17549435e-38, 4.9406564584124654e-324,
 'text that looks like SQL: ''); DROP TABLE all_types; --', NULL, NULL, NULL, decode(repeat('00', 1000), 'hex'),
 true, '1970-01-01', '12:00', NULL, '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '-1 microsecond', NULL,
 '{"\u0000 is fine in json": "\u00e9"}', '{"unicode": "\u00e9\u4e2d"}', '[0:2]={1,2,3}', '{"\\N"}', NULL,
 NULL, '{meh}', 'ünï', NULL, NULL, NULL, NULL, '[-5,-1]', NULL, '[0,0]', NULL, NULL, '10.0.0.1/32',
 '10.0.0.0/8', NULL, NULL, '0.01', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1),
(6, NULL, NULL, NULL, NULL, '-0', '-0', '-0', '-0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

COMMENT ON TABLE all_types IS 'Every common type; row 4 onward mostly NULL. Comment with ''quotes'' and ünï 🐘';
COMMENT ON COLUMN all_types.c_text IS E'multi-line\ncomment';

-- ---------------------------------------------------------------------------------------------------------
-- A few thousand rows, deterministic
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE many_rows (
    id      bigint PRIMARY KEY,
    label   text NOT NULL,
    amount  numeric(12, 2),
    created timestamptz NOT NULL,
    payload jsonb
);
INSERT INTO many_rows
SELECT i,
       'row ' || i || CASE WHEN i % 7 = 0 THEN E'\twith tab' WHEN i % 11 = 0 THEN E'\nwith newline' ELSE '' END,
       CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 1.25)::numeric(12, 2) END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '17 minutes',
       jsonb_build_object('i', i, 'md5', md5(i::text))
FROM generate_series(1, 5000) AS s(i);
CREATE INDEX many_rows_created_idx ON many_rows (created);

-- ---------------------------------------------------------------------------------------------------------
-- Quoted identifiers: spaces, upper case, quotes, dots, reserved words
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE "Weird ""Table""" (
    "ID"              integer PRIMARY KEY,
    "Mixed Case Col"  text,
    "select"          text,
    "col.with.dots"   integer,
    "quote""in""name" text,
    "名前"            text
);
INSERT INTO "Weird ""Table""" VALUES
(1, 'a', 'reserved', 1, 'q', '山田'),
(2, NULL, NULL, NULL, NULL, NULL),
(3, E'semi;colon\\', 'from', -1, '"', 'Ünïcödé'),
(4, 'COPY x FROM stdin;', '\.', 0, '', '🐘');
COMMENT ON TABLE "Weird ""Table""" IS 'table named Weird "Table"';
COMMENT ON COLUMN "Weird ""Table"""."quote""in""name" IS 'column with quotes';

CREATE TABLE empty_table (id integer PRIMARY KEY, note text);
COMMENT ON TABLE empty_table IS 'has no rows';

-- ---------------------------------------------------------------------------------------------------------
-- A second schema with unicode identifiers
-- ---------------------------------------------------------------------------------------------------------
CREATE SCHEMA inventory;
COMMENT ON SCHEMA inventory IS 'second schema';
CREATE TABLE inventory."produits_données" (
    "référence" text PRIMARY KEY,
    "名前"      text NOT NULL,
    "количество" integer NOT NULL DEFAULT 0 CHECK ("количество" >= 0),
    "מחיר"      numeric(10, 2)
);
INSERT INTO inventory."produits_données" VALUES
('réf-001', 'ノート', 3, 9.99),
('réf-002', 'Книга', 0, NULL),
('réf-003', 'كتاب', 12, 120.50);
CREATE VIEW inventory."en stock" AS
    SELECT "référence", "名前" FROM inventory."produits_données" WHERE "количество" > 0;

-- ---------------------------------------------------------------------------------------------------------
-- Sequences and identity columns
-- ---------------------------------------------------------------------------------------------------------
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7 MINVALUE 1000 MAXVALUE 9999999 CACHE 1;
DO $$ BEGIN PERFORM setval('invoice_no', 4242, true); END $$;
CREATE SEQUENCE "Odd Seq" AS smallint START 10 CYCLE MAXVALUE 20;
DO $$ BEGIN PERFORM setval('"Odd Seq"', 15, false); END $$;          -- is_called false: next is 15
CREATE SEQUENCE unused_seq;                                          -- never called

CREATE TABLE identity_always (
    id    bigint GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 10) PRIMARY KEY,
    note  text,
    inv   integer NOT NULL DEFAULT nextval('invoice_no')
);
INSERT INTO identity_always (note) VALUES ('first'), ('second'), (NULL);

CREATE TABLE identity_default (
    id    integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    note  text
);
INSERT INTO identity_default (note) VALUES ('auto');
INSERT INTO identity_default (id, note) VALUES (500, 'explicit id');
INSERT INTO identity_default (note) VALUES ('auto again');

CREATE TABLE accounts (
    id      serial PRIMARY KEY,
    owner   text NOT NULL,
    balance numeric(14, 2) NOT NULL DEFAULT 0,
    CONSTRAINT balance_not_negative CHECK (balance >= 0)
);
INSERT INTO accounts (owner, balance) VALUES ('alice', 10), ('bob', 0);

-- ---------------------------------------------------------------------------------------------------------
-- Partitioned table: range partitions, one of them sub-partitioned by list, and a default partition
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE measurements (
    taken_on date NOT NULL,
    sensor   text NOT NULL,
    value    double precision,
    PRIMARY KEY (taken_on, sensor)
) PARTITION BY RANGE (taken_on);
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_default PARTITION OF measurements DEFAULT;
INSERT INTO measurements VALUES
('2024-03-01', 'a', 1.5), ('2024-03-01', 'b', NULL), ('2024-12-31', 'a', -0.25),
('2025-01-01', 'a', 2), ('2025-06-15', 'c', 'NaN'),
('1999-01-01', 'old', 0);

-- ---------------------------------------------------------------------------------------------------------
-- Plain inheritance: SELECT count(*) FROM vehicles counts the children too, COPY vehicles does not
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE vehicles (id integer PRIMARY KEY, wheels integer);
CREATE TABLE cars (doors integer) INHERITS (vehicles);
INSERT INTO vehicles VALUES (1, 2);
INSERT INTO cars VALUES (2, 4, 5), (3, 4, 3);

-- ---------------------------------------------------------------------------------------------------------
-- Foreign keys: a deferrable cycle between two tables, and a self reference
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE cycle_a (id integer PRIMARY KEY, b_id integer NOT NULL);
CREATE TABLE cycle_b (id integer PRIMARY KEY, a_id integer NOT NULL REFERENCES cycle_a DEFERRABLE INITIALLY DEFERRED);
ALTER TABLE cycle_a ADD CONSTRAINT cycle_a_b_fk FOREIGN KEY (b_id) REFERENCES cycle_b DEFERRABLE INITIALLY DEFERRED;
BEGIN;
INSERT INTO cycle_a VALUES (1, 10), (2, 20), (3, 10);
INSERT INTO cycle_b VALUES (10, 1), (20, 2), (30, 3);
COMMIT;

CREATE TABLE employees (
    id         integer PRIMARY KEY,
    name       text NOT NULL,
    manager_id integer REFERENCES employees (id) ON DELETE SET NULL
);
-- inserted children first, so a restore must not rely on row order
INSERT INTO employees VALUES (1, 'CEO', NULL);
INSERT INTO employees VALUES (5, 'intern', NULL), (4, 'dev', NULL), (3, 'lead', NULL), (2, 'CTO', 1);
UPDATE employees SET manager_id = 2 WHERE id = 3;
UPDATE employees SET manager_id = 3 WHERE id IN (4, 5);

-- ---------------------------------------------------------------------------------------------------------
-- Generated columns, a dropped column, constraints and indexes
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE generated_cols (
    id       integer PRIMARY KEY,
    qty      integer NOT NULL,
    price    numeric(10, 2) NOT NULL,
    total    numeric(12, 2) GENERATED ALWAYS AS (qty * price) STORED,
    name     text,
    name_lc  text GENERATED ALWAYS AS (lower(name)) STORED,
    CONSTRAINT qty_positive CHECK (qty > 0)
);
INSERT INTO generated_cols (id, qty, price, name) VALUES (1, 2, 3.50, 'Widget'), (2, 1, 0, NULL),
    (3, 10, 99.99, 'ÜBER'), (4, 3, 1, 'MiXeD');

CREATE TABLE dropped_col (id integer PRIMARY KEY, gone text, kept text);
INSERT INTO dropped_col VALUES (1, 'x', 'one'), (2, 'y', 'two');
ALTER TABLE dropped_col DROP COLUMN gone;

CREATE UNIQUE INDEX generated_cols_name_lc_uniq ON generated_cols (name_lc) WHERE name_lc IS NOT NULL;
CREATE INDEX "Weird ""Table""_expr_idx" ON "Weird ""Table""" (lower("Mixed Case Col"));

CREATE TABLE bookings (
    id     integer PRIMARY KEY,
    room   integer NOT NULL,
    during tstzrange NOT NULL,
    EXCLUDE USING gist (room WITH =, during WITH &&)
);
INSERT INTO bookings VALUES
(1, 101, '[2024-01-01 14:00+00,2024-01-03 11:00+00)'),
(2, 101, '[2024-01-03 11:00+00,2024-01-05 11:00+00)'),
(3, 102, '[2024-01-01 14:00+00,2024-01-03 11:00+00)');

-- ---------------------------------------------------------------------------------------------------------
-- Large values (TOAST) and a large object (a fixed OID keeps dumps of two loads identical)
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE big_values (id integer PRIMARY KEY, big_text text, big_bytea bytea);
INSERT INTO big_values
SELECT 1, string_agg(md5(i::text), E'\n'), decode(string_agg(md5(i::text), ''), 'hex')
FROM generate_series(1, 30000) AS s(i);

CREATE TABLE documents (id integer PRIMARY KEY, title text, content oid);
INSERT INTO documents VALUES
(1, 'blob with NUL bytes', lo_from_bytea(424242, '\x00010203ff00'::bytea || convert_to('large object 🐘', 'UTF8')));
DO $$
BEGIN
    EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT content FROM documents WHERE id = 1),
                   'a large object');
END
$$;

-- ---------------------------------------------------------------------------------------------------------
-- Functions, triggers, views, a materialized view, row level security, grants
-- ---------------------------------------------------------------------------------------------------------
CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tbl      text NOT NULL,
    op       text NOT NULL,
    row_data jsonb
);

CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- fires after restore only if a restore creates triggers before loading data (it must not)
    INSERT INTO audit_log (tbl, op, row_data) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION log_change() IS 'audits writes to accounts';
CREATE TRIGGER accounts_audit AFTER INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION log_change();

CREATE FUNCTION "Weird ""Func"""(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$;

CREATE VIEW account_summary AS
    SELECT owner, balance, "Weird ""Func"""(id) AS doubled_id FROM accounts;
CREATE VIEW positive_accounts AS
    SELECT * FROM accounts WHERE balance > 0 WITH CHECK OPTION;
CREATE MATERIALIZED VIEW daily_totals AS
    SELECT created::date AS day, count(*) AS n, sum(amount) AS total
    FROM many_rows GROUP BY 1;
CREATE UNIQUE INDEX daily_totals_day ON daily_totals (day);
CREATE MATERIALIZED VIEW never_populated AS SELECT 1 AS one WITH NO DATA;
COMMENT ON MATERIALIZED VIEW daily_totals IS 'refreshed by the restore';

CREATE TABLE secured (id integer PRIMARY KEY, owner_name text NOT NULL, secret text);
INSERT INTO secured VALUES (1, 'alice', 's1'), (2, 'bob', 's2');
ALTER TABLE secured ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON secured USING (owner_name = current_user);

GRANT SELECT ON account_summary TO PUBLIC;
REVOKE ALL ON secured FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------------------
-- What real schemas hold besides: rules, large objects with privileges and comments, a publication, more
-- policies, column privileges, default privileges, statistics, replica identity, a clustered index, functions
-- whose bodies hold text a naive reader takes for COPY data or psql meta-commands, and a SQL-standard body
-- (BEGIN ATOMIC: semicolons inside one statement). Privileges go to PUBLIC only: no roles are created.
-- ---------------------------------------------------------------------------------------------------------
CREATE VIEW "konto übersicht" AS SELECT id, owner FROM accounts;
CREATE RULE "konto einfügen" AS ON INSERT TO "konto übersicht"
    DO INSTEAD INSERT INTO accounts (owner) VALUES (NEW.owner) RETURNING id, owner;
CREATE RULE accounts_keep AS ON DELETE TO accounts WHERE OLD.balance > 0 DO INSTEAD NOTHING;
COMMENT ON RULE accounts_keep ON accounts IS 'accounts with money are never deleted';

GRANT SELECT ON LARGE OBJECT 424242 TO PUBLIC;
DO $$ BEGIN PERFORM lo_from_bytea(424243, ''::bytea); END $$;                    -- an empty large object
GRANT SELECT, UPDATE ON LARGE OBJECT 424243 TO PUBLIC;
COMMENT ON LARGE OBJECT 424243 IS 'empty, commented: ünï 🐘';

CREATE PUBLICATION "publication ünï" FOR TABLE accounts, inventory."produits_données" WITH (publish = 'insert, update');
CREATE PUBLICATION all_inventory FOR TABLES IN SCHEMA inventory;

ALTER TABLE secured FORCE ROW LEVEL SECURITY;
CREATE POLICY "écrire les siens" ON secured AS RESTRICTIVE FOR UPDATE
    USING (owner_name = current_user) WITH CHECK (secret IS NOT NULL);
GRANT SELECT (id, owner_name), UPDATE (secret) ON secured TO PUBLIC;
GRANT INSERT ("Mixed Case Col", "名前") ON "Weird ""Table""" TO PUBLIC;

CREATE STATISTICS many_rows_stats (dependencies, ndistinct) ON label, amount FROM many_rows;
ALTER TABLE dropped_col REPLICA IDENTITY FULL;
ALTER TABLE many_rows CLUSTER ON many_rows_created_idx;

CREATE FUNCTION looks_like_a_dump() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
    -- Each line below is inside a dollar quote: text, not a COPY block, not a meta-command.
    RETURN $inner$
COPY public.accounts (id, owner, balance) FROM stdin;
99	mallory	1000000
\.
\connect postgres
\! id > /tmp/dbkeeper-pwned
-- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: -
$inner$;
END
$body$;
COMMENT ON FUNCTION looks_like_a_dump() IS E'COPY t FROM stdin;\n\\.\n\\connect other';

CREATE FUNCTION atomic_total(p integer) RETURNS numeric LANGUAGE sql
BEGIN ATOMIC
    SELECT sum(balance) FROM accounts WHERE id <> p;
    SELECT 1;
END;

ALTER DEFAULT PRIVILEGES IN SCHEMA inventory GRANT SELECT ON TABLES TO PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
