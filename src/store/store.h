/* The store: calls, streams and events (later transcripts and users) in SQLite or
 * PostgreSQL, on threads of its own. Writes are queued from the loop to the writer,
 * batched into transactions and retried with backoff while the database fails; when the
 * queue is full they go to a spill writer that appends them to a file, replayed later in
 * bounded batches, so nothing is lost. Queries run on a reader with its own connection
 * and a deadline, so they never wait behind failing writes, and answer on the loop. */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/pool.h"
#include "core/worker.h"

/* ---- limits ---- */
#define CS_STORE_PAGE_MAX     500         /* rows per list query */
#define CS_STORE_EVENTS_MAX   5000        /* events returned with a call */
#define CS_STORE_SEGMENTS_MAX 20000       /* transcript segments returned for a call */
#define CS_CALL_STREAMS_MAX   64          /* streams returned with a call */
#define CS_STORE_RESULT_MAX   (64u << 20) /* bytes of one query's result */
#define CS_STORE_RETRY_MIN_MS 100         /* first backoff while the database fails */
#define CS_STORE_RETRY_MAX_MS 5000        /* backoff cap while the database fails */
#define CS_STORE_LINGER_MS    20          /* writes gather this long into one transaction */
#define CS_STORE_CLOSE_WAIT_MS                                                                     \
    10000                              /* at close, how long a failing database is retried         \
                                          before what is left is spilled for the next start */
#define CS_STORE_BATCH_MAX       1024  /* records per transaction, from the queue or a spill file */
#define CS_STORE_STALL_MS        1000  /* a write attempt running this long counts as failing */
#define CS_STORE_READ_MS         1000  /* a query's budget: past it, it is answered -ETIMEDOUT */
#define CS_STORE_READ_WAIT_MS    500   /* of which it may wait for the writes made before it */
#define CS_STORE_READ_GRACE_MS   250   /* a reader stuck this long past a budget is answered for */
#define CS_STORE_READS_MAX       1024  /* queries waiting for the reader; more are refused */
#define CS_STORE_READ_WINDOW_MS  10000 /* a failed query counts against health this long */
#define CS_STORE_ERROR_MAX       256   /* bytes of an error message kept */
#define CS_STORE_SPILL_QUEUE_MIN 1024  /* the spill writer queues at least this many records */
#define CS_STORE_SPILL_LINE_MAX  (1u << 20) /* a record's line in a spill file (bytes) */
#define CS_STORE_RUN_BYTES       8          /* random bytes of a run's id */
#define CS_CALLS_TEXT_MAX        256        /* bytes of a transcript search (cs_call_filter) */
#define CS_CALLS_WORDS_MAX       16         /* words in a transcript search */
#define CS_CALLS_STATUSES_MAX    9          /* statuses in one filter (Twilio has nine) */
#define CS_CALLS_NUMBER_MAX      64         /* bytes of a from/to filter */

/* ---- rows (strings may be NULL but for the keys: a call's sid, a stream's sid and
 * call_sid, an event's call_sid and type; times are ms since the epoch, 0 = unknown) ---- */

typedef struct cs_call_row {
    const char *sid, *account_sid, *from, *to, *direction, *status;
    const char *params; /* JSON object of customParameters */
    const char *summary;        /* JSON object: summary, key_points, action_items, sentiment */
    const char *summary_status; /* "pending", "done", "failed", "no_speech", or NULL */
    const char *summary_reason; /* why it failed; written with summary_status */
    const char *recording;     /* file path */
    const char *transcription; /* "on", "unavailable" (no engine free), "failed", or NULL */
    int64_t created_at, started_at, ended_at, updated_at;
    int64_t recording_ms;
    int64_t last_at; /* CS_Q_UNFINISHED: the latest time stored for the call */
    /* CS_Q_CALLS with a text filter: the first matching transcript line, its speaker and
     * its snippet, the matched words between CS_SNIPPET_OPEN and CS_SNIPPET_CLOSE */
    const char *match_speaker, *match_snippet;
    /* The run (cs_store_run) the call started in, or was last written by before it started:
     * set by the store when a write leaves it NULL; queries leave it NULL. */
    const char *run;
    const char *node; /* the node (NODE_ID) that holds the call and its recording */
} cs_call_row;

typedef struct cs_stream_row {
    const char *sid, *call_sid;
    const char *tracks; /* JSON array */
    const char *mode, *end_reason;
    const char *stats; /* JSON object */
    int64_t started_at, ended_at;
} cs_stream_row;

typedef struct cs_event_row {
    int64_t id, at;
    const char *call_sid, *stream_sid, *type;
    const char *detail; /* JSON object */
} cs_event_row;

/* One final transcript segment. (call_sid, stream_sid, speaker, seq) identifies it, so a
 * replayed write does not duplicate it, and a refined final replaces the fast one (never
 * the other way round, whatever order they come in). */
typedef struct cs_segment_row {
    const char *call_sid, *stream_sid;
    const char *speaker; /* "caller" or "agent" */
    const char *text;
    int64_t seq;              /* the utterance's number in its speaker's session */
    int64_t start_ms, end_ms; /* on the call's timeline */
    int64_t confidence;       /* per mille, or -1 when unknown */
    int64_t at;               /* when it was recognised */
    int64_t refined;          /* 1: re-decoded after the fast final (cs_stt_segment) */
    int64_t cut;              /* 1: an agent line the caller cut short: what was heard */
} cs_segment_row;

/* Access: secrets are kept as hashes only (Argon2id for passwords, SHA-256 for session
 * and API tokens, which are long random strings). */
typedef struct cs_user_row {
    const char *name, *password_hash;
    int64_t created_at;
    int64_t password_at; /* read only: when the password was set (grows with each change) */
} cs_user_row;

typedef struct cs_session_row {
    const char *token_hash, *user;
    int64_t created_at, expires_at;
    int64_t password_at; /* the user's password_at when the password was checked */
} cs_session_row;

typedef struct cs_token_row {
    const char *name, *token_hash;
    int64_t created_at;
} cs_token_row;

/* ---- writes: upserts keep what a NULL/0 field does not say ---- */

/* The spill file keeps these numbers: new kinds go at the end. */
enum cs_rec_kind {
    CS_REC_CALL = 1,    /* upsert by sid */
    CS_REC_STREAM,      /* upsert by sid */
    CS_REC_EVENT,       /* insert */
    CS_REC_USER,        /* upsert by name; ends the user's sessions (a new password) */
    CS_REC_USER_DEL,    /* by user.name, with the user's sessions */
    CS_REC_SESSION,     /* insert; expired sessions are purged on the way */
    CS_REC_SESSION_DEL, /* by session.token_hash */
    CS_REC_TOKEN,       /* insert (a name is used once) */
    CS_REC_TOKEN_DEL,   /* by token.name */
    CS_REC_SEGMENT,     /* insert or replace by its identity */
};

typedef struct cs_store cs_store;

typedef struct cs_store_rec {
    cs_job job;      /* private */
    cs_store *store; /* private */
    uint64_t seq;    /* private: its place among the writes */
    enum cs_rec_kind kind;
    union {
        cs_call_row call;
        cs_stream_row stream;
        cs_event_row event;
        cs_segment_row segment;
        cs_user_row user;
        cs_session_row session;
        cs_token_row token;
    };
    cs_pool pool; /* the strings */
} cs_store_rec;

/* ---- queries ---- */

enum cs_query_kind {
    CS_Q_CALLS = 1,  /* newest first: limit, before_at/before_sid cursor, filter */
    CS_Q_CALL,       /* one call with its streams and events: sid */
    CS_Q_EVENTS,     /* events of a call: sid, after_id, limit */
    CS_Q_TRANSCRIPT, /* a call's transcript segments in time order (up to CS_STORE_SEGMENTS_MAX):
                        sid */
    CS_Q_USERS,      /* every user; with `key`, the user of that name */
    CS_Q_SESSION,    /* the unexpired session whose token hash is `key`, while its user exists
                        with the password the session was opened with */
    CS_Q_TOKENS,     /* every API token; with `key`, the one with that token hash */
    CS_Q_UNFINISHED, /* calls that started in a run other than `key` (cs_store_run) and were
                        left live (never ended, or with a stream never ended), oldest first, up
                        to `limit`, with those streams and each call's last_at; with `node`,
                        only the calls held by that node or by none */
    CS_Q_SUMMARY_PENDING, /* calls whose summary_status is "pending", the first ended first,
                             up to `limit` */
};

/* Markers around the matched words of a snippet (the page builds elements from them,
 * never markup). */
#define CS_SNIPPET_OPEN  "\x02"
#define CS_SNIPPET_CLOSE "\x03"

/* Which calls CS_Q_CALLS lists; empty fields do not filter. */
typedef struct cs_call_filter {
    char from[CS_CALLS_NUMBER_MAX + 1], to[CS_CALLS_NUMBER_MAX + 1];
    bool from_prefix, to_prefix; /* from/to is the start of the number, not all of it */
    char statuses[CS_CALLS_STATUSES_MAX][16];
    size_t nstatuses;
    int64_t since, until; /* created_at in [since, until): ms since the epoch, 0: open */
    /* Transcript search: words of letters and digits (cs_call_filter_text), each a
     * ' ' separated word, '*' after a word that is a prefix; every word must be in one
     * line of the call's transcript (either speaker). */
    char text[CS_CALLS_TEXT_MAX + 1];
} cs_call_filter;

/* Sets f->text from what a user typed: words are runs of letters, digits and non-ASCII
 * characters, anything else separates them (so no input is an expression), and a '*'
 * right after a word makes it a prefix. The number of words, CS_ELIMIT when `q` is longer
 * than CS_CALLS_TEXT_MAX or has more than CS_CALLS_WORDS_MAX words. */
int cs_call_filter_text(cs_call_filter *f, const char *q);

typedef struct cs_store_query cs_store_query;
typedef void (*cs_store_query_fn)(cs_store_query *q, void *data);

struct cs_store_query {
    cs_job job;      /* private */
    cs_store *store; /* private */
    enum cs_query_kind kind;
    /* parameters */
    char sid[65];
    int limit;
    int64_t before_at;
    char before_sid[65];
    int64_t after_id;
    char key[129];
    char node[65];
    cs_call_filter filter;
    /* results: valid until cs_store_query_free */
    int status;  /* 0, CS_ENOTFOUND, or a failure: CS_EBACKEND (the read failed), -ETIMEDOUT
                    (no answer within CS_STORE_READ_MS), CS_EFULL (too many queries waiting),
                    CS_ECLOSED (the store closed first) */
    bool behind; /* writes made before the query were not all in the database yet */
    char error[CS_STORE_ERROR_MAX]; /* why, for a failure or when behind */
    cs_call_row *calls;
    size_t ncalls;
    cs_stream_row *streams;
    size_t nstreams;
    cs_event_row *events;
    size_t nevents;
    cs_segment_row *segments;
    size_t nsegments;
    cs_user_row *users;
    size_t nusers;
    cs_session_row *sessions;
    size_t nsessions;
    cs_token_row *tokens;
    size_t ntokens;
    bool more; /* another page exists */
    cs_pool pool;
    cs_store_query_fn cb;
    void *cb_data;
    /* private */
    uint64_t after_seq;          /* the last write made before it */
    uint64_t deadline_ms;        /* monotonic; 0: none (queries run in order) */
    bool orphaned;               /* answered for by the loop; freed when the reader is done */
    cs_store_query *prev, *next; /* loop: queries the reader has not answered yet */
};

/* ---- backends ---- */

typedef struct cs_store_ops {
    const char *name;
    /* The DATABASE_URL prefixes it takes, e.g. "sqlite:"; one ending in "://" is a part of
     * the URL the backend is given, another is cut off. */
    const char *scheme, *alias;
    /* On the store's threads from here on, one connection per thread. open runs the
     * migrations; open_read opens a connection that only reads (after open), waiting
     * for locks until deadline_ms (monotonic) at most. */
    int (*open)(void **db, const char *url, cs_buf *err);
    int (*open_read)(void **db, const char *url, uint64_t deadline_ms, cs_buf *err);
    void (*close)(void *db);
    int (*begin)(void *db);
    int (*commit)(void *db);
    void (*rollback)(void *db);
    int (*write)(void *db, const cs_store_rec *rec);
    /* Honours q->deadline_ms (-ETIMEDOUT once it passed). */
    int (*query)(void *db, cs_store_query *q);
    /* The store's own bookkeeping (how far a spill file was replayed), written in the
     * transaction of the records it describes. get: 0, CS_ENOTFOUND or a failure. */
    int (*meta_get)(void *db, const char *key, char *out, size_t cap);
    int (*meta_put)(void *db, const char *key, const char *value);
    /* The last failure's message. */
    const char *(*errmsg)(void *db);
} cs_store_ops;

extern const cs_store_ops cs_store_sqlite;
extern const cs_store_ops cs_store_postgres;

/* ---- the store ---- */

typedef struct cs_store_stats {
    uint64_t written;  /* records committed */
    uint64_t batches;  /* transactions committed */
    uint64_t failures; /* failed attempts (each retried) */
    uint64_t spilled;  /* records that went to the spill file */
    uint64_t replayed; /* spilled records written since */
    uint64_t lost;     /* records never written: the spill file failed, a record was too
                          long for it, the spill writer's queue was full too, a line of a
                          spill file could not be read back, or the process may not spill */
    uint64_t queries;  /* answered, one way or another */
    uint64_t reads_failed, reads_timed_out, reads_refused;
    size_t queued;            /* writes waiting now */
    size_t spill_queued;      /* writes waiting for the spill file */
    size_t reads_pending;     /* queries not answered yet */
    int64_t failing_since_ms; /* wall: since when writes fail (or stall); 0 while they work */
    int64_t last_error_ms;    /* wall: the last failure, 0 if none */
    char last_error[CS_STORE_ERROR_MAX];
    /* wall: since when every query fails (none answered since, the last failure within
     * CS_STORE_READ_WINDOW_MS); 0 while they are answered */
    int64_t reads_failing_since_ms;
    int64_t last_read_error_ms; /* wall: the last failed query, 0 if none */
    int64_t last_read_ok_ms;    /* wall: the last query answered, 0 if none */
    char last_read_error[CS_STORE_ERROR_MAX];
} cs_store_stats;

/* Opens the backend named by `url` ("sqlite:PATH", a bare path meaning SQLite, or
 * "postgresql://…" / "postgres://…", libpq's connection URI) on new
 * store threads, waiting for the open and the migrations to finish (start-up only).
 * `spill_dir` holds the spill files, written and replayed only by the process holding
 * their lock there; the spill writer queues up to `queue_max` records too (at least
 * CS_STORE_SPILL_QUEUE_MIN), and drops (counts as lost) what comes past that: the
 * database and the disk both fail then. Without a `spill_dir` (a command that must know
 * whether its write was committed) nothing spills: what the database does not take is
 * lost. Must be called on the loop thread of `mb`. 0, or CS_ECONFIG/CS_EBACKEND with a
 * message. */
int cs_store_open(cs_store **out, const char *url, cs_mailbox *mb, size_t queue_max,
                  const char *spill_dir, cs_buf *err);
/* Writes what is queued and closes (loop thread). If the database keeps failing for
 * CS_STORE_CLOSE_WAIT_MS, the rest stays in spill files, written at the next open (or is
 * lost, without them). Queries are answered first (from the mailbox, afterwards); one run
 * in order that the database never got to gets CS_ECLOSED, and `behind` when the writes
 * made before it were not all in the database. */
void cs_store_close(cs_store *s);
/* Counters and health, without waiting for the database (loop thread). */
void cs_store_stats_get(cs_store *s, cs_store_stats *out);
/* The same from another thread (another loop's /health), but reads_pending, which is the
 * loop's own: 0. */
void cs_store_stats_peek(cs_store *s, cs_store_stats *out);
const char *cs_store_backend(const cs_store *s);
/* This process's run of the store: a random id written with the call rows it starts, so
 * the calls an earlier run left live can be told from this run's whatever the clock did. */
const char *cs_store_run(const cs_store *s);
/* Makes `run` (another store's cs_store_run, of the same process: the event loops') this
 * store's run too, so the process's calls are all one run's. Before the first write. */
void cs_store_join_run(cs_store *s, const char *run);

/* A record to fill: strings go into rec->pool (cs_pool_strdup). */
cs_store_rec *cs_store_rec_new(enum cs_rec_kind kind);
/* Frees a record never handed over. */
void cs_store_rec_free(cs_store_rec *rec);
/* Hands the record over (the store frees it). Never fails nor touches a file: a full
 * queue hands it to the spill writer. A record without its keys is dropped with an
 * error. */
void cs_store_write(cs_store *s, cs_store_rec *rec);

cs_store_query *cs_store_query_new(enum cs_query_kind kind, cs_store_query_fn cb, void *data);
/* Runs the query on the reader; cb runs on the loop with the result within
 * CS_STORE_READ_MS + CS_STORE_READ_GRACE_MS, whatever the database does. The answer
 * includes the writes made before (waiting up to CS_STORE_READ_WAIT_MS for them), or
 * says it is `behind`. cb may be handed another query than `q`, with the same
 * parameters and cb_data: it frees what it gets. */
void cs_store_query_run(cs_store *s, cs_store_query *q);
/* Runs the query on the writer, after every write queued before it and after what an
 * earlier run left to replay, retrying while the database fails: for start-up work that
 * must see all of it, and for a command that must know its writes were committed. No
 * deadline; CS_ECLOSED if the store closes first, `behind` if those writes were not all
 * in the database then. */
void cs_store_query_run_in_order(cs_store *s, cs_store_query *q);
void cs_store_query_free(cs_store_query *q);

/* Helpers for backends filling results (store thread). */
char *cs_store_strdup(cs_store_query *q, const char *s);
void *cs_store_alloc(cs_store_query *q, size_t n);

#endif
