/* The records' layouts, and the SQL both backends write them with. A layout lists a
 * record's fields: each its name in a spill file, its column, how an upsert merges it
 * with the row there, and what a 0 means. From it come the spill files' lines (spill.c),
 * the key check, the write statements of both dialects (the column lists, the
 * placeholders, the COALESCE upserts, the deletes) and their parameters, and the calls'
 * column list and reading. What else the dialects share is written once here too; what
 * differs stays in sqlite.c and postgres.c. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define S(row, member, k, col, m)                                                                  \
    {                                                                                              \
#member, offsetof(cs_store_rec, row.member), false, k, col, m, B_AS_IS                     \
    }
#define I(row, member, col, m, b)                                                                  \
    {                                                                                              \
#member, offsetof(cs_store_rec, row.member), true, false, col, m, b                        \
    }

/* `run`, `status` and `summary_reason` have merges of their own (M_RUN, M_STATUS,
 * M_WITH_STATUS). Writers on several loops and nodes reach the row in any order (a spill
 * replayed late): the times move only as time does. started_at: the earliest start;
 * ended_at: the latest end (a call that starts again after it ended ends later). */
static const cs_field call_fields[] = {
    S(call, sid, true, NULL, M_KEY),
    S(call, account_sid, false, NULL, M_NEW),
    S(call, from, false, "from_number", M_NEW),
    S(call, to, false, "to_number", M_NEW),
    S(call, direction, false, NULL, M_NEW),
    S(call, status, false, NULL, M_STATUS),
    S(call, params, false, NULL, M_NEW),
    S(call, summary, false, NULL, M_NEW),
    S(call, recording, false, NULL, M_NEW),
    I(call, recording_ms, NULL, M_NEW, B_NULL),
    I(call, created_at, NULL, M_LEAST, B_NOW),
    I(call, started_at, NULL, M_EARLIEST, B_NULL),
    I(call, ended_at, NULL, M_LATEST, B_NULL),
    I(call, updated_at, NULL, M_SET, B_NOW),
    S(call, transcription, false, NULL, M_NEW),
    S(call, summary_status, false, NULL, M_NEW),
    S(call, summary_reason, false, NULL, M_WITH_STATUS),
    S(call, node, false, NULL, M_NEW),
    S(call, run, false, NULL, M_RUN),
};
static const cs_field stream_fields[] = {
    S(stream, sid, true, NULL, M_KEY),          S(stream, call_sid, true, NULL, M_INSERT),
    S(stream, tracks, false, NULL, M_NEW),      S(stream, mode, false, NULL, M_NEW),
    I(stream, started_at, NULL, M_OLD, B_NULL), I(stream, ended_at, NULL, M_NEW, B_NULL),
    S(stream, end_reason, false, NULL, M_NEW),  S(stream, stats, false, NULL, M_NEW),
};
static const cs_field event_fields[] = {
    S(event, call_sid, true, NULL, M_INSERT), S(event, stream_sid, false, NULL, M_INSERT),
    I(event, at, NULL, M_INSERT, B_NOW),      S(event, type, true, NULL, M_INSERT),
    S(event, detail, false, NULL, M_INSERT),
};
/* A replayed write changes nothing; a refined final replaces the fast one, never the
 * other way round (the layout's `where`). */
static const cs_field segment_fields[] = {
    S(segment, call_sid, true, NULL, M_KEY),    S(segment, stream_sid, true, NULL, M_KEY),
    S(segment, speaker, true, NULL, M_KEY),     I(segment, seq, NULL, M_KEY, B_AS_IS),
    I(segment, start_ms, NULL, M_SET, B_AS_IS), I(segment, end_ms, NULL, M_SET, B_AS_IS),
    S(segment, text, true, NULL, M_SET),        I(segment, confidence, NULL, M_SET, B_UNKNOWN),
    I(segment, at, NULL, M_SET, B_NOW),         I(segment, refined, NULL, M_SET, B_FLAG),
    I(segment, cut, NULL, M_SET, B_FLAG),
};
/* password_at: when the password was set, one more at least each time */
static const cs_field user_fields[] = {
    S(user, name, true, NULL, M_KEY),
    S(user, password_hash, true, NULL, M_SET),
    I(user, created_at, NULL, M_INSERT, B_NOW),
    I(user, password_at, NULL, M_NEXT, B_NOW),
};
static const cs_field user_key[] = {S(user, name, true, NULL, M_KEY)};
static const cs_field session_fields[] = {
    S(session, token_hash, true, NULL, M_KEY),     S(session, user, true, "user_name", M_SET),
    I(session, created_at, NULL, M_SET, B_NOW),    I(session, expires_at, NULL, M_SET, B_AS_IS),
    I(session, password_at, NULL, M_SET, B_AS_IS),
};
static const cs_field session_key[] = {S(session, token_hash, true, NULL, M_KEY)};
/* a name is used once: writing it again fails */
static const cs_field token_fields[] = {
    S(token, name, true, NULL, M_INSERT),
    S(token, token_hash, true, NULL, M_INSERT),
    I(token, created_at, NULL, M_INSERT, B_NOW),
};
static const cs_field token_key[] = {S(token, name, true, NULL, M_KEY)};

#undef S
#undef I

static const cs_layout layouts[] = {
#define L(kind, f, table, where, what) [kind] = {f, sizeof f / sizeof *f, table, where, what}
    L(CS_REC_CALL, call_fields, "calls", NULL, "writing a call"),
    L(CS_REC_STREAM, stream_fields, "streams", NULL, "writing a stream"),
    L(CS_REC_EVENT, event_fields, "events", NULL, "writing an event"),
    L(CS_REC_SEGMENT, segment_fields, "transcripts", "excluded.refined >= t.refined",
      "writing a transcript segment"),
    L(CS_REC_USER, user_fields, "users", NULL, "writing a user"),
    L(CS_REC_USER_DEL, user_key, "users", NULL, "deleting a user"),
    L(CS_REC_SESSION, session_fields, "sessions", NULL, "writing a session"),
    L(CS_REC_SESSION_DEL, session_key, "sessions", NULL, "deleting a session"),
    L(CS_REC_TOKEN, token_fields, "api_tokens", NULL, "writing an API token"),
    L(CS_REC_TOKEN_DEL, token_key, "api_tokens", NULL, "deleting an API token"),
#undef L
};

const cs_layout *cs_store__layout(enum cs_rec_kind kind)
{
    return (unsigned)kind < sizeof layouts / sizeof *layouts && layouts[kind].fields
               ? &layouts[kind]
               : NULL;
}

static const char *column(const cs_field *f)
{
    return f->column ? f->column : f->name;
}

bool cs_store__rec_has_keys(const cs_store_rec *rec)
{
    const cs_layout *l = cs_store__layout(rec->kind);
    if (!l) return false;
    for (size_t i = 0; i < l->n; i++)
        if (l->fields[i].key && !*cs_field_str(rec, &l->fields[i])) return false;
    return true;
}

/* ---- SQL ---- */

/* Appends to a statement being built (sized for the longest). */
typedef struct sql_text {
    char s[4096];
    size_t n;
} sql_text;

static void add(sql_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(sql_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
    va_end(ap);
    if (n > 0) t->n = t->n + (size_t)n < sizeof t->s ? t->n + (size_t)n : sizeof t->s - 1;
}

/* A call status's place in a call's life: Twilio's (queued, initiated, ringing,
 * in-progress), then every final one (completed, busy, failed, no-answer, canceled, and
 * abnormal: ended without a stop), which are all alike. */
#define STATUS_RANK(x)                                                                             \
    "CASE " x " WHEN 'queued' THEN 0 WHEN 'initiated' THEN 1 WHEN 'ringing' THEN 2"                \
    " WHEN 'in-progress' THEN 3 ELSE 4 END"

/* How the upsert sets a column from the row written (excluded.x) and the row there (t.x). */
static void add_merge(sql_text *t, const cs_field *f, const cs_sql_dialect *d)
{
    const char *c = column(f);
    switch (f->merge) {
    case M_NEW:
        add(t, "%s = COALESCE(excluded.%s, t.%s)", c, c, c);
        break;
    case M_OLD:
        add(t, "%s = COALESCE(t.%s, excluded.%s)", c, c, c);
        break;
    case M_SET:
        add(t, "%s = excluded.%s", c, c);
        break;
    case M_LEAST:
        add(t, "%s = %s(t.%s, excluded.%s)", c, d->least, c, c);
        break;
    case M_EARLIEST: /* SQLite's MIN is NULL if either is: then the other */
        add(t, "%s = COALESCE(%s(t.%s, excluded.%s), t.%s, excluded.%s)", c, d->least, c, c, c, c);
        break;
    case M_LATEST:
        add(t, "%s = COALESCE(%s(t.%s, excluded.%s), t.%s, excluded.%s)", c, d->greatest, c, c, c,
            c);
        break;
    case M_STATUS: /* never back to an earlier one, but for a call started again after its end */
        add(t,
            "%s = CASE WHEN excluded.%s IS NULL THEN t.%s WHEN t.%s IS NULL OR " STATUS_RANK("excluded.%s")
            " >= " STATUS_RANK("t.%s") " OR excluded.started_at > t.ended_at THEN excluded.%s"
            " ELSE t.%s END",
            c, c, c, c, c, c, c, c);
        break;
    case M_NEXT:
        add(t, "%s = %s(excluded.%s, t.%s + 1)", c, d->greatest, c, c);
        break;
    case M_RUN: /* the run's that started the call: it moves until started_at is set */
        add(t, "%s = CASE WHEN t.started_at IS NULL THEN COALESCE(excluded.%s, t.%s) ELSE t.%s END",
            c, c, c, c);
        break;
    case M_WITH_STATUS: /* written with summary_status */
        add(t, "%s = CASE WHEN excluded.summary_status IS NULL THEN t.%s ELSE excluded.%s END", c,
            c, c);
        break;
    }
}

static char *build_write(const cs_layout *l, enum cs_rec_kind kind, const cs_sql_dialect *d)
{
    sql_text t = {.n = 0};
    if (kind == CS_REC_USER_DEL || kind == CS_REC_SESSION_DEL || kind == CS_REC_TOKEN_DEL) {
        add(&t, "DELETE FROM %s WHERE %s = %c1", l->table, column(&l->fields[0]), d->param);
        return strdup(t.s);
    }
    add(&t, "INSERT INTO %s AS t (", l->table);
    for (size_t i = 0; i < l->n; i++) add(&t, "%s%s", i ? ", " : "", column(&l->fields[i]));
    add(&t, ") VALUES (");
    for (size_t i = 0; i < l->n; i++) add(&t, "%s%c%zu", i ? "," : "", d->param, i + 1);
    add(&t, ")");
    size_t keys = 0, sets = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->fields[i].merge == M_KEY)
            add(&t, "%s%s", keys++ ? ", " : " ON CONFLICT (", column(&l->fields[i]));
    }
    if (keys) add(&t, ") DO UPDATE SET ");
    for (size_t i = 0; keys && i < l->n; i++) {
        if (l->fields[i].merge == M_KEY || l->fields[i].merge == M_INSERT) continue;
        if (sets++) add(&t, ", ");
        add_merge(&t, &l->fields[i], d);
    }
    if (keys && l->where) add(&t, " WHERE %s", l->where);
    return strdup(t.s);
}

/* `sql` in the dialect's words: its ?N placeholders (none is inside a literal) and
 * {greatest}, the scalar MAX. */
static char *build_common(const char *sql, const cs_sql_dialect *d)
{
    sql_text t = {.n = 0};
    for (const char *p = sql; *p;) {
        if (strncmp(p, "{greatest}", 10) == 0) {
            add(&t, "%s", d->greatest);
            p += 10;
        } else {
            add(&t, "%c", *p == '?' ? d->param : *p);
            p++;
        }
    }
    return strdup(t.s);
}

/* What both dialects say alike (?N placeholders, made the dialect's). */
static const char *const common[CS_SQL_COMMON] = {
    [Q_CALL_GET] = "SELECT " CS_CALL_COLUMNS " FROM calls WHERE sid = ?1",
    [Q_STREAMS_OF] = "SELECT sid, call_sid, tracks, mode, started_at, ended_at, end_reason, stats"
                     " FROM streams WHERE call_sid = ?1 ORDER BY started_at, sid",
    /* in time order, then in the order written: writers on other loops and nodes (a spill
     * replayed late) may write an event after later ones; the cursor ?2 is the last
     * event's id, which stands for its (at, id) (none, or an unknown one: from the first) */
    [Q_EVENTS_OF] = "SELECT e.id, e.call_sid, e.stream_sid, e.at, e.type, e.detail FROM events e"
                    " LEFT JOIN events c ON c.id = ?2 WHERE e.call_sid = ?1 AND (c.id IS NULL"
                    " OR e.at > c.at OR (e.at = c.at AND e.id > c.id)) ORDER BY e.at, e.id LIMIT ?3",
    [Q_SEGMENTS_OF] = "SELECT call_sid, stream_sid, speaker, seq, start_ms, end_ms, text,"
                      " confidence, at, refined, cut FROM transcripts WHERE call_sid = ?1"
                      " ORDER BY start_ms, speaker, seq LIMIT ?2",
    [Q_USER_SESSIONS_DEL] = "DELETE FROM sessions WHERE user_name = ?1",
    [Q_USERS] = "SELECT name, password_hash, created_at, password_at FROM users ORDER BY name",
    [Q_USER_GET] = "SELECT name, password_hash, created_at, password_at FROM users WHERE name = ?1",
    [Q_SESSION_PURGE] = "DELETE FROM sessions WHERE expires_at <= ?1",
    /* a session opened before the user's password changed, or whose user is gone, is over */
    [Q_SESSION_GET] = "SELECT s.token_hash, s.user_name, s.created_at, s.expires_at, s.password_at"
                      " FROM sessions s JOIN users u"
                      " ON u.name = s.user_name AND u.password_at = s.password_at"
                      " WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    [Q_TOKENS] = "SELECT name, token_hash, created_at FROM api_tokens ORDER BY name",
    [Q_TOKEN_GET] = "SELECT name, token_hash, created_at FROM api_tokens WHERE token_hash = ?1",
    [Q_META_GET] = "SELECT value FROM store_meta WHERE key = ?1",
    [Q_META_PUT] = "INSERT INTO store_meta AS t (key, value) VALUES (?1, ?2)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    /* Calls another run left live: started there, never ended or with a stream never ended;
     * held by node ?3, or by none (all, without ?3). */
    [Q_UNFINISHED] =
        "SELECT " CS_CALL_COLUMNS ", {greatest}(c.started_at,"
        " COALESCE((SELECT MAX(e.at) FROM events e WHERE e.call_sid = c.sid), 0),"
        " COALESCE((SELECT MAX(t.started_at) FROM streams t WHERE t.call_sid = c.sid), 0))"
        " FROM calls c WHERE c.started_at IS NOT NULL AND c.run IS DISTINCT FROM CAST(?1 AS TEXT)"
        " AND (CAST(?3 AS TEXT) IS NULL OR c.node IS NULL OR c.node = ?3) AND (c.ended_at IS NULL"
        " OR EXISTS (SELECT 1 FROM streams t WHERE t.call_sid = c.sid AND t.ended_at IS NULL))"
        " ORDER BY c.started_at, c.sid LIMIT ?2",
    [Q_UNFINISHED_STREAMS] =
        "SELECT t.sid, t.call_sid, t.tracks, t.mode, t.started_at, t.ended_at, t.end_reason,"
        " t.stats FROM streams t JOIN calls c ON c.sid = t.call_sid"
        " WHERE t.ended_at IS NULL AND c.started_at IS NOT NULL"
        " AND c.run IS DISTINCT FROM CAST(?1 AS TEXT)"
        " AND (CAST(?3 AS TEXT) IS NULL OR c.node IS NULL OR c.node = ?3)"
        " ORDER BY c.started_at, c.sid, t.started_at LIMIT ?2",
    [Q_SUMMARY_PENDING] = "SELECT " CS_CALL_COLUMNS " FROM calls WHERE summary_status = 'pending'"
                          " ORDER BY ended_at, sid LIMIT ?1",
};

/* Built once per dialect, kept for the process's life. */
typedef struct built {
    pthread_once_t once;
    const cs_sql_dialect *d;
    char *writes[sizeof layouts / sizeof *layouts];
    char *common[CS_SQL_COMMON];
} built;

static built sqlite_built = {.once = PTHREAD_ONCE_INIT, .d = &cs_sql_sqlite};
static built postgres_built = {.once = PTHREAD_ONCE_INIT, .d = &cs_sql_postgres};

static void build(built *b)
{
    for (size_t k = 0; k < sizeof layouts / sizeof *layouts; k++)
        if (layouts[k].fields) b->writes[k] = build_write(&layouts[k], (enum cs_rec_kind)k, b->d);
    for (int i = 0; i < CS_SQL_COMMON; i++) b->common[i] = build_common(common[i], b->d);
}

static void build_sqlite(void)
{
    build(&sqlite_built);
}

static void build_postgres(void)
{
    build(&postgres_built);
}

static built *built_for(const cs_sql_dialect *d)
{
    built *b = d == &cs_sql_sqlite ? &sqlite_built : &postgres_built;
    pthread_once(&b->once, b == &sqlite_built ? build_sqlite : build_postgres);
    return b;
}

const cs_sql_dialect cs_sql_sqlite = {.param = '?', .least = "MIN", .greatest = "MAX"};
const cs_sql_dialect cs_sql_postgres = {.param = '$', .least = "LEAST", .greatest = "GREATEST"};

const char *cs_sql_write(const cs_sql_dialect *d, enum cs_rec_kind kind)
{
    return cs_store__layout(kind) ? built_for(d)->writes[kind] : NULL;
}

const char *cs_sql_common(const cs_sql_dialect *d, enum cs_sql_common which)
{
    return built_for(d)->common[which];
}

void cs_sql_values(const cs_store_rec *rec, int64_t now, cs_sql_value_fn emit, void *ctx)
{
    const cs_layout *l = cs_store__layout(rec->kind);
    size_t n = l ? l->n : 0;
    if (rec->kind == CS_REC_USER_DEL || rec->kind == CS_REC_SESSION_DEL ||
        rec->kind == CS_REC_TOKEN_DEL)
        n = 1;
    for (size_t i = 0; i < n; i++) {
        const cs_field *f = &l->fields[i];
        if (!f->is_int) {
            emit(ctx, *cs_field_str(rec, f), NULL);
            continue;
        }
        int64_t v = *cs_field_int(rec, f);
        bool null = (f->blank == B_NULL && v == 0) || (f->blank == B_UNKNOWN && v < 0);
        if (f->blank == B_NOW && v == 0) v = now;
        if (f->blank == B_FLAG) v = v != 0;
        emit(ctx, NULL, null ? NULL : &v);
    }
}

/* ---- a call filter's parameters ---- */

const char *cs_sql_statuses(const cs_call_filter *f, char *out, size_t cap)
{
    if (!f->nstatuses) return NULL;
    size_t n = (size_t)snprintf(out, cap, ",");
    for (size_t i = 0; i < f->nstatuses && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s,", f->statuses[i]);
    return out;
}

const char *cs_sql_words(const char *words, const cs_sql_words_form *form, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *w = words; *w && n < cap;) {
        size_t len = strcspn(w, " ");
        bool prefix = len && w[len - 1] == '*';
        n += (size_t)snprintf(out + n, cap - n, "%s%c%.*s%c%s", n ? form->and : "", form->quote,
                              (int)(len - prefix), w, form->quote, prefix ? form->prefix : "");
        w += len + (w[len] == ' ');
    }
    return out;
}

/* ---- reading rows ---- */

/* A query's column, in its row. */
typedef struct row_column {
    size_t offset;
    bool is_int;
    bool null_neg; /* NULL reads as -1 (unknown), not 0 */
} row_column;

#define RS(type, m)                                                                                \
    {                                                                                              \
        offsetof(type, m), false, false                                                            \
    }
#define RI(type, m)                                                                                \
    {                                                                                              \
        offsetof(type, m), true, false                                                             \
    }
static const row_column stream_columns[] = {
    RS(cs_stream_row, sid),        RS(cs_stream_row, call_sid),   RS(cs_stream_row, tracks),
    RS(cs_stream_row, mode),       RI(cs_stream_row, started_at), RI(cs_stream_row, ended_at),
    RS(cs_stream_row, end_reason), RS(cs_stream_row, stats),
};
static const row_column event_columns[] = {
    RI(cs_event_row, id), RS(cs_event_row, call_sid), RS(cs_event_row, stream_sid),
    RI(cs_event_row, at), RS(cs_event_row, type),     RS(cs_event_row, detail),
};
static const row_column segment_columns[] = {
    RS(cs_segment_row, call_sid), RS(cs_segment_row, stream_sid),
    RS(cs_segment_row, speaker),  RI(cs_segment_row, seq),
    RI(cs_segment_row, start_ms), RI(cs_segment_row, end_ms),
    RS(cs_segment_row, text),     {offsetof(cs_segment_row, confidence), true, true},
    RI(cs_segment_row, at),       RI(cs_segment_row, refined),
    RI(cs_segment_row, cut),
};
static const row_column user_columns[] = {
    RS(cs_user_row, name),
    RS(cs_user_row, password_hash),
    RI(cs_user_row, created_at),
    RI(cs_user_row, password_at),
};
static const row_column session_columns[] = {
    RS(cs_session_row, token_hash), RS(cs_session_row, user),        RI(cs_session_row, created_at),
    RI(cs_session_row, expires_at), RI(cs_session_row, password_at),
};
static const row_column token_columns[] = {
    RS(cs_token_row, name),
    RS(cs_token_row, token_hash),
    RI(cs_token_row, created_at),
};
#undef RS
#undef RI

static const struct {
    const row_column *columns;
    size_t n, size;
} rows[] = {
#define R(kind, c, type) [kind] = {c, sizeof c / sizeof *c, sizeof(type)}
    [R_CALL] = {NULL, 0, sizeof(cs_call_row)},      [R_CALL_MATCH] = {NULL, 0, sizeof(cs_call_row)},
    [R_CALL_LAST] = {NULL, 0, sizeof(cs_call_row)}, R(R_STREAM, stream_columns, cs_stream_row),
    R(R_EVENT, event_columns, cs_event_row),        R(R_SEGMENT, segment_columns, cs_segment_row),
    R(R_USER, user_columns, cs_user_row),           R(R_SESSION, session_columns, cs_session_row),
    R(R_TOKEN, token_columns, cs_token_row),
#undef R
};

size_t cs_sql_row_size(enum cs_row kind)
{
    return rows[kind].size;
}

static void read_column(cs_store_query *q, char *at, int i, bool is_int, bool null_neg,
                        cs_sql_column_fn get, void *ctx)
{
    if (is_int) {
        if (!get(ctx, i, NULL, (int64_t *)at) && null_neg) *(int64_t *)at = -1;
        return;
    }
    const char *text = NULL;
    get(ctx, i, &text, NULL);
    *(const char **)at = text ? cs_store_strdup(q, text) : NULL;
}

/* A call's columns (CS_CALL_COLUMNS): its layout's, but the run, which queries leave NULL. */
static void read_call(cs_store_query *q, cs_call_row *c, cs_sql_column_fn get, void *ctx)
{
    for (size_t i = 0; i < sizeof call_fields / sizeof *call_fields; i++) {
        const cs_field *f = &call_fields[i];
        if (f->merge == M_RUN) continue;
        read_column(q, (char *)c + f->offset - offsetof(cs_store_rec, call), (int)i, f->is_int,
                    false, get, ctx);
    }
}

void cs_sql_read_row(cs_store_query *q, enum cs_row kind, void *row, cs_sql_column_fn get,
                     void *ctx)
{
    if (kind == R_CALL || kind == R_CALL_MATCH || kind == R_CALL_LAST) {
        cs_call_row *c = row;
        read_call(q, c, get, ctx);
        if (kind == R_CALL_LAST) get(ctx, CS_CALL_NCOLUMNS, NULL, &c->last_at);
        if (kind != R_CALL_MATCH) return;
        const char *match = NULL; /* "speaker:snippet" */
        get(ctx, CS_CALL_NCOLUMNS, &match, NULL);
        const char *colon = match ? strchr(match, ':') : NULL;
        if (!colon) return;
        char *speaker = cs_store_strdup(q, match);
        if (!speaker) return;
        speaker[colon - match] = '\0';
        c->match_speaker = speaker;
        c->match_snippet = speaker + (colon - match) + 1;
        return;
    }
    for (size_t i = 0; i < rows[kind].n; i++) {
        const row_column *col = &rows[kind].columns[i];
        read_column(q, (char *)row + col->offset, (int)i, col->is_int, col->null_neg, get, ctx);
    }
}
