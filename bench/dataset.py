"""A realistic benchmark database: text that compresses like real application data, not pgbench's blanks.

Customers, orders and support tickets with names, e-mail addresses, addresses, free text drawn from a word
list with a Zipf-like skew, JSON attributes, timestamps and numerics, plus a few indexes. Deterministic for a
seed. Streams COPY data into psql, so memory stays flat whatever the size.

    python bench/dataset.py postgresql://postgres@127.0.0.1:5432/bench --mb 500
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "order",
    "invoice",
    "payment",
    "shipping",
    "delivery",
    "customer",
    "account",
    "refund",
    "warehouse",
    "product",
    "quantity",
    "discount",
    "address",
    "premium",
    "standard",
    "express",
    "tracking",
    "package",
    "returned",
    "damaged",
    "replacement",
    "support",
    "ticket",
    "priority",
    "resolved",
    "pending",
    "escalated",
    "subscription",
    "monthly",
    "annual",
    "renewal",
    "cancel",
    "upgrade",
    "downgrade",
    "billing",
    "credit",
    "card",
]
FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Emma",
    "Felix",
    "Greta",
    "Hugo",
    "Ida",
    "Jonas",
    "Klara",
    "Lukas",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Rosa",
    "Sam",
    "Tina",
    "Ugo",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
]
CITIES = [
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Frankfurt",
    "Stuttgart",
    "Düsseldorf",
    "Leipzig",
    "Dortmund",
    "Essen",
    "Bremen",
    "Dresden",
]
STATUS = ["new", "paid", "shipped", "delivered", "returned", "cancelled"]

SCHEMA = """
DROP TABLE IF EXISTS tickets, orders, customers;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, city text,
                        street text, created_at timestamptz NOT NULL, attributes jsonb);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                     amount numeric(12,2) NOT NULL, items int NOT NULL, placed_at timestamptz NOT NULL, note text);
CREATE TABLE tickets (id bigint PRIMARY KEY, order_id bigint, subject text NOT NULL, body text NOT NULL,
                      priority smallint NOT NULL, opened_at timestamptz NOT NULL);
"""
INDEXES = """
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers(id);
ALTER TABLE tickets ADD FOREIGN KEY (order_id) REFERENCES orders(id);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_placed ON orders (placed_at);
CREATE INDEX tickets_order ON tickets (order_id);
CREATE INDEX customers_email ON customers (lower(email));
"""


def _text(rng: random.Random, n: int) -> str:
    return " ".join(
        WORDS[min(int(rng.paretovariate(1.1)) - 1, len(WORDS) - 1) if rng.random() < 0.7 else rng.randrange(len(WORDS))]
        for _ in range(n)
    )


def _ts(rng: random.Random) -> str:
    month, day, hour, minute, second = (rng.randint(*r) for r in ((1, 11), (1, 28), (0, 23), (0, 59), (0, 59)))
    return f"2026-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}+00"


def rows(seed: int, mb: int) -> Iterator[tuple[str, list[str]]]:
    """(table, COPY text lines) batches; sizes scale so the database is about ``mb`` MB."""
    rng = random.Random(seed)
    customers = max(1000, mb * 460)
    orders = customers * 5
    tickets = customers * 2
    batch: list[str] = []
    for i in range(1, customers + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        attrs = json.dumps(
            {
                "tier": rng.choice(["free", "pro", "team"]),
                "newsletter": rng.random() < 0.3,
                "tags": [rng.choice(WORDS) for _ in range(rng.randint(0, 4))],
            },
            ensure_ascii=False,
        )
        batch.append(
            f"{i}\t{first} {last}\t{first.lower()}.{last.lower()}{i}@example.com\t{rng.choice(CITIES)}\t"
            f"{rng.choice(LAST)}straße {rng.randint(1, 200)}\t{_ts(rng)}\t{attrs}"
        )
        if len(batch) >= 5000:
            yield "customers", batch
            batch = []
    yield "customers", batch
    batch = []
    for i in range(1, orders + 1):
        note = _text(rng, rng.randint(0, 25)) if rng.random() < 0.6 else "\\N"
        batch.append(
            f"{i}\t{rng.randint(1, customers)}\t{rng.choice(STATUS)}\t{rng.randint(100, 99999) / 100:.2f}\t"
            f"{rng.randint(1, 9)}\t{_ts(rng)}\t{note}"
        )
        if len(batch) >= 5000:
            yield "orders", batch
            batch = []
    yield "orders", batch
    batch = []
    for i in range(1, tickets + 1):
        batch.append(
            f"{i}\t{rng.randint(1, orders)}\t{_text(rng, 6)}\t{_text(rng, rng.randint(40, 160))}\t"
            f"{rng.randint(1, 4)}\t{_ts(rng)}"
        )
        if len(batch) >= 2000:
            yield "tickets", batch
            batch = []
    yield "tickets", batch


def build(url: str, mb: int, seed: int = 1, psql: str | None = None, tenants: int = 1) -> None:
    """Build the database; with ``tenants`` > 1, one schema per tenant (t1, t2, ...), each holding its own
    customers, orders and tickets with their keys and indexes: many tables and indexes of the same total size."""
    parts = urlsplit(url)
    db = parts.path.lstrip("/")
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "postgres",
    }
    env.pop("PGDATABASE", None)
    psql = psql or os.environ.get("PSQL", "psql")
    subprocess.run([psql, "-X", "-q", "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}"'], env=env, check=True)
    subprocess.run([psql, "-X", "-q", "-d", "postgres", "-c", f'CREATE DATABASE "{db}"'], env=env, check=True)
    proc = subprocess.Popen([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db], stdin=subprocess.PIPE, env=env)
    assert proc.stdin is not None
    for tenant in range(1, tenants + 1):
        if tenants > 1:
            proc.stdin.write(f"CREATE SCHEMA t{tenant}; SET search_path = t{tenant};\n".encode())
        proc.stdin.write(SCHEMA.encode())
        current = None
        for table, lines in rows(seed + tenant - 1, max(1, mb // tenants)):
            if table != current:
                if current:
                    proc.stdin.write(b"\\.\n")
                proc.stdin.write(f"COPY {table} FROM stdin;\n".encode())
                current = table
            if lines:
                proc.stdin.write(("\n".join(lines) + "\n").encode())
        proc.stdin.write(b"\\.\n" + INDEXES.encode())
    proc.stdin.write(b"ANALYZE;\n")
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("building the benchmark database failed")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tenants", type=int, default=1, help="one schema per tenant: many tables and indexes")
    a = ap.parse_args()
    build(a.url, a.mb, a.seed, tenants=a.tenants)
