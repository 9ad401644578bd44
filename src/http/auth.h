/* Who may use the pages, the API and the monitor socket: users with Argon2id password
 * hashes (hashed and checked on a worker thread, never on the loop), session cookies and
 * API tokens (random strings whose SHA-256 is all the store keeps, cached here for
 * AUTH_CACHE_S), a per-address limit on login attempts, and the first admin. Twilio's
 * routes never come here: they are signed. */
#ifndef CS_AUTH_H
#define CS_AUTH_H

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/config.h"
#include "core/limiter.h"
#include "core/map.h"
#include "net/server.h"

#define CS_SESSION_COOKIE   "cs_session"
#define CS_AUTH_CACHE_MAX   10000 /* identities cached; past it the cache starts over */
#define CS_AUTH_KEEP_MS     1000  /* cs_auth_keep asks again this long before an answer expires */
#define CS_NEXT_MAX         1024  /* longest `next` followed after sign-in */
#define CS_NEXT_DECODES     4     /* percent-decodings of `next` checked; more is refused */
#define CS_AUTH_PENDING_MAX 64    /* password checks waiting for the worker; more get 503 */
#define CS_PASSWORD_MAX     256
#define CS_USER_MAX         63

typedef struct cs_auth cs_auth;
struct cs_gateway;

#define CS_AUTH_ENDED_MAX 1024 /* sign-outs kept for the other loops; past it they start over */

/* What the loops of a process share for signing in: the limit on sign-in attempts per
 * address (LOGIN_ATTEMPTS_PER_MIN is the process's), the sessions made and identities
 * checked lately, so the next request finds them on any loop (before a new session's row
 * has reached the store, or while the store cannot answer), and the sessions signed out,
 * which every loop drops from its cache at its next request. All
 * under one lock, taken for a sign-in, a sign-out, or a session a loop has not cached;
 * a request only reads `nended`. */
typedef struct cs_auth_shared {
    pthread_mutex_t lock;
    cs_limiter logins;
    cs_map fresh; /* hash → made, checked or ended lately (at most CS_AUTH_CACHE_MAX) */
    char ended[CS_AUTH_ENDED_MAX][65]; /* sign-outs, the last at (nended - 1) % MAX */
    atomic_uint_fast64_t nended;
} cs_auth_shared;

void cs_auth_shared_init(cs_auth_shared *s, const cs_config *cfg);
void cs_auth_shared_free(cs_auth_shared *s);

enum cs_access {
    CS_ACCESS_PAGE, /* a session cookie; else 303 to the login page */
    CS_ACCESS_API,  /* a session cookie or a bearer token; else 401 */
};

int cs_auth_new(cs_auth **out, struct cs_gateway *gw);
/* Finishes the password checks under way (their answers go to the mailbox) and stops the
 * worker. Idempotent. */
void cs_auth_stop(cs_auth *a);
/* After the mailbox has run what cs_auth_stop left in it. Stops first if needed. */
void cs_auth_free(cs_auth *a);

/* Creates the `admin` user with a random password when there is no user at all, and
 * prints the password once. `done` runs on the loop when that is settled. */
void cs_auth_bootstrap(cs_auth *a, void (*done)(void *data, int err), void *data);

/* Whether `r` comes from a signed-in user (r->user is then set). When it cannot tell
 * without the store, it returns false and later calls `resume(r)` again with the answer
 * known; when the answer is no, it answers the request itself (303 or 401). */
bool cs_auth_check(cs_request *r, enum cs_access mode, cs_handler_fn resume);
/* The SHA-256 (hex) of the credential `r` carries, the session cookie first, else a
 * bearer token (*bearer says which); false when there is none. */
bool cs_auth_credential(const cs_request *r, char hash[65], bool *bearer);
/* Whether `r` may open a WebSocket from where it comes. A foreign Origin never may; a
 * session cookie needs the gateway's own Origin (PUBLIC_URL's, or the Host it arrived
 * at), as browsers send one with every WebSocket handshake and a page elsewhere could
 * ride on the cookie; a bearer token, which browsers never send on their own, may come
 * without Origin. */
bool cs_auth_origin_ok(const cs_request *r);
/* For the credential a long-lived socket holds (`hash` as cs_auth_credential gives it):
 * when its cached answer is about to run out, asks the store again in the background.
 * When the store says it has ended (signed out, user deleted, password changed, session
 * expired, token revoked), cs_monitor_revoke closes the sockets holding it; a store that
 * cannot answer leaves them open, but a session past its known end is closed without
 * asking. Call it once a second per socket. */
void cs_auth_keep(cs_auth *a, const char *hash, bool bearer);
/* Whether `next` (a form value, decoded once) may be followed after sign-in: a path of
 * this site, as given and after each percent-decoding (up to CS_NEXT_DECODES), starting
 * with a single '/' then neither '/' nor '\', with no control character or backslash
 * anywhere. web/static/login.js applies the same rule (both tested on tests/data/next.txt). */
bool cs_auth_next_ok(const char *next);

/* POST /login, POST /logout (which closes the session's monitor sockets at once),
 * GET /api/v1/me */
void cs_auth_login(cs_request *r);
void cs_auth_logout(cs_request *r);
void cs_auth_me(cs_request *r);

/* Blocking helpers for the command line and the worker. */
int cs_password_hash(char out[crypto_pwhash_STRBYTES], const char *password);
bool cs_password_verify(const char *hash, const char *password);
/* A new random secret as hex (`bytes` random bytes → 2 * bytes characters + NUL). */
void cs_secret_new(char *out, size_t bytes);
/* SHA-256 of a secret, as the store keeps it (64 hex characters + NUL). */
void cs_secret_hash(char out[65], const char *secret, size_t n);

#endif
