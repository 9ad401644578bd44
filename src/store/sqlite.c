/* SQLite backend of the store: WAL journal, synchronous=NORMAL (durable at checkpoints,
 * never corrupt), numbered migrations, prepared statements kept for the connection's
 * life. One connection per store thread: the writer's, and a read-only one for the
 * reader, which WAL lets read while the writer writes (or fails to). */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store_int.h"

#define BUSY_TIMEOUT_MS 1000  /* a failed write is retried with backoff: say so soon */
#define ACCESS_ROWS_MAX 10000 /* users or tokens listed at once */
#define BUSY_SLEEP_MS   5     /* a reader waiting for a lock looks again this often */
#define PROGRESS_STEPS  1000  /* virtual machine steps between deadline checks */
#define MATCH_MAX       (CS_CALLS_TEXT_MAX + 3 * CS_CALLS_WORDS_MAX + 1) /* an FTS5 expression */

/* Migrations run in order, each in its own transaction; never edit one that shipped. */
static const char *const migrations[] = {
    /* 1: calls, streams, events */
    "CREATE TABLE calls ("
    " sid TEXT PRIMARY KEY,"
    " account_sid TEXT, from_number TEXT, to_number TEXT, direction TEXT, status TEXT,"
    " params TEXT, summary TEXT, recording TEXT, recording_ms INTEGER,"
    " created_at INTEGER NOT NULL, started_at INTEGER, ended_at INTEGER,"
    " updated_at INTEGER NOT NULL);"
    "CREATE INDEX calls_by_created ON calls(created_at DESC, sid DESC);"
    "CREATE TABLE streams ("
    " sid TEXT PRIMARY KEY, call_sid TEXT NOT NULL, tracks TEXT, mode TEXT,"
    " started_at INTEGER, ended_at INTEGER, end_reason TEXT, stats TEXT);"
    "CREATE INDEX streams_by_call ON streams(call_sid, started_at);"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, call_sid TEXT NOT NULL, stream_sid TEXT,"
    " at INTEGER NOT NULL, type TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX events_by_call ON events(call_sid, id);",
    /* 2: who may use the pages and the API */
    "CREATE TABLE users ("
    " name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE sessions ("
    " token_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
    "CREATE INDEX sessions_by_expiry ON sessions(expires_at);"
    "CREATE TABLE api_tokens ("
    " name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);",
    /* 3: transcripts */
    "ALTER TABLE calls ADD COLUMN transcription TEXT;"
    "CREATE TABLE transcripts ("
    " call_sid TEXT NOT NULL, stream_sid TEXT NOT NULL, speaker TEXT NOT NULL,"
    " seq INTEGER NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,"
    " text TEXT NOT NULL, confidence INTEGER, at INTEGER NOT NULL,"
    " PRIMARY KEY (call_sid, stream_sid, speaker, seq));"
    "CREATE INDEX transcripts_by_time ON transcripts(call_sid, start_ms);",
    /* 4: a session holds only while its user exists with the password it was opened
     * with (password_at: when the password was set, one more at least each time); those of
     * users deleted before go now */
    "ALTER TABLE users ADD COLUMN password_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN password_at INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX sessions_by_user ON sessions(user_name);"
    "DELETE FROM sessions WHERE user_name NOT IN (SELECT name FROM users);",
    CS_MIGRATION_5,
    CS_MIGRATION_6,
    CS_MIGRATION_7,
    CS_MIGRATION_8,
    CS_MIGRATION_9,
    /* 10: transcript search: an FTS5 index over transcripts' lines (their own rowids, kept
     * by triggers: a refined final's text replaces the fast one's), of both speakers, with
     * the call's sid indexed too so a call's lines are found without a scan. Nothing
     * here VACUUMs (which may renumber those rowids); if one does, 'rebuild' the index. */
    "CREATE VIRTUAL TABLE transcripts_fts USING fts5(text, call_sid, speaker UNINDEXED,"
    " content='transcripts', tokenize='porter unicode61 remove_diacritics 2');"
    "INSERT INTO transcripts_fts(transcripts_fts) VALUES ('rebuild');"
    "CREATE TRIGGER transcripts_fts_insert AFTER INSERT ON transcripts BEGIN"
    " INSERT INTO transcripts_fts(rowid, text, call_sid, speaker)"
    " VALUES (new.rowid, new.text, new.call_sid, new.speaker); END;"
    "CREATE TRIGGER transcripts_fts_delete AFTER DELETE ON transcripts BEGIN"
    " INSERT INTO transcripts_fts(transcripts_fts, rowid, text, call_sid, speaker)"
    " VALUES ('delete', old.rowid, old.text, old.call_sid, old.speaker); END;"
    "CREATE TRIGGER transcripts_fts_update AFTER UPDATE ON transcripts BEGIN"
    " INSERT INTO transcripts_fts(transcripts_fts, rowid, text, call_sid, speaker)"
    " VALUES ('delete', old.rowid, old.text, old.call_sid, old.speaker);"
    " INSERT INTO transcripts_fts(rowid, text, call_sid, speaker)"
    " VALUES (new.rowid, new.text, new.call_sid, new.speaker); END;",
    CS_MIGRATION_11,
    CS_MIGRATION_12,
};

/* Its own statements; then those both dialects share (fields.c): C(which), W(kind). */
enum stmt {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_CALLS_PAGE,
    S_CALLS_SEARCH,
    S_CALLS_SCAN,
    S_SEARCH_COUNT,
    S_OWN,
    S_COUNT = S_OWN + CS_SQL_COMMON + CS_REC_SEGMENT + 1
};
#define C(which) (S_OWN + (which))
#define W(kind)  (S_OWN + CS_SQL_COMMON + (kind))

/* CS_Q_CALLS: the cursor (?1, ?2), then the filter: from (?4, prefix ?5), to (?6, prefix
 * ?7), statuses (?8: ",a,b,"), created_at in [?9, ?10) */
#define CALLS_FILTER                                                                               \
    " WHERE (?1 = 0 OR created_at < ?1 OR (created_at = ?1 AND sid < ?2))"                         \
    " AND (?4 IS NULL OR from_number = ?4 OR (?5 AND substr(from_number, 1, length(?4)) = ?4))"    \
    " AND (?6 IS NULL OR to_number = ?6 OR (?7 AND substr(to_number, 1, length(?6)) = ?6))"        \
    " AND (?8 IS NULL OR instr(?8, ',' || status || ',') > 0)"                                     \
    " AND (?9 = 0 OR created_at >= ?9) AND (?10 = 0 OR created_at < ?10)"
#define SNIPPET_TOKENS "16" /* words of a search result's snippet */
/* The lines of call `sid` among those of transcripts_fts f: its sid is matched too (a
 * phrase to FTS5, then compared), so they are found without a scan. */
#define LINES_OF(sid)                                                                              \
    "f.call_sid MATCH '\"' || replace(" sid ", '\"', '\"\"') || '\"' AND f.call_sid = " sid
/* A page of the calls with a line matching ?11 (`which`), then each with its first
 * matching line's speaker and snippet: for the page only (a scalar subquery of the list
 * itself would run for every call matched, before the sort). Not the best line by rank:
 * bm25 counts every line of the words, for each call. */
#define SEARCH_PAGE(which)                                                                         \
    "WITH page AS MATERIALIZED (SELECT " CS_CALL_COLUMNS " FROM calls c" CALLS_FILTER              \
    " AND " which " ORDER BY created_at DESC, sid DESC LIMIT ?3)"                                  \
    " SELECT " CS_CALL_COLUMNS ", (SELECT f.speaker || ':' || snippet(transcripts_fts, 0,"         \
    " '" CS_SNIPPET_OPEN "', '" CS_SNIPPET_CLOSE "', '…', " SNIPPET_TOKENS ")"                     \
    " FROM transcripts_fts f WHERE f.text MATCH ?11"                                               \
    " AND " LINES_OF("p.sid") " ORDER BY f.rowid LIMIT 1)"                                         \
                              " FROM page p ORDER BY created_at DESC, sid DESC"
/* A search matching this many lines or more looks through the calls newest first, each
 * call's lines at a time (the page fills soon); fewer, the calls of those lines are
 * listed first (a word said rarely, or never, is not looked for call by call). */
#define SEARCH_SCAN_LINES 10000

static const char *const sql[S_OWN] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_CALLS_PAGE] = "SELECT " CS_CALL_COLUMNS ", NULL FROM calls" CALLS_FILTER
                     " ORDER BY created_at DESC, sid DESC LIMIT ?3",
    [S_CALLS_SEARCH] = SEARCH_PAGE("c.sid IN (SELECT call_sid FROM transcripts_fts"
                                   " WHERE text MATCH ?11)"),
    [S_CALLS_SCAN] = SEARCH_PAGE("EXISTS (SELECT 1 FROM transcripts_fts f WHERE f.text MATCH ?11"
                                 " AND " LINES_OF("c.sid") ")"),
    [S_SEARCH_COUNT] =
        "SELECT COUNT(*) FROM (SELECT 1 FROM transcripts_fts WHERE text MATCH ?1 LIMIT ?2)",
};

typedef struct db {
    sqlite3 *h;
    sqlite3_stmt *st[S_COUNT];
    uint64_t deadline_ms;         /* reader: the query's (monotonic), 0 for none */
    char err[CS_STORE_ERROR_MAX]; /* the last failure */
} db;

/* Keeps the failure's message for errmsg; the store logs it, once per burst. */
static int fail(db *d, const char *what)
{
    snprintf(d->err, sizeof d->err, "%s: %s", what, sqlite3_errmsg(d->h));
    return CS_EBACKEND;
}

static int exec(db *d, const char *text)
{
    char *msg = NULL;
    if (sqlite3_exec(d->h, text, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(d->err, sizeof d->err, "%s", msg ? msg : "failed");
        cs_error("store(sqlite): %s", d->err);
        sqlite3_free(msg);
        return CS_EBACKEND;
    }
    return 0;
}

static int migrate(db *d, cs_buf *err)
{
    if (exec(d, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)") < 0) {
        cs_buf_printf(err, "cannot create schema_migrations: %s", sqlite3_errmsg(d->h));
        return CS_EBACKEND;
    }
    sqlite3_stmt *q;
    sqlite3_prepare_v2(d->h, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &q,
                       NULL);
    int have = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
    sqlite3_finalize(q);
    int want = (int)(sizeof migrations / sizeof *migrations);
    if (have > want) {
        cs_buf_printf(err, "the database is at schema %d, newer than this build (%d)", have, want);
        return CS_EBACKEND;
    }
    for (int v = have + 1; v <= want; v++) {
        char mark[128];
        snprintf(mark, sizeof mark,
                 "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, %lld)", v,
                 (long long)cs_wall_ms());
        if (exec(d, "BEGIN") < 0 || exec(d, migrations[v - 1]) < 0 || exec(d, mark) < 0 ||
            exec(d, "COMMIT") < 0) {
            cs_buf_printf(err, "migration %d failed: %s", v, sqlite3_errmsg(d->h));
            exec(d, "ROLLBACK");
            return CS_EBACKEND;
        }
        cs_info("store(sqlite): migrated to schema %d", v);
    }
    return 0;
}

static void db_close(void *p)
{
    db *d = p;
    if (!d) return;
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(d->st[i]);
    sqlite3_close(d->h);
    free(d);
}

/* The reader waits for a lock only until its query's deadline. */
static int busy_until_deadline(void *p, int tries)
{
    (void)tries;
    db *d = p;
    if (d->deadline_ms && cs_mono_ms() >= d->deadline_ms) return 0;
    sqlite3_sleep(BUSY_SLEEP_MS);
    return 1;
}

/* ... and stops a long query there. */
static int past_deadline(void *p)
{
    db *d = p;
    return d->deadline_ms && cs_mono_ms() >= d->deadline_ms;
}

static int db_connect(db **out, const char *path, bool writer, cs_buf *err)
{
    db *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    int flags = (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) |
                SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &d->h, flags, NULL) != SQLITE_OK) {
        cs_buf_printf(err, "cannot open %s: %s", path, d->h ? sqlite3_errmsg(d->h) : "no memory");
        db_close(d);
        return CS_EBACKEND;
    }
    if (writer) {
        sqlite3_busy_timeout(d->h, BUSY_TIMEOUT_MS);
    } else {
        sqlite3_busy_handler(d->h, busy_until_deadline, d);
        sqlite3_progress_handler(d->h, PROGRESS_STEPS, past_deadline, d);
    }
    *out = d;
    return 0;
}

static int prepare(db *d, cs_buf *err)
{
    for (int i = 0; i < S_COUNT; i++) {
        const char *text = i < S_OWN ? sql[i]
                           : i < S_OWN + CS_SQL_COMMON
                               ? cs_sql_common(&cs_sql_sqlite, i - S_OWN)
                               : cs_sql_write(&cs_sql_sqlite, i - S_OWN - CS_SQL_COMMON);
        if (!text) continue; /* no record kind 0 */
        if (sqlite3_prepare_v3(d->h, text, -1, SQLITE_PREPARE_PERSISTENT, &d->st[i], NULL) !=
            SQLITE_OK) {
            cs_buf_printf(err, "cannot prepare a statement: %s", sqlite3_errmsg(d->h));
            return CS_EBACKEND;
        }
    }
    return 0;
}

/* Transcript search needs FTS5 (Debian's libsqlite3 has it): said plainly, not as a
 * failed migration. */
static int check_fts5(db *d, cs_buf *err)
{
    if (sqlite3_exec(d->h,
                     "CREATE VIRTUAL TABLE temp.fts5_check USING fts5(x);"
                     "DROP TABLE temp.fts5_check;",
                     NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    cs_buf_printf(err, "this SQLite (%s) has no FTS5, which transcript search needs: %s",
                  sqlite3_libversion(), sqlite3_errmsg(d->h));
    return CS_EBACKEND;
}

static int db_open(void **out, const char *path, cs_buf *err)
{
    db *d;
    int rc = db_connect(&d, path, true, err);
    if (rc < 0) return rc;
    if (exec(d, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") < 0) {
        cs_buf_printf(err, "cannot set up %s: %s", path, sqlite3_errmsg(d->h));
        db_close(d);
        return CS_EBACKEND;
    }
    rc = check_fts5(d, err);
    if (rc == 0) rc = migrate(d, err);
    if (rc == 0) rc = prepare(d, err);
    if (rc < 0) {
        db_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

static int db_open_read(void **out, const char *path, uint64_t deadline_ms, cs_buf *err)
{
    db *d;
    int rc = db_connect(&d, path, false, err);
    if (rc < 0) return rc;
    d->deadline_ms = deadline_ms; /* preparing reads the schema, which a writer may lock */
    rc = prepare(d, err);
    d->deadline_ms = 0;
    if (rc < 0) {
        db_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

static const char *db_errmsg(void *p)
{
    return ((db *)p)->err;
}

/* Runs a statement that returns no rows. */
static int run(db *d, enum stmt which, const char *what)
{
    sqlite3_stmt *st = d->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : fail(d, what);
}

static int db_begin(void *p)
{
    ((db *)p)->err[0] = '\0';
    return run(p, S_BEGIN, "begin");
}

static int db_commit(void *p)
{
    return run(p, S_COMMIT, "commit");
}

static void db_rollback(void *p)
{
    db *d = p;
    if (!sqlite3_get_autocommit(d->h)) run(d, S_ROLLBACK, "rollback");
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

typedef struct binding {
    sqlite3_stmt *st;
    int i; /* the last parameter bound */
} binding;

/* A new password or a deleted user ends the user's sessions, in the same transaction. */
static int end_sessions(db *d, const char *user)
{
    bind_text(d->st[C(Q_USER_SESSIONS_DEL)], 1, user);
    return run(d, C(Q_USER_SESSIONS_DEL), "ending a user's sessions");
}

static void bind_value(void *ctx, const char *text, const int64_t *num)
{
    binding *b = ctx;
    b->i++;
    if (text)
        sqlite3_bind_text(b->st, b->i, text, -1, SQLITE_STATIC);
    else if (num)
        sqlite3_bind_int64(b->st, b->i, *num);
    else
        sqlite3_bind_null(b->st, b->i);
}

static int db_write(void *p, const cs_store_rec *rec)
{
    db *d = p;
    int64_t now = cs_wall_ms();
    if (!cs_sql_write(&cs_sql_sqlite, rec->kind)) return -EINVAL;
    if (rec->kind == CS_REC_SESSION) { /* expired sessions go on the way */
        sqlite3_bind_int64(d->st[C(Q_SESSION_PURGE)], 1, now);
        int rc = run(d, C(Q_SESSION_PURGE), "purging sessions");
        if (rc < 0) return rc;
    }
    binding b = {d->st[W(rec->kind)], 0};
    cs_sql_values(rec, now, bind_value, &b);
    int rc = run(d, W(rec->kind), cs_store__layout(rec->kind)->what);
    if (rc == 0 && (rec->kind == CS_REC_USER || rec->kind == CS_REC_USER_DEL))
        rc = end_sessions(d, rec->user.name);
    return rc;
}

/* ---- reading ---- */

static bool get_column(void *ctx, int i, const char **text, int64_t *num)
{
    sqlite3_stmt *st = ctx;
    if (text)
        *text = (const char *)sqlite3_column_text(st, i);
    else
        *num = sqlite3_column_int64(st, i);
    return sqlite3_column_type(st, i) != SQLITE_NULL;
}

/* Steps `st` collecting up to `max` rows of `kind`. */
static int collect(db *d, cs_store_query *q, sqlite3_stmt *st, enum cs_row kind, size_t max,
                   void **rows, size_t *n)
{
    size_t size = cs_sql_row_size(kind);
    size_t cap = 16;
    char *arr = cs_store_alloc(q, cap * size);
    *n = 0;
    int rc = SQLITE_DONE;
    while (arr && *n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            char *bigger = cs_store_alloc(q, cap * 2 * size);
            if (!bigger) break;
            memcpy(bigger, arr, cap * size);
            arr = bigger;
            cap *= 2;
        }
        memset(arr + *n * size, 0, size);
        cs_sql_read_row(q, kind, arr + *n * size, get_column, st);
        (*n)++;
    }
    bool ok = arr && (*n == max || rc == SQLITE_DONE);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    *rows = arr;
    if (!arr) return -ENOMEM;
    return ok ? 0 : fail(d, "reading");
}

/* Whether `match` is in SEARCH_SCAN_LINES lines or more (1, 0), or a failure. */
static int search_lines(db *d, const char *match)
{
    sqlite3_stmt *st = d->st[S_SEARCH_COUNT];
    bind_text(st, 1, match);
    sqlite3_bind_int(st, 2, SEARCH_SCAN_LINES);
    int rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW ? n >= SEARCH_SCAN_LINES : fail(d, "counting a search's lines");
}

/* A page: up to `limit` rows (the statement asks for one more, to tell whether there
 * are more). */
static int collect_page(db *d, cs_store_query *q, sqlite3_stmt *st, enum cs_row kind, size_t limit,
                        void **rows, size_t *n)
{
    int rc = collect(d, q, st, kind, limit + 1, rows, n);
    if (*n > limit) {
        *n = limit;
        q->more = true;
    }
    return rc;
}

static int events_of(db *d, cs_store_query *q, int limit)
{
    sqlite3_stmt *st = d->st[C(Q_EVENTS_OF)];
    sqlite3_bind_text(st, 1, q->sid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, q->after_id);
    sqlite3_bind_int(st, 3, limit + 1);
    return collect_page(d, q, st, R_EVENT, (size_t)limit, (void **)&q->events, &q->nevents);
}

/* A search's words as an FTS5 expression: "a" "b"* */
static const cs_sql_words_form fts5_words = {'"', " ", "*"};

static int run_query(db *d, cs_store_query *q)
{
    int limit = q->limit > 0 && q->limit <= CS_STORE_PAGE_MAX ? q->limit : CS_STORE_PAGE_MAX;
    switch (q->kind) {
    case CS_Q_CALLS: {
        const cs_call_filter *f = &q->filter;
        char match[MATCH_MAX], statuses[sizeof f->statuses + CS_CALLS_STATUSES_MAX + 2];
        if (f->text[0]) cs_sql_words(f->text, &fts5_words, match, sizeof match);
        int common = f->text[0] ? search_lines(d, match) : 0;
        if (common < 0) return common;
        sqlite3_stmt *st = d->st[!f->text[0] ? S_CALLS_PAGE
                                 : common    ? S_CALLS_SCAN
                                             : S_CALLS_SEARCH];
        sqlite3_bind_int64(st, 1, q->before_at);
        sqlite3_bind_text(st, 2, q->before_sid, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, limit + 1);
        bind_text(st, 4, f->from[0] ? f->from : NULL);
        sqlite3_bind_int(st, 5, f->from_prefix);
        bind_text(st, 6, f->to[0] ? f->to : NULL);
        sqlite3_bind_int(st, 7, f->to_prefix);
        bind_text(st, 8, cs_sql_statuses(f, statuses, sizeof statuses));
        sqlite3_bind_int64(st, 9, f->since);
        sqlite3_bind_int64(st, 10, f->until);
        if (f->text[0]) bind_text(st, 11, match);
        return collect_page(d, q, st, R_CALL_MATCH, (size_t)limit, (void **)&q->calls, &q->ncalls);
    }
    case CS_Q_CALL: {
        sqlite3_stmt *st = d->st[C(Q_CALL_GET)];
        sqlite3_bind_text(st, 1, q->sid, -1, SQLITE_STATIC);
        int rc = collect(d, q, st, R_CALL, 1, (void **)&q->calls, &q->ncalls);
        if (rc < 0) return rc;
        if (q->ncalls == 0) return CS_ENOTFOUND;
        st = d->st[C(Q_STREAMS_OF)];
        sqlite3_bind_text(st, 1, q->sid, -1, SQLITE_STATIC);
        rc = collect(d, q, st, R_STREAM, CS_CALL_STREAMS_MAX, (void **)&q->streams, &q->nstreams);
        return rc < 0 ? rc : events_of(d, q, CS_STORE_EVENTS_MAX);
    }
    case CS_Q_EVENTS:
        return events_of(d, q, limit);
    case CS_Q_TRANSCRIPT: {
        sqlite3_stmt *st = d->st[C(Q_SEGMENTS_OF)];
        sqlite3_bind_text(st, 1, q->sid, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, CS_STORE_SEGMENTS_MAX + 1);
        return collect_page(d, q, st, R_SEGMENT, CS_STORE_SEGMENTS_MAX, (void **)&q->segments,
                            &q->nsegments);
    }
    case CS_Q_USERS: {
        sqlite3_stmt *st = d->st[q->key[0] ? C(Q_USER_GET) : C(Q_USERS)];
        if (q->key[0]) sqlite3_bind_text(st, 1, q->key, -1, SQLITE_STATIC);
        return collect(d, q, st, R_USER, ACCESS_ROWS_MAX, (void **)&q->users, &q->nusers);
    }
    case CS_Q_SESSION: {
        sqlite3_stmt *st = d->st[C(Q_SESSION_GET)];
        sqlite3_bind_text(st, 1, q->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, cs_wall_ms());
        return collect(d, q, st, R_SESSION, 1, (void **)&q->sessions, &q->nsessions);
    }
    case CS_Q_TOKENS: {
        sqlite3_stmt *st = d->st[q->key[0] ? C(Q_TOKEN_GET) : C(Q_TOKENS)];
        if (q->key[0]) sqlite3_bind_text(st, 1, q->key, -1, SQLITE_STATIC);
        return collect(d, q, st, R_TOKEN, ACCESS_ROWS_MAX, (void **)&q->tokens, &q->ntokens);
    }
    case CS_Q_UNFINISHED: {
        sqlite3_stmt *st = d->st[C(Q_UNFINISHED)];
        sqlite3_bind_text(st, 1, q->key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, limit + 1);
        bind_text(st, 3, q->node[0] ? q->node : NULL);
        int rc = collect_page(d, q, st, R_CALL_LAST, (size_t)limit, (void **)&q->calls, &q->ncalls);
        if (rc < 0) return rc;
        /* Streams of calls past this page wait for the next one. */
        size_t max = (size_t)limit * CS_CALL_STREAMS_MAX;
        st = d->st[C(Q_UNFINISHED_STREAMS)];
        sqlite3_bind_text(st, 1, q->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)max);
        bind_text(st, 3, q->node[0] ? q->node : NULL);
        return collect(d, q, st, R_STREAM, max, (void **)&q->streams, &q->nstreams);
    }
    case CS_Q_SUMMARY_PENDING: {
        sqlite3_stmt *st = d->st[C(Q_SUMMARY_PENDING)];
        sqlite3_bind_int(st, 1, limit + 1);
        return collect_page(d, q, st, R_CALL, (size_t)limit, (void **)&q->calls, &q->ncalls);
    }
    }
    return -EINVAL;
}

static int db_query(void *p, cs_store_query *q)
{
    db *d = p;
    d->err[0] = '\0';
    d->deadline_ms = q->deadline_ms;
    int rc = run_query(d, q);
    if (rc < 0 && rc != CS_ENOTFOUND && past_deadline(d)) rc = -ETIMEDOUT;
    d->deadline_ms = 0;
    return rc;
}

static int db_meta_get(void *p, const char *key, char *out, size_t cap)
{
    db *d = p;
    sqlite3_stmt *st = d->st[C(Q_META_GET)];
    bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_ROW) return 0;
    return rc == SQLITE_DONE ? CS_ENOTFOUND : fail(d, "reading the store's bookkeeping");
}

static int db_meta_put(void *p, const char *key, const char *value)
{
    db *d = p;
    bind_text(d->st[C(Q_META_PUT)], 1, key);
    bind_text(d->st[C(Q_META_PUT)], 2, value);
    return run(d, C(Q_META_PUT), "writing the store's bookkeeping");
}

const cs_store_ops cs_store_sqlite = {
    .name = "sqlite",
    .scheme = "sqlite:",
    .open = db_open,
    .open_read = db_open_read,
    .close = db_close,
    .begin = db_begin,
    .commit = db_commit,
    .rollback = db_rollback,
    .write = db_write,
    .query = db_query,
    .meta_get = db_meta_get,
    .meta_put = db_meta_put,
    .errmsg = db_errmsg,
};
