/* Gather conversations: calls that are not streamed (the gateway is full, or their
 * stream failed) talk with the same agents turn by turn over HTTP. Each conversation is
 * a text stream of its call (CS_MODE_GATHER: the relay text path of call/talk.h, with no
 * socket): a request brings the caller's final words or keys, the agent answers through
 * its stream as on a relay, and what it said until its turn is over (or a deadline) is
 * handed back as the request's answer, which the provider's side turns into its verbs.
 * Conversations are keyed by CallSid, bounded in number and in what an answer holds, and
 * end when the agent hangs up, the call ends, or no request comes for a while. This
 * module never names the provider. Everything here runs on the loop thread. */
#ifndef CS_GATHER_H
#define CS_GATHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call/call.h"
#include "core/quota.h"

/* ---- limits ---- */
#define CS_GATHER_TEXT_MAX   4096 /* bytes of speech and URLs in one answer; more is dropped */
#define CS_GATHER_ITEMS_MAX  16   /* things said or played in one answer; more are dropped */
#define CS_GATHER_SETTLE_MS  250  /* the agent quiet this long after speaking: its turn is over */
#define CS_GATHER_FATES      256  /* streams whose end is remembered (cs_gather_fate) */
#define CS_GATHER_DIGITS_MAX 64   /* keys in one turn; more are refused */
#define CS_GATHER_SPEECH_MAX 2048 /* bytes of the caller's words in one turn; the rest is cut */
#define CS_GATHER_SILENT_MAX 3    /* answers in a row where neither side said anything: hang up */

typedef struct cs_gather cs_gather;

typedef struct cs_gather_opts {
    size_t max;        /* conversations at once */
    cs_quota *shared;  /* or: the process's count of them, shared with other loops */
    uint32_t reply_ms; /* an answer waits at most this long for the agent's turn */
    uint32_t idle_ms;  /* a conversation with no request for this long ends */
    uint32_t max_ms;   /* the longest a conversation may last (MAX_CALL_S) */
} cs_gather_opts;

/* What comes after the answer's speech. */
enum cs_gather_next {
    CS_GATHER_LISTEN = 0, /* the caller's turn: gather their words or keys */
    CS_GATHER_HANGUP = 1, /* the agent (or the call) ended the conversation */
};

/* One thing the agent said: text, or an audio URL to play `loop` times (0: once). */
typedef struct cs_gather_item {
    bool play;
    const char *text;
    unsigned loop;
} cs_gather_item;

/* An answer. Views valid during the callback only. */
typedef struct cs_gather_reply {
    enum cs_gather_next next;
    const cs_gather_item *items; /* in the order said */
    size_t nitems;
    bool late; /* the deadline came before the agent's turn was over */
} cs_gather_reply;

/* An answer is ready; always called later, from the loop, never inside the call that
 * asked for it. */
typedef void (*cs_gather_cb)(void *data, const cs_gather_reply *reply);

typedef struct cs_gather_stats {
    uint64_t opened;       /* conversations begun */
    uint64_t turns;        /* the caller's turns taken */
    uint64_t answers[2];   /* by enum cs_gather_next */
    uint64_t late;         /* answers the deadline sent */
    uint64_t expired;      /* conversations no request came for */
    uint64_t refused_full; /* not begun: `max` conversations live */
    uint64_t unknown;      /* turns for a call with no conversation */
    uint64_t dropped;      /* text or plays past CS_GATHER_TEXT_MAX / CS_GATHER_ITEMS_MAX */
    uint64_t silent;       /* conversations hung up after CS_GATHER_SILENT_MAX silent answers */
} cs_gather_stats;

/* How a call's streams fared (cs_gather_fate). */
enum cs_gather_fate {
    CS_FATE_UNKNOWN = 0, /* no stream of it seen lately */
    CS_FATE_LIVE,        /* a stream of it is live */
    CS_FATE_ENDED,       /* its last stream ended: *why says how */
};

/* ---- the set ---- */

/* Watches `calls` (an observer: how streams end) and runs a timer on `uv_loop`. 0 or a
 * negative code. */
int cs_gather_new(cs_gather **out, cs_calls *calls, void *uv_loop, const cs_gather_opts *o);
/* Ends every conversation (answering waiting requests with a hang-up) and closes the
 * timer: shutdown, before the call registry is freed. Idempotent. */
void cs_gather_stop(cs_gather *g);
/* After cs_gather_stop and the loop ran once. NULL is fine. */
void cs_gather_free(cs_gather *g);
size_t cs_gather_active(const cs_gather *g);
const cs_gather_stats *cs_gather_stats_get(const cs_gather *g);

/* ---- conversations ---- */

/* Begins one for the call of `start` (its call id, account, from, to and parameters: the
 * stream's start, its stream id "GA…" made here) and its agent (the registry's choice for
 * the parameters, as for a stream); `cb` gets the first answer (the agent's greeting).
 * `why` goes in the `gather` event. CS_ESTATE: one is open for that call already;
 * CS_ELIMIT: `max` are; CS_ENOTFOUND: no agent would answer it (none, or it failed to
 * start); -EINVAL: a bad call id. */
int cs_gather_open(cs_gather *g, const cs_pevent *start, const char *why, cs_gather_cb cb,
                   void *data);
/* The caller's turn: final words `speech` (NULL or "": none; cut to CS_GATHER_SPEECH_MAX
 * bytes between characters, counted as dropped; `confidence` 0..1, or < 0)
 * and keys `digits` (NULL or "": none). Neither: the caller said nothing (the agent's
 * own timers decide what that means; the answer waits for what it says). `cb` gets the
 * answer. CS_ENOTFOUND: no conversation for the call; CS_ESTATE: an answer is awaited
 * already; -EINVAL: digits that are not 0-9 * # or more than CS_GATHER_DIGITS_MAX. */
int cs_gather_turn(cs_gather *g, const char *call_sid, const char *speech, double confidence,
                   const char *digits, cs_gather_cb cb, void *data);
/* The call ended (the provider said so): its conversation ends, a waiting request is
 * answered with a hang-up. */
void cs_gather_end(cs_gather *g, const char *call_sid);
/* Whether the call has a conversation. */
bool cs_gather_has(const cs_gather *g, const char *call_sid);
/* How the call's streams fared: live, ended (*why), or not seen lately. */
enum cs_gather_fate cs_gather_fate(const cs_gather *g, const char *call_sid,
                                   enum cs_end_reason *why);

#endif
