-- The embedded default: a small app database (SQLite) that `scripts/demo` backs up and restores.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS game_sessions (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    score INTEGER NOT NULL,
    played_at TEXT NOT NULL DEFAULT (datetime('now'))
);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
INSERT OR IGNORE INTO users (id, email, name) SELECT i, 'user' || i || '@example.com', 'User ' || i FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)
INSERT OR IGNORE INTO game_sessions (id, user_id, score) SELECT i, (i % 3000) + 1, (i * 37) % 1000 FROM n;
