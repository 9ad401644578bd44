/* A fake of Twilio's REST API (2010-04-01), for tests, written from Twilio's public
 * reference: POST /2010-04-01/Accounts/{AC}/Calls.json (create: To, From and Url
 * required), POST …/Calls/{CA}.json (update: Status=completed, Twiml or Url),
 * POST …/Calls/{CA}/Streams.json (create: Url required) and POST
 * …/Calls/{CA}/Streams/{MZ or name}.json (Status=stopped). Requests must be
 * form-encoded and carry HTTP Basic auth with the expected user and password, else 401
 * with Twilio's error JSON {"code":20003,"message","more_info","status":401}. Answers are
 * Twilio's JSON shapes (sid, account_sid, call_sid, status, uri…). Each request takes the
 * next reply of a script (past its end, success), or the reply matching it, which may be an error
 * (status, code, message) or no answer at all (held until the client leaves or the fake is freed).
 *
 * It runs on a thread of its own; the functions below may be called from any thread. */
#ifndef CS_TEST_TWILIO_REST_FAKE_H
#define CS_TEST_TWILIO_REST_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef enum twilio_fake_kind {
    TWILIO_FAKE_OK = 0, /* the resource's JSON, 201 for a create, 200 for an update */
    TWILIO_FAKE_ERROR,  /* HTTP `status` with {code, message, more_info, status} */
    TWILIO_FAKE_STALL,  /* never answered */
} twilio_fake_kind;

typedef struct twilio_fake_reply {
    twilio_fake_kind kind;
    int status;          /* ERROR */
    long code;           /* ERROR: Twilio's error code (21211, 20404, 20429, …) */
    const char *message; /* ERROR */
    /* When set, the reply answers every request whose path or form body contains this
     * (a To number, a CallSid), as Twilio's test credentials answer magic numbers; when
     * not, it answers the request of its index among all. */
    const char *match;
} twilio_fake_reply;

typedef struct twilio_fake_opts {
    const char *account_sid;         /* the account in paths (AC…) */
    const char *user, *pass;         /* Basic auth expected */
    const twilio_fake_reply *script; /* must outlive the fake; may be NULL */
    size_t nscript;
    int port; /* 0: any free port */
} twilio_fake_opts;

typedef struct twilio_fake_stats {
    unsigned requests; /* every request to an API route */
    unsigned bad_auth; /* 401 */
    unsigned bad_form; /* 400: not form-encoded, or a required field missing */
    unsigned calls_created, calls_updated, streams_created, streams_stopped;
} twilio_fake_stats;

typedef struct twilio_fake twilio_fake;

/* Listens on 127.0.0.1 on a thread of its own. 0 or a negative code. */
int twilio_fake_start(twilio_fake **out, const twilio_fake_opts *o);
/* "http://127.0.0.1:PORT", for TWILIO_API_URL. */
const char *twilio_fake_url(const twilio_fake *f);
int twilio_fake_port(const twilio_fake *f);
void twilio_fake_stats_get(twilio_fake *f, twilio_fake_stats *out);
/* The k-th request (from 0; the first 256 are kept): its path into `path` and its form
 * body into `body`. false if there is none yet. */
bool twilio_fake_request(twilio_fake *f, size_t k, cs_buf *path, cs_buf *body);
void twilio_fake_free(twilio_fake *f);

#endif
