"""The hard-cases data set (tests/data/hard_cases.sql) and the facts a test may check it against."""

from __future__ import annotations

from pathlib import Path

from pg import Cluster

HARD_CASES_SQL = Path(__file__).resolve().parent / "data" / "hard_cases.sql"

# (schema, table) -> rows, for every table that pg_dump writes a COPY block for, names unquoted.
# Not here: the partitioned parent public.measurements (its rows are in its partitions) and materialized
# views (restored by REFRESH). public.vehicles counts only its own rows: cars inherits from it.
HARD_CASES_ROW_COUNTS: dict[tuple[str, str], int] = {
    ("inventory", "produits_données"): 3,
    ("public", 'Weird "Table"'): 4,
    ("public", "accounts"): 2,
    ("public", "all_types"): 7,
    ("public", "audit_log"): 0,
    ("public", "big_values"): 1,
    ("public", "bookings"): 3,
    ("public", "cars"): 2,
    ("public", "cycle_a"): 3,
    ("public", "cycle_b"): 3,
    ("public", "documents"): 1,
    ("public", "dropped_col"): 2,
    ("public", "employees"): 5,
    ("public", "empty_table"): 0,
    ("public", "generated_cols"): 4,
    ("public", "identity_always"): 3,
    ("public", "identity_default"): 3,
    ("public", "many_rows"): 5000,
    ("public", "measurements_2024"): 3,
    ("public", "measurements_2025"): 2,
    ("public", "measurements_default"): 1,
    ("public", "secured"): 2,
    ("public", "vehicles"): 1,
}

_ROW_COUNTS_SQL = """
SELECT n.nspname || '|' || c.relname || '|' ||
       (xpath('/row/n/text()',
              query_to_xml(format('SELECT count(*) AS n FROM ONLY %I.%I', n.nspname, c.relname),
                           false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1
"""


def row_counts(cluster: Cluster, db: str) -> dict[tuple[str, str], int]:
    """Exact rows of every ordinary table in ``db`` (inheritance children not counted in their parent)."""
    counts: dict[tuple[str, str], int] = {}
    for line in cluster.psql(_ROW_COUNTS_SQL, db=db).splitlines():
        schema, table, rows = line.rsplit("|", 2)  # our names hold no '|'
        counts[(schema, table)] = int(rows)
    return counts
