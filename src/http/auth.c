#include "http/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/json.h"
#include "core/limiter.h"
#include "core/log.h"
#include "core/map.h"
#include "http/gateway.h"
#include "net/form.h"

#define SESSION_BYTES  32    /* random bytes in a session token */
#define PASSWORD_BYTES 12    /* random bytes in the first admin's password */
#define THROTTLE_MAX   10000 /* addresses remembered for the login limit */

/* A session or token we have seen lately. */
typedef struct ident {
    char hash[65];
    char user[CS_USER_MAX + 1];
    int64_t valid_until; /* wall ms: the session's end, or when to ask the store again */
    int64_t expires_at;  /* wall ms: a session's end (0: a token) */
    bool asking;         /* cs_auth_keep is waiting for the store's answer */
} ident;

struct cs_auth {
    cs_gateway *gw;
    cs_worker *worker;
    cs_map cache;                            /* hash → ident */
    cs_auth_shared *shared;                  /* the process's: sign-ins, fresh sessions */
    uint64_t nended;                         /* the shared sign-outs dropped here so far */
    size_t pending;                          /* password checks queued */
    cs_job *waiting, **waiting_end;          /* checks waiting for the worker, oldest first */
    bool checking;                           /* one is on the worker */
    char dummy_hash[crypto_pwhash_STRBYTES]; /* checked when the user does not exist */
};

/* ---- secrets ---- */

int cs_password_hash(char out[crypto_pwhash_STRBYTES], const char *password)
{
    return crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
               ? 0
               : -ENOMEM;
}

bool cs_password_verify(const char *hash, const char *password)
{
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

void cs_secret_new(char *out, size_t bytes)
{
    uint8_t raw[64];
    if (bytes > sizeof raw) bytes = sizeof raw;
    cs_random(raw, bytes);
    cs_hex(out, raw, bytes);
    sodium_memzero(raw, sizeof raw);
}

void cs_secret_hash(char out[65], const char *secret, size_t n)
{
    uint8_t h[CS_SHA256_LEN];
    cs_sha256(h, secret, n);
    cs_hex(out, h, sizeof h);
}

/* ---- the identity cache ---- */

/* Empties a map whose values are plain allocations. */
static void free_all(cs_map *m)
{
    void *v;
    for (size_t pos = 0; cs_map_next(m, &pos, NULL, &v);) free(v);
    cs_map_free(m);
}

static int64_t window_ms(const cs_auth *a)
{
    return a->gw->cfg->auth_cache_s * 1000;
}

/* An answer about `hash`; valid_until is capped at expires_at when there is one. */
static ident *cache_put(cs_auth *a, const char *hash, const char *user, int64_t valid_until,
                        int64_t expires_at)
{
    ident *id = cs_map_get(&a->cache, cs_str_of(hash));
    if (!id && a->cache.len >= CS_AUTH_CACHE_MAX) free_all(&a->cache); /* start over, not grow */
    if (!id) {
        id = calloc(1, sizeof *id);
        if (!id) return NULL;
        snprintf(id->hash, sizeof id->hash, "%s", hash);
        if (cs_map_put(&a->cache, cs_str_of(id->hash), id) < 0) {
            free(id);
            return NULL;
        }
    }
    snprintf(id->user, sizeof id->user, "%s", user);
    id->valid_until = expires_at && expires_at < valid_until ? expires_at : valid_until;
    id->expires_at = expires_at;
    id->asking = false;
    return id;
}

static void cache_drop(cs_auth *a, const char *hash)
{
    free(cs_map_del(&a->cache, cs_str_of(hash)));
}

/* ---- sessions made lately, for every loop ---- */

void cs_auth_shared_init(cs_auth_shared *s, const cs_config *cfg)
{
    pthread_mutex_init(&s->lock, NULL);
    cs_limiter_init(&s->logins, (double)cfg->login_attempts_per_min, THROTTLE_MAX);
    s->fresh = (cs_map)CS_MAP_INIT;
    atomic_init(&s->nended, 0);
}

void cs_auth_shared_free(cs_auth_shared *s)
{
    free_all(&s->fresh);
    cs_limiter_free(&s->logins);
    pthread_mutex_destroy(&s->lock);
}

/* A session or token just made or checked, or a session just signed out (`user` ""):
 * every loop knows it for AUTH_CACHE_S, as it would have cached it, and by then the
 * store has the row, or has lost it (the lock held). */
static void fresh_put_locked(cs_auth_shared *s, const char *hash, const char *user,
                             int64_t valid_until, int64_t expires_at)
{
    ident *id = calloc(1, sizeof *id);
    free(cs_map_del(&s->fresh, cs_str_of(hash)));
    if (!id) return; /* the other loops ask the store */
    snprintf(id->hash, sizeof id->hash, "%s", hash);
    snprintf(id->user, sizeof id->user, "%s", user);
    id->valid_until = valid_until;
    id->expires_at = expires_at;
    if (s->fresh.len >= CS_AUTH_CACHE_MAX) free_all(&s->fresh); /* start over, not grow */
    if (cs_map_put(&s->fresh, cs_str_of(id->hash), id) < 0) free(id);
}

static void fresh_put(cs_auth *a, const char *hash, const char *user, int64_t valid_until,
                      int64_t expires_at)
{
    pthread_mutex_lock(&a->shared->lock);
    fresh_put_locked(a->shared, hash, user, valid_until, expires_at);
    pthread_mutex_unlock(&a->shared->lock);
}

/* Signed out: every loop drops the session at its next request, and none takes the
 * store's word for it while the store may not have deleted it yet. */
static void ended_put(cs_auth *a, const char *hash)
{
    cs_auth_shared *s = a->shared;
    pthread_mutex_lock(&s->lock);
    fresh_put_locked(s, hash, "", cs_wall_ms() + window_ms(a), 0);
    uint64_t n = atomic_load(&s->nended);
    memcpy(s->ended[n % CS_AUTH_ENDED_MAX], hash, 65);
    atomic_store(&s->nended, n + 1);
    pthread_mutex_unlock(&s->lock);
}

/* Drops from this loop's cache, and closes the sockets of, the sessions signed out on
 * any loop since it last looked; all of them if it fell too far behind. */
static void ended_sync(cs_auth *a)
{
    cs_auth_shared *s = a->shared;
    if (atomic_load(&s->nended) == a->nended) return;
    pthread_mutex_lock(&s->lock);
    uint64_t n = atomic_load(&s->nended);
    if (n - a->nended > CS_AUTH_ENDED_MAX) {
        free_all(&a->cache); /* every identity asks the store again */
        a->nended = n - CS_AUTH_ENDED_MAX;
    }
    for (; a->nended < n; a->nended++) {
        const char *hash = s->ended[a->nended % CS_AUTH_ENDED_MAX];
        if (!cs_map_get(&a->cache, cs_str_of(hash))) continue;
        cache_drop(a, hash);
        cs_monitor_revoke(a->gw, hash, "signed out");
    }
    pthread_mutex_unlock(&s->lock);
}

enum fresh { FRESH_UNKNOWN, FRESH_MADE, FRESH_ENDED };

/* What another loop did lately with a session this one has not cached: made it (now in
 * this loop's cache, *out), signed it out, or nothing known (ask the store). */
static enum fresh fresh_get(cs_auth *a, const char *hash, ident **out)
{
    cs_auth_shared *s = a->shared;
    ident seen = {0};
    bool known = false;
    pthread_mutex_lock(&s->lock);
    ident *id = cs_map_get(&s->fresh, cs_str_of(hash));
    if (id && id->valid_until > cs_wall_ms())
        seen = *id, known = true;
    else if (id)
        free(cs_map_del(&s->fresh, cs_str_of(hash))); /* the store is up to date by now */
    pthread_mutex_unlock(&s->lock);
    if (!known) return FRESH_UNKNOWN;
    if (!seen.user[0]) return FRESH_ENDED;
    *out = cache_put(a, hash, seen.user, seen.valid_until, seen.expires_at);
    return *out ? FRESH_MADE : FRESH_UNKNOWN;
}

/* ---- credentials ---- */

/* The value of cookie `name` in the Cookie header, or an empty view. */
static cs_str cookie(const cs_request *r, const char *name)
{
    const cs_str *h = cs_request_header(r, "Cookie");
    size_t nl = strlen(name);
    for (size_t i = 0; h && i < h->n;) {
        while (i < h->n && (h->p[i] == ' ' || h->p[i] == ';')) i++;
        size_t start = i;
        while (i < h->n && h->p[i] != ';') i++;
        cs_str kv = {h->p + start, i - start};
        if (kv.n > nl && kv.p[nl] == '=' && memcmp(kv.p, name, nl) == 0)
            return (cs_str){kv.p + nl + 1, kv.n - nl - 1};
    }
    return CS_STR_NULL;
}

/* The hash of the request's credential; *bearer says which kind it was. */
static bool credential(const cs_request *r, enum cs_access mode, char hash[65], bool *bearer)
{
    *bearer = false;
    cs_str c = cookie(r, CS_SESSION_COOKIE);
    if (c.n == 0 && mode == CS_ACCESS_API) {
        const cs_str *h = cs_request_header(r, "Authorization");
        if (h && h->n > 7 && cs_str_ieq((cs_str){h->p, 7}, "Bearer ")) {
            c = (cs_str){h->p + 7, h->n - 7};
            *bearer = true;
        }
    }
    if (c.n == 0 || c.n > 128) return false;
    cs_secret_hash(hash, c.p, c.n);
    return true;
}

static void deny(cs_request *r, enum cs_access mode)
{
    if (mode == CS_ACCESS_API) {
        cs_buf body = CS_BUF_INIT(256);
        cs_buf_puts(&body, "{\"error\":{\"status\":401,\"message\":\"sign in first\"}}\n");
        cs_respond(r, 401, "application/json", body.data, body.len,
                   "WWW-Authenticate: Bearer realm=\"callstream\"\r\n");
        cs_buf_free(&body);
        return;
    }
    cs_buf loc = CS_BUF_INIT(8192);
    cs_buf_puts(&loc, "Location: /login?next=");
    cs_form_encode(&loc, r->head.target.p, r->head.target.n);
    cs_buf_puts(&loc, "\r\n");
    cs_respond(r, 303, NULL, NULL, 0, loc.data);
    cs_buf_free(&loc);
}

/* A question to the store about a credential: for a request, or (r NULL) for the
 * sockets holding it (cs_auth_keep). */
typedef struct lookup {
    cs_auth *a;
    cs_request *r;
    enum cs_access mode;
    cs_handler_fn resume;
    bool bearer;
    char hash[65];
} lookup;

/* A session past its end: over, whatever the store can say. */
static bool expired(const ident *id)
{
    return id->expires_at && id->expires_at <= cs_wall_ms();
}

/* Why a credential the store no longer knows has ended, as its sockets are told. */
static const char *ended_why(const ident *id, bool bearer)
{
    if (bearer) return "token revoked";
    return expired(id) ? "session expired" : "session ended";
}

/* Known before, ended now: its sockets go too. */
static void cache_end(cs_auth *a, const ident *id, bool bearer)
{
    char hash[65];
    memcpy(hash, id->hash, sizeof hash);
    cs_monitor_revoke(a->gw, hash, ended_why(id, bearer));
    cache_drop(a, hash);
}

static void on_lookup(cs_store_query *q, void *data)
{
    lookup *l = data;
    cs_auth *a = l->a;
    const char *user = NULL;
    int64_t expires_at = 0;
    /* (the row must be the one asked about: an empty key would list every token) */
    if (q->status == 0 && l->bearer && q->ntokens == 1 &&
        strcmp(q->tokens[0].token_hash, l->hash) == 0) {
        user = q->tokens[0].name;
    } else if (q->status == 0 && !l->bearer && q->nsessions == 1 &&
               strcmp(q->sessions[0].token_hash, l->hash) == 0) {
        user = q->sessions[0].user;
        expires_at = q->sessions[0].expires_at;
    }
    ident *id = cs_map_get(&a->cache, cs_str_of(l->hash));
    bool failed = !user && q->status != 0 && q->status != CS_ENOTFOUND && !(id && expired(id));
    if (user) {
        cache_put(a, l->hash, user, cs_wall_ms() + window_ms(a), expires_at);
        fresh_put(a, l->hash, user, cs_wall_ms() + window_ms(a), expires_at); /* every loop's */
    } else if (failed) {
        if (id) id->asking = false; /* ask again at the next chance */
    } else if (id) {
        cache_end(a, id, l->bearer);
    }
    if (l->r && user) {
        snprintf(l->r->user, sizeof l->r->user, "%s", user);
        l->resume(l->r);
    } else if (l->r && failed) {
        cs_respond_error(l->r, 503, "the store is unavailable");
    } else if (l->r) {
        deny(l->r, l->mode);
    }
    cs_store_query_free(q);
    free(l);
}

/* Sends a copy of `l` to the store; the answer comes to on_lookup. */
static int ask_store(const lookup *l)
{
    lookup *copy = malloc(sizeof *copy);
    cs_store_query *q =
        copy ? cs_store_query_new(l->bearer ? CS_Q_TOKENS : CS_Q_SESSION, on_lookup, copy) : NULL;
    if (!q) {
        free(copy);
        return -ENOMEM;
    }
    *copy = *l;
    memcpy(q->key, l->hash, sizeof l->hash);
    cs_store_query_run(l->a->gw->store, q);
    return 0;
}

bool cs_auth_check(cs_request *r, enum cs_access mode, cs_handler_fn resume)
{
    if (r->user[0]) return true;
    cs_gateway *gw = r->app;
    cs_auth *a = gw->auth;
    char hash[65];
    bool bearer;
    if (!credential(r, mode, hash, &bearer)) {
        deny(r, mode);
        return false;
    }
    ended_sync(a);
    ident *id = cs_map_get(&a->cache, cs_str_of(hash));
    if (!(id && id->valid_until > cs_wall_ms()) && fresh_get(a, hash, &id) == FRESH_ENDED) {
        deny(r, mode);
        return false;
    }
    if (id && id->valid_until > cs_wall_ms()) {
        snprintf(r->user, sizeof r->user, "%s", id->user);
        return true;
    }
    lookup l = {.a = a, .r = r, .mode = mode, .resume = resume, .bearer = bearer};
    memcpy(l.hash, hash, sizeof hash);
    if (ask_store(&l) < 0) cs_respond_error(r, 503, "out of memory");
    return false;
}

void cs_auth_keep(cs_auth *a, const char *hash, bool bearer)
{
    ended_sync(a);
    ident *id = cs_map_get(&a->cache, cs_str_of(hash));
    if (id && expired(id)) { /* expiry needs no store, which may be failing */
        cache_end(a, id, bearer);
        return;
    }
    if (id && (id->asking || id->valid_until - cs_wall_ms() > CS_AUTH_KEEP_MS)) return;
    /* An identity the full cache forgot comes back as a placeholder, so that its
     * sockets ask once, and are closed if it has ended. */
    if (!id && !(id = cache_put(a, hash, "", 0, 0))) return;
    lookup l = {.a = a, .bearer = bearer};
    memcpy(l.hash, hash, sizeof l.hash);
    id->asking = ask_store(&l) == 0;
}

bool cs_auth_credential(const cs_request *r, char hash[65], bool *bearer)
{
    return credential(r, CS_ACCESS_API, hash, bearer);
}

/* Whether the request's Origin is this gateway's own. */
static bool same_origin(const cs_request *r)
{
    const cs_str *origin = cs_request_header(r, "Origin");
    if (!origin) return false;
    cs_gateway *gw = r->app;
    if (cs_str_ieq(*origin, gw->origin)) return true;
    /* also the address the browser actually used, when it reaches us directly */
    const cs_str *host = cs_request_header(r, "Host");
    if (!host) return false;
    char own[CS_URL_CAP];
    snprintf(own, sizeof own, "%s://%.*s", r->conn && cs_conn_is_tls(r->conn) ? "https" : "http",
             (int)host->n, host->p);
    return cs_str_ieq(*origin, own);
}

bool cs_auth_origin_ok(const cs_request *r)
{
    if (cs_request_header(r, "Origin")) return same_origin(r);
    char hash[65];
    bool bearer;
    return credential(r, CS_ACCESS_API, hash, &bearer) && bearer;
}

/* ---- login ---- */

/* The password work, on the worker. */
typedef struct check {
    cs_job job;
    cs_auth *a;
    cs_request *r;
    bool json;
    bool ok;
    char user[CS_USER_MAX + 1];
    char password[CS_PASSWORD_MAX + 1];
    char hash[crypto_pwhash_STRBYTES]; /* the stored one, or empty */
    int64_t password_at;               /* the user's, with that hash */
    char next[CS_NEXT_MAX];
} check;

/* One stage of `next`. Browsers drop tabs and newlines from URLs and read '\' as '/', so
 * "/\t/evil" or "/\evil" would lead to //evil, another site. */
static bool next_stage_ok(const char *s, size_t n)
{
    if (n < 2 || s[0] != '/' || s[1] == '/' || s[1] == '\\') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\') return false;
    }
    return true;
}

bool cs_auth_next_ok(const char *next)
{
    size_t n = next ? strlen(next) : 0;
    if (n == 0 || n >= CS_NEXT_MAX) return false;
    char s[CS_NEXT_MAX];
    memcpy(s, next, n + 1);
    for (int decoded = 0;; decoded++) {
        if (!next_stage_ok(s, n)) return false;
        if (!memchr(s, '%', n)) return true;
        if (decoded == CS_NEXT_DECODES) return false;
        int k = cs_url_decode(s, s, n, false);
        if (k < 0) return false;
        n = (size_t)k;
    }
}

/* `next` only ever leads to a page of ours; anything else to the list. */
static void safe_next(char *out, size_t cap, const char *next)
{
    snprintf(out, cap, "%s", cs_auth_next_ok(next) ? next : "/calls_monitoring");
}

static void login_answer(cs_request *r, bool json, int status, const char *error, const char *next,
                         const char *cookie_line)
{
    cs_buf extra = CS_BUF_INIT(4096);
    if (cookie_line) cs_buf_puts(&extra, cookie_line);
    if (json) {
        cs_buf body = CS_BUF_INIT(512);
        if (status == 200)
            cs_buf_printf(&body, "{\"user\":\"%s\"}\n", r->user);
        else
            cs_buf_printf(&body, "{\"error\":{\"status\":%d,\"message\":\"%s\"}}\n", status, error);
        cs_respond(r, status, "application/json", body.data, body.len, extra.data);
        cs_buf_free(&body);
    } else {
        cs_buf_puts(&extra, "Location: ");
        if (status == 200) {
            cs_buf_puts(&extra, next);
        } else {
            cs_buf_printf(&extra, "/login?error=%s&next=", status == 429 ? "throttled" : "invalid");
            cs_form_encode(&extra, next, strlen(next));
        }
        cs_buf_puts(&extra, "\r\n");
        cs_respond(r, 303, NULL, NULL, 0, extra.data);
    }
    cs_buf_free(&extra);
}

static void check_work(cs_job *job)
{
    check *c = (check *)job;
    /* An unknown user costs the same as a wrong password, so timing tells nothing. */
    if (!c->a->dummy_hash[0]) {
        char pw[2 * PASSWORD_BYTES + 1];
        cs_secret_new(pw, PASSWORD_BYTES);
        cs_password_hash(c->a->dummy_hash, pw);
    }
    bool ok = cs_password_verify(c->hash[0] ? c->hash : c->a->dummy_hash, c->password);
    c->ok = ok && c->hash[0];
    sodium_memzero(c->password, sizeof c->password);
}

static void next_check(cs_auth *a);

static void check_done(cs_job *job)
{
    check *c = (check *)job;
    cs_auth *a = c->a;
    a->pending--;
    a->checking = false;
    next_check(a);
    cs_request *r = c->r;
    if (!c->ok) {
        cs_info("auth: failed sign-in for '%s' from %s", c->user, r->conn ? r->conn->peer_ip : "?");
        login_answer(r, c->json, 401, "wrong user name or password", c->next, NULL);
        free(c);
        return;
    }
    char token[2 * SESSION_BYTES + 1], hash[65];
    cs_secret_new(token, SESSION_BYTES);
    cs_secret_hash(hash, token, strlen(token));
    int64_t now = cs_wall_ms(), ttl_ms = a->gw->cfg->session_ttl_s * 1000;
    cs_store_rec *rec = cs_store_rec_new(CS_REC_SESSION);
    if (rec) {
        rec->session = (cs_session_row){
            .token_hash = cs_pool_strdup(&rec->pool, hash),
            .user = cs_pool_strdup(&rec->pool, c->user),
            .created_at = now,
            .expires_at = now + ttl_ms,
            /* a password changed since it was read makes this session void */
            .password_at = c->password_at,
        };
        cs_store_write(a->gw->store, rec);
    }
    cache_put(a, hash, c->user, now + window_ms(a), now + ttl_ms);
    fresh_put(a, hash, c->user, now + window_ms(a), now + ttl_ms);
    snprintf(r->user, sizeof r->user, "%s", c->user);
    char line[256];
    bool secure =
        (r->conn && cs_conn_is_tls(r->conn)) || strncmp(a->gw->public_url, "https:", 6) == 0;
    snprintf(line, sizeof line,
             "Set-Cookie: " CS_SESSION_COOKIE
             "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s\r\n",
             token, (long long)a->gw->cfg->session_ttl_s, secure ? "; Secure" : "");
    cs_info("auth: '%s' signed in from %s", c->user, r->conn ? r->conn->peer_ip : "?");
    login_answer(r, c->json, 200, NULL, c->next, line);
    sodium_memzero(token, sizeof token);
    free(c);
}

/* Ends a sign-in before its password is checked. */
static void check_drop(check *c, const char *why)
{
    c->a->pending--;
    sodium_memzero(c->password, sizeof c->password);
    cs_respond_error(c->r, 503, "%s", why);
    free(c);
}

/* Nobody waits for the answer any more: no password work, no session. An end of stream
 * counts as leaving: HTTP/1.1 lets a client half-close and still read, but that cannot be
 * told from a browser that gave up, and nginx too ends a request whose client closed
 * (499) rather than work for nobody; a half-closed client still reads why. */
static bool client_left(check *c)
{
    if (c->r->conn && !cs_conn_peer_gone(c->r->conn)) return false;
    cs_info("auth: sign-in for '%s' dropped: the client left", c->user);
    check_drop(c, "the client left");
    return true;
}

/* The worker gets one check at a time, the next only when it is done, so one whose client
 * left while it waited is dropped here, on the loop, before it costs a hash. */
static void next_check(cs_auth *a)
{
    while (a->waiting && !a->checking) {
        check *c = (check *)a->waiting;
        a->waiting = c->job.next;
        if (!a->waiting) a->waiting_end = &a->waiting;
        if (client_left(c)) continue;
        if (a->worker && cs_worker_post(a->worker, &c->job) == 0)
            a->checking = true;
        else
            check_drop(c, "the gateway is stopping");
    }
}

static void on_user(cs_store_query *q, void *data)
{
    check *c = data;
    if (client_left(c)) {
        cs_store_query_free(q);
        return;
    }
    if (q->status < 0 && q->status != CS_ENOTFOUND) {
        char why[64 + CS_STORE_ERROR_MAX];
        snprintf(why, sizeof why, "the store cannot answer: %s", q->error);
        cs_store_query_free(q);
        check_drop(c, why);
        return;
    }
    if (q->nusers == 1) {
        snprintf(c->hash, sizeof c->hash, "%s", q->users[0].password_hash);
        c->password_at = q->users[0].password_at;
    }
    cs_store_query_free(q);
    c->job = (cs_job){.work = check_work, .done = check_done};
    *c->a->waiting_end = &c->job;
    c->a->waiting_end = &c->job.next;
    next_check(c->a);
}

static bool wants_json(const cs_request *r)
{
    const cs_str *accept = cs_request_header(r, "Accept");
    return accept && memmem(accept->p, accept->n, "application/json", 16);
}

/* Copies a form value (or "") into out; false if it does not fit. */
static bool take(char *out, size_t cap, const char *v)
{
    if (!v) v = "";
    size_t n = strlen(v);
    if (n >= cap) return false;
    memcpy(out, v, n + 1);
    return true;
}

void cs_auth_login(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_auth *a = gw->auth;
    cs_form form;
    if (cs_form_parse(&form, r->body.data ? r->body.data : "", r->body.len) < 0) {
        if (r->body.data) sodium_memzero(r->body.data, r->body.len);
        cs_respond_error(r, 400, "malformed form body");
        return;
    }
    char user[CS_USER_MAX + 1], password[CS_PASSWORD_MAX + 1], next[CS_NEXT_MAX];
    bool ok = take(user, sizeof user, cs_form_get(&form, "username")) &&
              take(password, sizeof password, cs_form_get(&form, "password")) && user[0];
    safe_next(next, sizeof next, cs_form_get(&form, "next"));
    /* The password leaves the form and the request body now, before any answer (which
     * frees the request). */
    for (size_t i = 0; i < form.n; i++)
        sodium_memzero(form.pairs[i].value, strlen(form.pairs[i].value));
    cs_form_free(&form);
    if (r->body.data) sodium_memzero(r->body.data, r->body.len);

    bool json = wants_json(r);
    const char *ip = r->conn ? r->conn->peer_ip : "?";
    check *c = NULL;
    cs_store_query *q = NULL;
    pthread_mutex_lock(&a->shared->lock);
    bool allowed = cs_limiter_take(&a->shared->logins, ip, (int64_t)cs_mono_ms());
    pthread_mutex_unlock(&a->shared->lock);
    if (!allowed) {
        cs_warn("auth: sign-ins from %s throttled (LOGIN_ATTEMPTS_PER_MIN)", ip);
        login_answer(r, json, 429, "too many attempts; wait a minute", next, NULL);
    } else if (!ok) {
        login_answer(r, json, 401, "wrong user name or password", next, NULL);
    } else if (a->pending >= CS_AUTH_PENDING_MAX) {
        cs_respond_error(r, 503, "too many sign-ins at once; try again");
    } else if (!(c = calloc(1, sizeof *c)) || !(q = cs_store_query_new(CS_Q_USERS, on_user, c))) {
        free(c);
        cs_respond_error(r, 503, "out of memory");
    } else {
        *c = (check){.a = a, .r = r, .json = json};
        memcpy(c->user, user, sizeof user);
        memcpy(c->password, password, sizeof password);
        memcpy(c->next, next, sizeof next);
        snprintf(q->key, sizeof q->key, "%s", user);
        a->pending++;
        cs_store_query_run(gw->store, q);
    }
    sodium_memzero(password, sizeof password);
}

void cs_auth_logout(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_str c = cookie(r, CS_SESSION_COOKIE);
    if (c.n && c.n <= 128) {
        char hash[65];
        cs_secret_hash(hash, c.p, c.n);
        cache_drop(gw->auth, hash);
        ended_put(gw->auth, hash);
        cs_monitor_revoke(gw, hash, "signed out");
        cs_store_rec *rec = cs_store_rec_new(CS_REC_SESSION_DEL);
        if (rec) {
            rec->session.token_hash = cs_pool_strdup(&rec->pool, hash);
            cs_store_write(gw->store, rec);
        }
    }
    const char *clear =
        "Set-Cookie: " CS_SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n";
    if (wants_json(r)) {
        cs_respond(r, 200, "application/json", "{}\n", 3, clear);
        return;
    }
    char extra[256];
    snprintf(extra, sizeof extra, "%sLocation: /login\r\n", clear);
    cs_respond(r, 303, NULL, NULL, 0, extra);
}

void cs_auth_me(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_auth_me)) return;
    cs_buf out = CS_BUF_INIT(256);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "user", r->user);
    cs_json_obj_end(&j);
    cs_respond_json(r, 200, &out);
    cs_buf_free(&out);
}

/* ---- the first admin ---- */

typedef struct boot {
    cs_job job;
    cs_auth *a;
    void (*done)(void *data, int err);
    void *data;
    int err;
    char password[2 * PASSWORD_BYTES + 1];
    char hash[crypto_pwhash_STRBYTES];
} boot;

static void boot_work(cs_job *job)
{
    boot *b = (boot *)job;
    b->err = cs_password_hash(b->hash, b->password);
}

/* The admin's row is in the database: the other loops, started next, see it. */
static void boot_committed(cs_store_query *q, void *data)
{
    boot *b = data;
    int status = q->status;
    cs_store_query_free(q);
    b->done(b->data, status < 0 && status != CS_ENOTFOUND ? status : 0);
    free(b);
}

static void boot_done(cs_job *job)
{
    boot *b = (boot *)job;
    cs_store_rec *rec = b->err ? NULL : cs_store_rec_new(CS_REC_USER);
    cs_store_query *q = rec ? cs_store_query_new(CS_Q_USERS, boot_committed, b) : NULL;
    if (q) {
        rec->user.name = cs_pool_strdup(&rec->pool, "admin");
        rec->user.password_hash = cs_pool_strdup(&rec->pool, b->hash);
        cs_store_write(b->a->gw->store, rec);
        cs_warn("auth: no users yet: created 'admin' with password %s (shown this once; "
                "change it with `callstream user add admin --password-stdin`)",
                b->password);
    } else {
        cs_store_rec_free(rec);
        cs_error("auth: cannot create the first user: %s", cs_strerror(b->err ? b->err : -ENOMEM));
    }
    sodium_memzero(b->password, sizeof b->password);
    if (q) {
        cs_store_query_run_in_order(b->a->gw->store, q);
        return;
    }
    b->done(b->data, b->err ? b->err : -ENOMEM);
    free(b);
}

static void on_users(cs_store_query *q, void *data)
{
    boot *b = data;
    int status = q->status;
    size_t n = q->nusers;
    cs_store_query_free(q);
    if (status < 0 || n > 0) {
        b->done(b->data, status);
        free(b);
        return;
    }
    cs_secret_new(b->password, PASSWORD_BYTES);
    b->job = (cs_job){.work = boot_work, .done = boot_done};
    cs_worker_post_force(b->a->worker, &b->job);
}

void cs_auth_bootstrap(cs_auth *a, void (*done)(void *data, int err), void *data)
{
    boot *b = calloc(1, sizeof *b);
    cs_store_query *q = b ? cs_store_query_new(CS_Q_USERS, on_users, b) : NULL;
    if (!q) {
        free(b);
        done(data, -ENOMEM);
        return;
    }
    b->a = a;
    b->done = done;
    b->data = data;
    cs_store_query_run(a->gw->store, q);
}

/* ---- life ---- */

int cs_auth_new(cs_auth **out, cs_gateway *gw)
{
    if (sodium_init() < 0) return CS_EBACKEND;
    cs_auth *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->gw = gw;
    a->waiting_end = &a->waiting;
    a->shared = &gw->shared->auth;
    a->nended = atomic_load(&a->shared->nended);
    int rc = cs_worker_start(&a->worker, "auth", CS_AUTH_PENDING_MAX, gw->mb, NULL);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void cs_auth_stop(cs_auth *a)
{
    if (!a || !a->worker) return;
    cs_worker_stop(a->worker);
    a->worker = NULL;
    a->checking = false;
    next_check(a); /* what still waits is dropped */
}

void cs_auth_free(cs_auth *a)
{
    if (!a) return;
    cs_auth_stop(a);
    free_all(&a->cache);
    sodium_memzero(a->dummy_hash, sizeof a->dummy_hash);
    free(a);
}
