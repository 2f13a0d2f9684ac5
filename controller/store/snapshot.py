"""The schema as one readable, deterministic text, read from PostgreSQL's catalogs: tables with
their columns, constraints and storage options, indexes, and functions.

`schema.sql` next to this module is that text for a database the migrations built from
nothing; a test rebuilds it and compares, so a migration that does not produce what the file
says (or a file edited by hand) is caught. Rewrite the file with
`P38_WRITE_SCHEMA=1 pytest tests/store/test_schema.py`. Reads only.
"""

from __future__ import annotations

import asyncpg

HEADER = """\
-- The schema the migrations build, read back from PostgreSQL's catalogs
-- (controller/store/snapshot.py). Not applied by anything: the migrations are the source;
-- this file shows the result in one place and a test keeps it true.
"""

_TABLES = """
SELECT c.oid, c.relname, coalesce(array_to_string(c.reloptions, ', '), '') AS options
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.relname
"""
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid) AS default
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE conrelid = $1 ORDER BY conname
"""
_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
ORDER BY tablename, indexname
"""
_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       pg_get_functiondef(p.oid) AS definition
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' ORDER BY p.proname, args
"""


async def dump(conn: asyncpg.Connection) -> str:
    """The public schema of the database `conn` is connected to, as text."""
    out = [HEADER]
    for table in await conn.fetch(_TABLES):
        columns = []
        for col in await conn.fetch(_COLUMNS, table["oid"]):
            line = f"    {col['attname']} {col['type']}"
            if col["attnotnull"]:
                line += " NOT NULL"
            if col["default"] is not None:
                line += f" DEFAULT {col['default']}"
            columns.append(line)
        out.append(f"CREATE TABLE {table['relname']} (\n" + ",\n".join(columns) + "\n);")
        for con in await conn.fetch(_CONSTRAINTS, table["oid"]):
            out.append(f"ALTER TABLE {table['relname']} ADD CONSTRAINT {con['conname']} "
                       f"{con['definition']};")
        if table["options"]:
            out.append(f"ALTER TABLE {table['relname']} SET ({table['options']});")
        out.append("")
    for index in await conn.fetch(_INDEXES):
        out.append(f"{index['indexdef']};")
    out.append("")
    for function in await conn.fetch(_FUNCTIONS):
        out.append(function["definition"].strip() + ";\n")
    return "\n".join(out).rstrip() + "\n"
