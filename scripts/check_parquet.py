#!/usr/bin/env python3
"""Checks a pgsalvage Parquet file with independent readers: pyarrow and, if installed, DuckDB.

Usage:
    python3 scripts/check_parquet.py FILE EXPECTED.json

EXPECTED.json is what the Rust test `every_kind_reads_back_exactly` writes beside a copy of its
file when PGSALVAGE_PARQUET_EXPORT=DIR is set:

    {"rows": N, "columns": [{"name", "pg_type", "duckdb_type", "parquet_logical", "values"}]}

or tests/fixtures/pg_types.expected.json, the values PostgreSQL itself computed for the fixture
(fixtures/parquet/pg_fixture.sql), beside the file the Rust test `real_server_values_read_back_...`
exports (pg_types.parquet). "duckdb_type" and "parquet_logical" are optional.

Values are in one normal form both readers are brought to: floats as the hex of their bits
(so NaN, -0 and infinities compare exactly), decimals as exact text with their scale, bytes and
UUIDs as hex, dates as days and times/timestamps as microseconds since 1970 (the integers, so
PostgreSQL's ±infinity sentinels compare too), structs as objects and lists as arrays.

Checks, per column:
- pyarrow: every value; the field metadata `pg.type`; the Parquet logical type (UUID, JSON,
  DECIMAL, TIMESTAMP(UTC) for timestamptz, ...);
- DuckDB: the type DESCRIBE reports (UUID, JSON, DECIMAL(12,2), TIMESTAMP WITH TIME ZONE, ...)
  and every value; DuckDB must read the ±MAX sentinels as ±infinity.

Exits 0 when every check passes, 1 otherwise; prints one line per failure.
"""

import json
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq

I64_MAX = 2**63 - 1
I32_MAX = 2**31 - 1
FAILURES = []


def fail(message):
    FAILURES.append(message)
    print("FAIL", message)


# ---- pyarrow ----------------------------------------------------------------------------------


def norm_arrow(arr):
    """A pyarrow Array as a list of normal-form values."""
    t = arr.type
    if isinstance(t, pa.BaseExtensionType):
        return norm_arrow(arr.storage)
    if pa.types.is_float32(t):
        return [None if v is None else f"{v:08x}" for v in arr.view(pa.uint32()).to_pylist()]
    if pa.types.is_float64(t):
        return [None if v is None else f"{v:016x}" for v in arr.view(pa.uint64()).to_pylist()]
    if pa.types.is_decimal(t):
        return [None if v is None else format(v, "f") for v in arr.to_pylist()]
    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t):
        return [None if v is None else v.hex() for v in arr.to_pylist()]
    if pa.types.is_date32(t):
        return arr.view(pa.int32()).to_pylist()
    if pa.types.is_timestamp(t) or pa.types.is_time64(t):
        return arr.view(pa.int64()).to_pylist()
    if pa.types.is_struct(t):
        children = {t.field(i).name: norm_arrow(arr.field(i)) for i in range(t.num_fields)}
        return [
            None if not arr[i].is_valid else {name: vals[i] for name, vals in children.items()}
            for i in range(len(arr))
        ]
    if pa.types.is_list(t):
        return [norm_arrow(arr[i].values) if arr[i].is_valid else None for i in range(len(arr))]
    return arr.to_pylist()


def logical_summary(column):
    """The Parquet logical type of a leaf column, as the expectations name it."""
    logical = column.logical_type
    kind = logical.type
    if kind in ("TIMESTAMP", "TIME"):
        utc = json.loads(logical.to_json()).get("isAdjustedToUTC")
        return f"{kind}({'UTC' if utc else 'LOCAL'})"
    return "" if kind == "NONE" else kind


def check_pyarrow(path, expected):
    table = pq.read_table(path)
    parquet_schema = pq.ParquetFile(path).schema
    leaves = {parquet_schema.column(i).path: parquet_schema.column(i) for i in range(len(parquet_schema))}
    if table.num_rows != expected["rows"]:
        fail(f"pyarrow: {table.num_rows} rows, expected {expected['rows']}")
    names = [c["name"] for c in expected["columns"]]
    if table.column_names != names:
        fail(f"pyarrow: columns {table.column_names}, expected {names}")
        return
    for col in expected["columns"]:
        name = col["name"]
        field = table.schema.field(name)
        pg_type = (field.metadata or {}).get(b"pg.type", b"").decode()
        if pg_type != col["pg_type"]:
            fail(f"pyarrow {name}: pg.type {pg_type!r}, expected {col['pg_type']!r}")
        if name in leaves and "parquet_logical" in col:
            got = logical_summary(leaves[name])
            if got != col["parquet_logical"]:
                fail(f"parquet {name}: logical type {got!r}, expected {col['parquet_logical']!r}")
        values = norm_arrow(table.column(name).combine_chunks())
        if values != col["values"]:
            fail(f"pyarrow {name}: {values!r} != expected {col['values']!r}")
    print(f"pyarrow {pa.__version__}: {len(names)} columns x {table.num_rows} rows checked")
    extension = {n: str(table.schema.field(n).type) for n in ("u", "js", "jb") if n in names}
    print(f"pyarrow extension types: {extension}")


# ---- DuckDB -----------------------------------------------------------------------------------


def split_top(text):
    """Splits at commas outside parentheses and double quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "(":
            depth += 1
        elif not quoted and c == ")":
            depth -= 1
        elif not quoted and depth == 0 and c == ",":
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def struct_fields(duck_type):
    """[(name, type)] of a DuckDB STRUCT(...) type."""
    fields = []
    for part in split_top(duck_type[len("STRUCT(") : -1]):
        if part.startswith('"'):
            end = part.index('"', 1)
            fields.append((part[1:end], part[end + 1 :].strip()))
        else:
            name, _, rest = part.partition(" ")
            fields.append((name, rest.strip()))
    return fields


def duck_expr(expr, duck_type, depth=0):
    """A DuckDB expression turning temporal values into the normal form's integers."""
    if duck_type.endswith("[]"):
        var = f"x{depth}"
        return f"list_transform({expr}, lambda {var}: {duck_expr(var, duck_type[:-2], depth + 1)})"
    if duck_type.startswith("STRUCT("):
        packed = ", ".join(
            f'"{name}" := {duck_expr(f"({expr}).{quote(name)}", t, depth + 1)}'
            for name, t in struct_fields(duck_type)
        )
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE struct_pack({packed}) END"
    if duck_type == "DATE":
        return infinite(expr, duck_type, I32_MAX, f"({expr} - DATE '1970-01-01')")
    if duck_type in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
        return infinite(expr, duck_type, I64_MAX, f"epoch_us({expr})")
    if duck_type == "TIME":
        return f"epoch_us({expr})"
    return expr


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def infinite(expr, duck_type, sentinel, finite):
    """DuckDB's ±infinity as the sentinels the file stores, else the finite integer."""
    return (
        f"CASE WHEN {expr} = 'infinity'::{duck_type} THEN {sentinel} "
        f"WHEN {expr} = '-infinity'::{duck_type} THEN {-sentinel} ELSE {finite} END"
    )


def norm_py(value, duck_type):
    """A DuckDB Python value (after duck_expr) in the normal form."""
    if value is None:
        return None
    if duck_type.endswith("[]"):
        return [norm_py(v, duck_type[:-2]) for v in value]
    if duck_type.startswith("STRUCT("):
        return {name: norm_py(value[name], t) for name, t in struct_fields(duck_type)}
    if duck_type == "FLOAT":
        return struct.pack(">f", value).hex()
    if duck_type == "DOUBLE":
        return struct.pack(">d", value).hex()
    if duck_type.startswith("DECIMAL"):
        return format(value, "f")
    if duck_type == "BLOB":
        return bytes(value).hex()
    if duck_type == "UUID":
        return value.hex
    return value


def check_duckdb(path, expected):
    try:
        import duckdb
    except ImportError:
        print("duckdb: not installed, skipped (pip install duckdb)")
        return
    con = duckdb.connect()
    source = f"read_parquet('{path}')"
    types = {row[0]: row[1] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    for col in expected["columns"]:
        name = col["name"]
        duck_type = col.get("duckdb_type", types.get(name, ""))
        if types.get(name) != duck_type:
            fail(f"duckdb {name}: type {types.get(name)!r}, expected {duck_type!r}")
            continue
        query = f"SELECT {duck_expr(quote(name), duck_type)} FROM {source}"
        try:
            rows = con.sql(query).fetchall()
        except Exception as error:  # a reader that cannot read a value fails the check
            fail(f"duckdb {name}: {str(error).splitlines()[0]}")
            continue
        values = [norm_py(row[0], duck_type) for row in rows]
        if values != col["values"]:
            fail(f"duckdb {name}: {values!r} != expected {col['values']!r}")
    print(f"duckdb {duckdb.__version__}: {len(expected['columns'])} columns checked")


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    path, expected_path = argv[1], argv[2]
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    check_pyarrow(path, expected)
    check_duckdb(path, expected)
    if FAILURES:
        print(f"{len(FAILURES)} checks failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
