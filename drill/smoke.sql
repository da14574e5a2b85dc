-- Smoke test for `dbkeeper drill --smoke drill/smoke.sql`, written for the casino-like example app
-- (examples/test_app.sql: users and game_sessions); works on its PostgreSQL and SQLite versions alike.
-- Each statement runs in the drill's scratch database and must succeed; a '-- expect:' comment above one
-- is checked against the first value of its first row (docs/DRILLS.md).

-- The players are there.
-- expect: users >= 1000
SELECT count(*) FROM users;

-- So are their sessions.
-- expect: sessions >= 1000
SELECT count(*) FROM game_sessions;

-- No session points at a missing player: the foreign keys came back whole.
-- expect: orphans = 0
SELECT count(*) FROM game_sessions s LEFT JOIN users u ON u.id = s.user_id WHERE u.id IS NULL;

-- Emails are still unique.
-- expect: duplicates = 0
SELECT count(*) - count(DISTINCT email) FROM users;

-- Scores are in range.
-- expect: bad_scores = 0
SELECT count(*) FROM game_sessions WHERE score < 0 OR score >= 1000;
