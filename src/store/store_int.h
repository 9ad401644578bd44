/* The store's internals, shared by its files and by no other module (they use store.h):
 * the store itself, the writer's steps that replay uses (store.c), the records' layouts
 * and the SQL both backends share (fields.c), and the spill writer and replay (spill.c). */
#ifndef CS_STORE_INT_H
#define CS_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "core/buf.h"
#include "store/store.h"

#define SPILL_NAME    "store-spill.jsonl"
#define REPLAY_SUFFIX ".replay"
#define SPILL_LOCK    "store-spill.lock"
#define REPLAY_KEY    "spill_replay" /* store_meta: "<file id> <offset replayed>" */

/* A spill file being appended to, a whole line per record; what a batch saved and lost is
 * counted when it closes. */
typedef struct appender {
    int fd; /* -1 but during a batch */
    const char *path;
    size_t saved, lost;       /* this batch */
    uint64_t failed;          /* records lost since the first failure of a burst; 0: none */
    int64_t failing_since_ms; /* wall: that first failure */
} appender;

struct cs_store {
    const cs_store_ops *ops;
    cs_mailbox *mb;
    char url[4096];
    char run[2 * CS_STORE_RUN_BYTES + 1]; /* this process's run: cs_store_run */
    char spill_path[4096];                /* where the spill writer appends */
    char replay_path[4200];               /* a spill file taken by the writer, being replayed */
    char lock_path[4200];                 /* held by the process that writes and replays them */
    int lock_fd;                          /* on lock_path, once opened (under `lock`) */
    atomic_bool owner;                    /* it holds the lock: spill files are its own */

    /* the writer: its connection, the batch it writes, the queries waiting for the
     * writes made before them */
    cs_worker *worker;
    void *db;
    cs_store_rec *batch[CS_STORE_BATCH_MAX];
    size_t nbatch;
    uint64_t batch_seq; /* the last write the batch settles */
    cs_store_query *in_order, **in_order_tail;
    bool gave_up; /* closing, and the database still fails: the rest goes to files */
    bool closed;  /* the last job ran */
    char *line;   /* replay's line buffer */
    atomic_int_fast64_t closing_since_ms; /* monotonic; 0 until cs_store_close */

    /* the reader and its connection (opened on first use) */
    cs_worker *reader;
    void *rdb;

    /* the spill writer and its open file */
    cs_worker *spiller;
    appender spill;
    cs_job rotate_job, close_job;

    /* where writes go: the loop routes them, the writer takes the spill file */
    pthread_mutex_t route_lock;
    bool spill_pending;   /* they go to the spill writer until the writer takes its file */
    uint64_t dropped;     /* records lost since both queues filled up; 0 once they take again */
    uint64_t posted;      /* sequence number of the last write */
    uint64_t spilled_seq; /* of the last one sent the spill writer's way */

    /* shared by all threads: counters, health, how far the writes got */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* settled or health moved, the spill file was taken, opened */
    cs_store_stats stats;
    uint64_t read_failures;    /* queries failed in a row: the burst the log tells of */
    uint64_t read_failed_ms;   /* monotonic: the last of them */
    uint64_t settled;          /* every write up to this one is in the database, or lost */
    uint64_t attempt_since_ms; /* monotonic: when the write attempt under way began, or 0 */
    bool rotated;
    int rotate_rc; /* how taking the spill file went: 0 taken, 1 not ours, or an error */
    bool opened;
    int open_rc;
    cs_buf open_err;

    /* loop: queries the reader has not answered, and the timer that answers for it */
    cs_store_query *pending;
    size_t npending;
    uv_timer_t *watch;
};

/* How far a spill file's replay got, written with its batch. */
typedef struct progress {
    const char *id;
    long offset;
} progress;

/* ---- store.c: records, counters and the writer's steps ---- */

void cs_store__count(cs_store *s, uint64_t *field, uint64_t n);
/* `attempt` until it succeeds (0), or CS_ECLOSED once closing gave up. */
int cs_store__retry(cs_store *s, int (*attempt)(cs_store *s, void *arg), void *arg,
                    const char *what);
void cs_store__batch_add(cs_store *s, cs_store_rec *rec);
void cs_store__settle(cs_store *s, uint64_t seq, size_t written);
int cs_store__commit_batch(cs_store *s, const progress *p);

/* ---- fields.c: the records' layouts, and the SQL of both dialects ---- */

/* How an upsert merges a column with the row there. */
enum cs_merge {
    M_KEY,         /* the conflict target */
    M_INSERT,      /* written with a new row only */
    M_NEW,         /* the new value unless NULL: COALESCE(new, old) */
    M_OLD,         /* the first value stays: COALESCE(old, new) */
    M_SET,         /* the new value */
    M_LEAST,       /* the smaller */
    M_EARLIEST,    /* the smaller, or whichever is not NULL */
    M_LATEST,      /* the greater, or whichever is not NULL */
    M_STATUS,      /* calls.status: M_NEW, but never back to an earlier one (STATUS_RANK) */
    M_NEXT,        /* the new value, or one more than the old, the greater */
    M_RUN,         /* calls.run: M_NEW until the call started, then kept */
    M_WITH_STATUS, /* calls.summary_reason: set with summary_status, NULL included */
};

/* What an int64 field's 0 (or negative) value means. */
enum cs_blank {
    B_AS_IS,   /* itself */
    B_NULL,    /* 0 is unknown: NULL, so COALESCE keeps what is there */
    B_NOW,     /* 0 is now */
    B_UNKNOWN, /* negative is unknown: NULL */
    B_FLAG,    /* any other than 0 is 1 */
};

typedef struct cs_field {
    const char *name;   /* in a spill file's line */
    size_t offset;      /* in cs_store_rec */
    bool is_int;        /* int64_t, else const char * */
    bool key;           /* required: a record without it cannot be written */
    const char *column; /* NULL: the name */
    unsigned char merge, blank;
} cs_field;

typedef struct cs_layout {
    const cs_field *fields;
    size_t n;
    const char *table;
    const char *where; /* an upsert updates only rows where this holds (t: the row there) */
    const char *what;  /* "writing a call": for a failure's message */
} cs_layout;

const cs_layout *cs_store__layout(enum cs_rec_kind kind);
/* Whether a record has the fields it cannot be written without. */
bool cs_store__rec_has_keys(const cs_store_rec *rec);

static inline const char **cs_field_str(const cs_store_rec *rec, const cs_field *f)
{
    return (const char **)((char *)rec + f->offset);
}

static inline int64_t *cs_field_int(const cs_store_rec *rec, const cs_field *f)
{
    return (int64_t *)((char *)rec + f->offset);
}

/* Where the dialects differ in what fields.c writes. */
typedef struct cs_sql_dialect {
    char param;                   /* a placeholder's mark before its number: ? or $ */
    const char *least, *greatest; /* the scalar MIN and MAX */
} cs_sql_dialect;

extern const cs_sql_dialect cs_sql_sqlite, cs_sql_postgres;

/* The columns a call query reads first, in cs_sql_read_call's order. */
#define CS_CALL_COLUMNS                                                                            \
    "sid, account_sid, from_number, to_number, direction, status, params, summary, recording,"     \
    " recording_ms, created_at, started_at, ended_at, updated_at, transcription, summary_status,"  \
    " summary_reason, node"
#define CS_CALL_NCOLUMNS 18

/* The migrations both dialects take as they are (sqlite.c and postgres.c list them all,
 * in order; never edit one that shipped). */
/* 5: the store's own bookkeeping (how far a spill file was replayed) */
#define CS_MIGRATION_5 "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
/* 6: the run a call started in (calls of earlier builds have none: an earlier run) */
#define CS_MIGRATION_6 "ALTER TABLE calls ADD COLUMN run TEXT;"
/* 7: refined finals, which replace the fast ones */
#define CS_MIGRATION_7 "ALTER TABLE transcripts ADD COLUMN refined INTEGER NOT NULL DEFAULT 0;"
/* 8: agent lines the caller cut short (what was heard of them) */
#define CS_MIGRATION_8 "ALTER TABLE transcripts ADD COLUMN cut INTEGER NOT NULL DEFAULT 0;"
/* 9: the call's summary: how its making went (pending, done, failed, no_speech) and why */
#define CS_MIGRATION_9                                                                             \
    "ALTER TABLE calls ADD COLUMN summary_status TEXT;"                                            \
    "ALTER TABLE calls ADD COLUMN summary_reason TEXT;"                                            \
    "CREATE INDEX calls_summary_pending ON calls(ended_at, sid)"                                   \
    " WHERE summary_status = 'pending';"
/* 11: the node (NODE_ID) that holds the call and its recording */
#define CS_MIGRATION_11 "ALTER TABLE calls ADD COLUMN node TEXT;"

/* 12: a call's events in time order (Q_EVENTS_OF) */
#define CS_MIGRATION_12 "CREATE INDEX events_by_call_time ON events(call_sid, at, id);"

/* Statements both dialects say alike. */
enum cs_sql_common {
    Q_CALL_GET,
    Q_STREAMS_OF,
    Q_EVENTS_OF,
    Q_SEGMENTS_OF,
    Q_USER_SESSIONS_DEL,
    Q_USERS,
    Q_USER_GET,
    Q_SESSION_PURGE,
    Q_SESSION_GET,
    Q_TOKENS,
    Q_TOKEN_GET,
    Q_META_GET,
    Q_META_PUT,
    Q_SUMMARY_PENDING,
    Q_UNFINISHED,
    Q_UNFINISHED_STREAMS,
    CS_SQL_COMMON
};

/* The statement writing a record of `kind` (an upsert, an insert or a delete), its
 * parameters given by cs_sql_values; NULL for an unknown kind. Built once (any thread). */
const char *cs_sql_write(const cs_sql_dialect *d, enum cs_rec_kind kind);
const char *cs_sql_common(const cs_sql_dialect *d, enum cs_sql_common which);
/* rec's parameters for cs_sql_write's statement, in order: a string, a number, or
 * neither (NULL). */
typedef void (*cs_sql_value_fn)(void *ctx, const char *text, const int64_t *num);
void cs_sql_values(const cs_store_rec *rec, int64_t now, cs_sql_value_fn emit, void *ctx);
/* ",a,b," of a filter's statuses (a query looks for ",status,"), or NULL for any. */
const char *cs_sql_statuses(const cs_call_filter *f, char *out, size_t cap);
/* A filter's words (cs_call_filter_text: letters and digits, a '*' after a prefix) as a
 * text search expression: each quoted, so nothing a user typed is syntax, all required. */
typedef struct cs_sql_words_form {
    char quote;
    const char *and, *prefix; /* between words; after a prefix's closing quote */
} cs_sql_words_form;
const char *cs_sql_words(const char *words, const cs_sql_words_form *form, char *out, size_t cap);

/* The rows queries read: a call's (CS_CALL_COLUMNS; then, for R_CALL_MATCH, its first
 * matching line "speaker:snippet", for R_CALL_LAST its last_at), and those of the
 * statements fields.c says for both. */
enum cs_row {
    R_CALL,
    R_CALL_MATCH,
    R_CALL_LAST,
    R_STREAM,
    R_EVENT,
    R_SEGMENT,
    R_USER,
    R_SESSION,
    R_TOKEN
};
/* A backend's column `col` of the row at hand: into *text (the backend's, valid until the
 * next row; NULL for NULL) when text is given, else into *num (0 for NULL). false: NULL. */
typedef bool (*cs_sql_column_fn)(void *ctx, int col, const char **text, int64_t *num);
size_t cs_sql_row_size(enum cs_row kind);
/* Reads a row into `row` (a cs_*_row of `kind`), its strings copied into q's pool. */
void cs_sql_read_row(cs_store_query *q, enum cs_row kind, void *row, cs_sql_column_fn get,
                     void *ctx);

/* ---- spill.c: spill files and their replay ---- */

/* Whether this process may write and replay the spill files (it takes their lock if it
 * can), else `why` not. Any thread. */
bool cs_spill__own(cs_store *s, const char **why);
void cs_spill__append(appender *a, cs_store_rec *rec);
size_t cs_spill__close(cs_store *s, appender *a);
/* Logs the summary of a burst of failures still open, saying `how` it ended. */
void cs_spill__burst_end(appender *a, const char *how);
/* The spill writer's job for a record, and its batch_end hook. */
void cs_spill__work(cs_job *job);
void cs_spill__batch_end(void *data);
/* Writer thread. */
bool cs_spill__replay(cs_store *s, const char *path);
void cs_spill__take(cs_store *s);

#endif
