"""A PostgreSQL source table as `cdc schema` and `cdc assess` need it: the
stream's schema (`cdc.postgres.catalog`) plus what only the catalog knows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg

from cdc.ddl.model import ForeignKey, Generated, Index, TableDef
from cdc.postgres.catalog import PgTable, table_schema
from cdc.postgres.types import TypeRegistry

_COLUMNS = """
SELECT a.attname, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       format_type(a.atttypid, a.atttypmod),
       CASE WHEN t.typtype = 'e' THEN ARRAY(
           SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
           ORDER BY e.enumsortorder) END
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# every index but the primary key; key columns only (not INCLUDE); an
# expression has attnum 0 and so no name
_INDEXES = """
SELECT i.relname, x.indisunique, x.indpred IS NOT NULL OR x.indexprs IS NOT NULL,
       ARRAY(SELECT a.attname::text
             FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             WHERE k.ord <= x.indnkeyatts ORDER BY k.ord),
       pg_get_indexdef(x.indexrelid),
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.contype = 'u')
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s AND NOT x.indisprimary
ORDER BY i.relname
"""
_FOREIGN_KEYS = """
SELECT c.conname,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
       rn.nspname, rc.relname,
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o),
       c.confdeltype, c.confupdtype
FROM pg_constraint c
JOIN pg_class rc ON rc.oid = c.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE c.conrelid = %s AND c.contype = 'f'
ORDER BY c.conname
"""
_ACTIONS = {"a": "", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def table_def(conn: psycopg.Connection[Any], registry: TypeRegistry, table: PgTable) -> TableDef:
    schema = table_schema(
        registry, table.schema, table.name, table.columns, table.key, table.not_null,
        table.defaults, keyless=table.keyless,
    )  # fmt: skip
    defaults: dict[str, str] = {}
    identity: set[str] = set()
    generated: list[Generated] = []
    labels: dict[str, list[str]] = {}
    for name, default, ident, gen, type_name, enum in conn.execute(_COLUMNS, (table.oid,)):
        if gen:
            generated.append(Generated(name, type_name, default or ""))
        elif ident or (default or "").startswith("nextval("):
            identity.add(name)  # serial or identity: the target's own sequence
        elif default is not None:
            defaults[name] = default
        if enum is not None:
            labels[name] = list(enum)
    # the enum labels let the target create the type (not part of the
    # stream's schema: that would change its fingerprint)
    columns = tuple(
        replace(c, extra={**c.extra, "labels": labels[c.name]}) if c.name in labels else c
        for c in schema.columns
    )
    uniques: list[Index] = []
    indexes: list[Index] = []
    for name, unique, expression, columns_of, definition, constraint in conn.execute(
        _INDEXES, (table.oid,)
    ):
        index = Index(name, () if expression else tuple(columns_of), unique)
        if expression:
            indexes.append(Index(name, (), unique, definition))
        elif unique and constraint:
            uniques.append(index)
        else:
            indexes.append(index)
    foreign_keys = tuple(
        ForeignKey(
            name, tuple(cols), ref_schema, ref_table, tuple(ref_cols), _ACTIONS[d], _ACTIONS[u]
        )
        for name, cols, ref_schema, ref_table, ref_cols, d, u in conn.execute(
            _FOREIGN_KEYS, (table.oid,)
        )
    )
    return TableDef(
        schema=replace(schema, columns=columns),
        primary_key=table.primary_key,
        defaults=defaults,
        identity=frozenset(identity),
        generated=tuple(generated),
        uniques=tuple(uniques),
        indexes=tuple(indexes),
        foreign_keys=foreign_keys,
    )
