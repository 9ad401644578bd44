/* Outbound HTTP through libcurl's multi interface on the libuv loop; see fetch.h.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one uv_poll_t each) and
 * when to call it back (CURLMOPT_TIMERFUNCTION: one uv_timer_t); we hand it every event
 * with curl_multi_socket_action and collect finished transfers. curl forbids calls into
 * the multi handle from inside its callbacks, and a user's callback may cancel, start or
 * close: so removals and additions asked for while we are inside (`depth`) wait until the
 * outermost call returns (settle), and a cancelled request gets no callback from then on. */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "net/fetch.h"

typedef struct sock sock;
struct sock { /* a socket curl asked us to watch */
    uv_poll_t poll;
    cs_fetch *f;
    curl_socket_t fd;
    int events; /* what curl wants: UV_READABLE, UV_WRITABLE */
    sock *prev, *next;
};

struct cs_fetch_req {
    cs_fetch *f;
    CURL *easy;
    CURLU *url;
    struct curl_slist *headers;
    cs_buf body; /* the buffered answer */
    int (*on_data)(void *data, int status, const char *p, size_t n);
    void (*on_header)(void *data, const char *line, size_t n);
    void (*on_done)(void *data, const cs_fetch_result *res);
    void *data;
    uv_timer_t idle; /* closed last: its close callback frees the request */
    uint32_t idle_ms;
    uint64_t last_rx_ms; /* loop time of the last byte received (or the start) */
    int status;
    int fail;                     /* our own error, set before curl ends the transfer */
    bool added;                   /* in the multi handle */
    bool stopped;                 /* ended or cancelled: no callback any more */
    bool paused;                  /* by on_data: curl holds the bytes it offered */
    char reason[CURL_ERROR_SIZE]; /* curl's error buffer */
    char why[96];                 /* ours, for `fail` */
    cs_fetch_req *prev, *next;    /* in flight */
};

struct cs_fetch {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout; its close callback frees the client */
    char *ca_file;
    bool verify;
    cs_fetch_req *reqs; /* in flight, newest first */
    sock *socks;        /* watched */
    size_t count;
    unsigned depth; /* inside curl or a user callback */
    bool reap;      /* requests stopped or failed while inside: end them on the way out */
    bool unadded;   /* requests started while inside: add them on the way out */
    bool closing;
    cs_fetch_stats stats;
};

/* curl's results as the project's codes; what is not here is CS_EBACKEND. */
static const struct {
    CURLcode code;
    int err;
} errors[] = {
    {CURLE_OPERATION_TIMEDOUT, -ETIMEDOUT},
    {CURLE_COULDNT_CONNECT, -ECONNREFUSED}, /* the connect's errno when curl has it */
    {CURLE_COULDNT_RESOLVE_HOST, UV_EAI_NONAME},
    {CURLE_COULDNT_RESOLVE_PROXY, UV_EAI_NONAME},
    {CURLE_SSL_CONNECT_ERROR, CS_ETLS},
    {CURLE_PEER_FAILED_VERIFICATION, CS_ETLS},
    {CURLE_SSL_CERTPROBLEM, CS_ETLS},
    {CURLE_SSL_CIPHER, CS_ETLS},
    {CURLE_SSL_CACERT_BADFILE, CS_ETLS},
    {CURLE_SSL_ISSUER_ERROR, CS_ETLS},
    {CURLE_FILESIZE_EXCEEDED, -EMSGSIZE},
    {CURLE_PARTIAL_FILE, CS_ECLOSED},
    {CURLE_GOT_NOTHING, CS_ECLOSED},
    {CURLE_RECV_ERROR, CS_ECLOSED},
    {CURLE_SEND_ERROR, CS_ECLOSED},
    {CURLE_WEIRD_SERVER_REPLY, -EPROTO},
    {CURLE_BAD_CONTENT_ENCODING, -EPROTO},
    {CURLE_HTTP2, -EPROTO},
    {CURLE_HTTP2_STREAM, -EPROTO},
    {CURLE_TOO_MANY_REDIRECTS, CS_ELIMIT},
    {CURLE_UNSUPPORTED_PROTOCOL, -EPROTO}, /* not HTTP, or a redirect elsewhere */
    {CURLE_OUT_OF_MEMORY, -ENOMEM},
};

static int error_of(cs_fetch_req *r, CURLcode code)
{
    if (code == CURLE_OK) return 0;
    if (code == CURLE_COULDNT_CONNECT) {
        long os = 0;
        curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os);
        if (os > 0) return -(int)os;
    }
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++)
        if (errors[i].code == code) return errors[i].err;
    return CS_EBACKEND;
}

static void settle(cs_fetch *f);

/* Our own error for the request, reported when it ends. */
static void fail(cs_fetch_req *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(cs_fetch_req *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->fail = err;
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

/* ---- sockets and the timer ---- */

static void sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void unwatch(sock *s)
{
    cs_fetch *f = s->f;
    if (s->prev)
        s->prev->next = s->next;
    else
        f->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void drive(cs_fetch *f, curl_socket_t fd, int flags);

/* An error on the socket (libuv stops the poll then) is for curl to find by reading and
 * writing: an answer may wait in front of a reset, and CURL_CSELECT_ERR would drop it. */
static void on_poll(uv_poll_t *p, int status, int events)
{
    sock *s = p->data;
    if (status < 0) {
        events = s->events;
        uv_poll_start(p, s->events, on_poll);
    }
    int flags = (events & UV_READABLE ? CURL_CSELECT_IN : 0) |
                (events & UV_WRITABLE ? CURL_CSELECT_OUT : 0);
    drive(s->f, s->fd, flags);
}

/* CURLMOPT_SOCKETFUNCTION. The poll stops at once on removal (curl closes the socket right
 * after), so a new socket with the same number can be watched before the old handle's
 * close callback has run. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    cs_fetch *f = userp;
    sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            unwatch(s);
            curl_multi_assign(f->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        int rc = s ? uv_poll_init_socket(f->loop, &s->poll, fd) : -ENOMEM;
        if (rc < 0) { /* that request ends (settle); -1 would stop the whole multi handle */
            free(s);
            char *r = NULL;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, &r);
            if (r) {
                fail((cs_fetch_req *)r, rc, "cannot watch a socket: %s", cs_strerror(rc));
                f->reap = true;
            }
            return 0;
        }
        s->poll.data = s;
        s->f = f;
        s->fd = fd;
        s->next = f->socks;
        if (f->socks) f->socks->prev = s;
        f->socks = s;
        curl_multi_assign(f->multi, fd, s);
    }
    s->events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, s->events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "soon", which is the next loop turn
 * (curl must not be called from inside this callback). */
static int on_curl_timer(CURLM *multi, long ms, void *userp)
{
    (void)multi;
    cs_fetch *f = userp;
    if (ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, on_timer, (uint64_t)ms, 0);
    return 0;
}

/* ---- requests ---- */

static void req_freed(uv_handle_t *h)
{
    free(h->data);
}

/* Frees a request that is out of the multi handle (or never got in). */
static void release(cs_fetch_req *r)
{
    cs_fetch *f = r->f;
    if (r->prev)
        r->prev->next = r->next;
    else
        f->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    f->count--;
    if (r->easy) curl_easy_cleanup(r->easy);
    curl_url_cleanup(r->url);
    curl_slist_free_all(r->headers);
    cs_buf_free(&r->body);
    uv_close((uv_handle_t *)&r->idle, req_freed);
}

static void discard(cs_fetch_req *r)
{
    if (r->added) curl_multi_remove_handle(r->f->multi, r->easy);
    release(r);
}

/* The transfer is over: tell the owner (unless it cancelled), then free. */
static void end(cs_fetch_req *r, CURLcode code)
{
    cs_fetch *f = r->f;
    long status = 0, connects = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
    f->stats.connections += (uint64_t)connects;
    int err = r->fail ? r->fail : error_of(r, code);
    if (r->added) curl_multi_remove_handle(f->multi, r->easy);
    r->added = false;
    if (!r->stopped) {
        r->stopped = true;
        if (err == 0) {
            f->stats.answered++;
        } else {
            f->stats.failed++;
            f->stats.timeouts += err == -ETIMEDOUT;
            f->stats.too_large += err == -EMSGSIZE;
        }
        curl_off_t after = -1;
        if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &after) != CURLE_OK || after <= 0)
            after = -1;
        cs_fetch_result res = {
            .status = (int)status, .err = err, .reason = "", .retry_after_s = (int64_t)after};
        if (err < 0) {
            res.reason = r->fail ? r->why : r->reason[0] ? r->reason : curl_easy_strerror(code);
            cs_debug("fetch: %s", res.reason);
        } else if (!r->on_data) {
            res.body = r->body.data ? r->body.data : "";
            res.len = r->body.len;
        }
        r->on_done(r->data, &res);
    }
    release(r);
}

/* Finished transfers, in the order curl reports them. */
static void collect(cs_fetch *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        char *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &r);
        end((cs_fetch_req *)r, m->data.result);
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    cs_fetch_req *r = userdata;
    size_t len = size * n;
    r->last_rx_ms = uv_now(r->f->loop);
    if (r->on_header && !r->stopped) {
        size_t k = len;
        while (k && (p[k - 1] == '\n' || p[k - 1] == '\r')) k--;
        r->on_header(r->data, p, k);
        if (r->stopped) return 0; /* cancelled from inside */
    }
    return len;
}

/* CURLOPT_WRITEFUNCTION: a short count ends the transfer (CURLE_WRITE_ERROR, replaced by
 * `fail`). */
static size_t on_write(char *p, size_t size, size_t n, void *userdata)
{
    cs_fetch_req *r = userdata;
    size_t len = size * n;
    if (r->stopped) return 0;
    r->last_rx_ms = uv_now(r->f->loop);
    if (!r->status) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        r->status = (int)status;
    }
    if (r->on_data) {
        int rc = r->on_data(r->data, r->status, p, len);
        if (r->stopped) return 0; /* cancelled from inside */
        if (rc == CS_FETCH_PAUSE) {
            r->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        if (rc < 0) {
            fail(r, rc, "the receiver stopped the answer: %s", cs_strerror(rc));
            return 0;
        }
        return len;
    }
    if (cs_buf_append(&r->body, p, len) < 0) {
        fail(r, -EMSGSIZE, "answer larger than %zu bytes", r->body.max);
        return 0;
    }
    return len;
}

/* idle_timeout_ms: the timer runs at the last byte plus the idle time, moved on lazily. */
static void on_idle(uv_timer_t *t)
{
    cs_fetch_req *r = t->data;
    cs_fetch *f = r->f;
    if (r->stopped) return;
    uint64_t quiet = r->paused ? 0 : uv_now(f->loop) - r->last_rx_ms;
    if (quiet < r->idle_ms) {
        uv_timer_start(t, on_idle, r->idle_ms - quiet, 0);
        return;
    }
    fail(r, -ETIMEDOUT, "no byte received for %u ms", (unsigned)r->idle_ms);
    f->depth++;
    end(r, CURLE_OPERATION_TIMEDOUT);
    f->depth--;
    settle(f);
}

/* One event for curl, then what it finished, then what callbacks asked for meanwhile. */
static void drive(cs_fetch *f, curl_socket_t fd, int flags)
{
    int running;
    f->depth++;
    curl_multi_socket_action(f->multi, fd, flags, &running);
    collect(f);
    f->depth--;
    settle(f);
}

static void fetch_freed(uv_handle_t *h)
{
    cs_fetch *f = h->data;
    free(f->ca_file);
    free(f);
    curl_global_cleanup();
}

static void teardown(cs_fetch *f)
{
    while (f->reqs) discard(f->reqs); /* stopped and counted by cs_fetch_close */
    curl_multi_cleanup(f->multi);     /* closes the kept connections */
    f->multi = NULL;
    while (f->socks) unwatch(f->socks);
    uv_close((uv_handle_t *)&f->timer, fetch_freed);
}

static int add(cs_fetch_req *r)
{
    if (curl_multi_add_handle(r->f->multi, r->easy) != CURLM_OK) return CS_EBACKEND;
    r->added = true;
    return 0;
}

/* On the way out of the outermost callback: what was asked for from inside. */
static void settle(cs_fetch *f)
{
    while (!f->depth && !f->closing && (f->reap || f->unadded)) {
        f->reap = f->unadded = false;
        for (cs_fetch_req *r = f->reqs, *next; r; r = next) {
            next = r->next; /* stays: what on_done below cancels is only marked */
            if (r->stopped) {
                discard(r);
                continue;
            }
            if (!r->added && add(r) < 0) fail(r, CS_EBACKEND, "curl refused the request");
            if (r->fail) { /* failed outside a transfer: ends here */
                f->depth++;
                end(r, CURLE_OK);
                f->depth--;
            }
        }
    }
    if (!f->depth && f->closing && f->multi) teardown(f);
}

/* ---- the client ---- */

int cs_fetch_open(cs_fetch **out, uv_loop_t *loop)
{
    *out = NULL;
    /* The threaded resolver keeps name lookups off the loop; a build without one would
     * block it for as long as a DNS server takes. */
    if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS)) {
        cs_error("fetch: this libcurl resolves names synchronously; it would block the loop");
        return CS_EBACKEND;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return CS_EBACKEND;
    cs_fetch *f = calloc(1, sizeof *f);
    CURLM *multi = f ? curl_multi_init() : NULL;
    if (!multi) {
        free(f);
        curl_global_cleanup();
        return -ENOMEM;
    }
    f->loop = loop;
    f->multi = multi;
    f->verify = true;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)CS_FETCH_MAX_IDLE_CONNS);
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    *out = f;
    return 0;
}

void cs_fetch_close(cs_fetch *f)
{
    if (!f || f->closing) return;
    f->closing = true;
    for (cs_fetch_req *r = f->reqs; r; r = r->next) {
        if (!r->stopped) f->stats.cancelled++;
        r->stopped = true;
    }
    settle(f);
}

int cs_fetch_tls(cs_fetch *f, const char *ca_file, bool verify)
{
    char *copy = ca_file ? strdup(ca_file) : NULL;
    if (ca_file && !copy) return -ENOMEM;
    free(f->ca_file);
    f->ca_file = copy;
    f->verify = verify;
    return 0;
}

size_t cs_fetch_count(const cs_fetch *f)
{
    return f ? f->count : 0;
}

const cs_fetch_stats *cs_fetch_stats_get(const cs_fetch *f)
{
    return &f->stats;
}

/* ---- requests ---- */

/* Whether `url` is an absolute http(s) URL, as curl reads it. */
static int parse_url(const char *url, CURLU **out)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    if (!u) return -ENOMEM;
    int rc = url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                     curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                     (!strcmp(scheme, "http") || !strcmp(scheme, "https"))
                 ? 0
                 : CS_EPARSE;
    curl_free(scheme);
    if (rc < 0)
        curl_url_cleanup(u);
    else
        *out = u;
    return rc;
}

/* "Name: value" without CR, LF or NUL (no header smuggled into the request). */
static bool header_ok(const char *h)
{
    const char *colon = h ? strchr(h, ':') : NULL;
    return colon && colon > h && !strpbrk(h, "\r\n");
}

static int configure(cs_fetch_req *r, const cs_fetch_opts *o)
{
    cs_fetch *f = r->f;
    CURL *e = r->easy;
    bool ok = true;
#define SET(opt, val) (ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK)
    SET(CURLOPT_CURLU, r->url);
    SET(CURLOPT_PRIVATE, r);
    SET(CURLOPT_NOSIGNAL, 1L);
    /* Without it, removing a request whose name is still being resolved joins the
     * resolver thread: the loop would wait for the DNS server. */
    SET(CURLOPT_QUICK_EXIT, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    unsigned redirects =
        o->max_redirects < CS_FETCH_MAX_REDIRECTS ? o->max_redirects : CS_FETCH_MAX_REDIRECTS;
    SET(CURLOPT_FOLLOWLOCATION, redirects ? 1L : 0L);
    SET(CURLOPT_MAXREDIRS, (long)redirects);
    SET(CURLOPT_USERAGENT, "callstream/" CS_VERSION);
    SET(CURLOPT_HTTPHEADER, r->headers);
    SET(CURLOPT_ERRORBUFFER, r->reason);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, r);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        (long)(o->connect_timeout_ms ? o->connect_timeout_ms : CS_FETCH_CONNECT_TIMEOUT_MS));
    SET(CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    if (!o->on_data) /* refused from its Content-Length before any body is read */
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->body.max);
    if (o->body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->len);
        SET(CURLOPT_COPYPOSTFIELDS, (const char *)o->body);
    }
    if (o->method && !strcmp(o->method, "HEAD"))
        SET(CURLOPT_NOBODY, 1L);
    else if (o->method && strcmp(o->method, o->body ? "POST" : "GET"))
        SET(CURLOPT_CUSTOMREQUEST, o->method);
    if (f->ca_file) SET(CURLOPT_CAINFO, f->ca_file);
    if (!f->verify) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
#undef SET
    return ok ? 0 : CS_EBACKEND;
}

int cs_fetch_start(cs_fetch *f, const cs_fetch_opts *o, cs_fetch_req **out)
{
    if (out) *out = NULL;
    if (f->closing) return CS_ECLOSED;
    if (f->count >= CS_FETCH_MAX_REQUESTS) {
        f->stats.refused++;
        return CS_EFULL;
    }
    for (size_t i = 0; i < o->nheaders; i++)
        if (!header_ok(o->headers[i])) return CS_EPARSE;
    CURLU *url = NULL;
    int rc = parse_url(o->url, &url);
    if (rc < 0) return rc;
    cs_fetch_req *r = calloc(1, sizeof *r);
    if (!r) {
        curl_url_cleanup(url);
        return -ENOMEM;
    }
    r->f = f;
    r->url = url;
    r->on_data = o->on_data;
    r->on_header = o->on_header;
    r->on_done = o->on_done;
    r->data = o->data;
    r->idle_ms = o->idle_timeout_ms;
    r->last_rx_ms = uv_now(f->loop);
    cs_buf_init(&r->body, o->max_body ? o->max_body : CS_FETCH_MAX_BODY_DEFAULT);
    uv_timer_init(f->loop, &r->idle);
    r->idle.data = r;
    r->next = f->reqs;
    if (f->reqs) f->reqs->prev = r;
    f->reqs = r;
    f->count++;
    /* An empty Expect: a POST waits for no 100 Continue. */
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; h && i < o->nheaders; i++) {
        struct curl_slist *more = curl_slist_append(h, o->headers[i]);
        if (!more) curl_slist_free_all(h);
        h = more;
    }
    r->headers = h;
    r->easy = h ? curl_easy_init() : NULL;
    rc = r->easy ? configure(r, o) : -ENOMEM;
    if (rc == 0 && f->depth == 0) rc = add(r);
    if (rc < 0) {
        release(r);
        return rc;
    }
    f->unadded |= !r->added; /* started from inside: added on the way out */
    f->stats.requests++;
    if (r->idle_ms) uv_timer_start(&r->idle, on_idle, r->idle_ms, 0);
    if (out) *out = r;
    return 0;
}

bool cs_fetch_url_ok(const char *url)
{
    CURLU *u = NULL;
    if (parse_url(url, &u) < 0) return false;
    curl_url_cleanup(u);
    return true;
}

void cs_fetch_resume(cs_fetch_req *r)
{
    if (!r || r->stopped || !r->paused) return;
    cs_fetch *f = r->f;
    r->paused = false;
    r->last_rx_ms = uv_now(f->loop); /* the idle time counts from here */
    /* curl offers the bytes it held from inside this (on_data), and wakes the transfer
     * through the timer for the rest. */
    f->depth++;
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    f->reap |= r->fail != 0; /* on_data stopped it from in there */
    f->depth--;
    /* What on_data asked for (an end, a cancel, a start) happens on the next turn: no
     * on_done from inside this call. */
    if (f->reap || f->unadded) uv_timer_start(&f->timer, on_timer, 0, 0);
}

void cs_fetch_cancel(cs_fetch_req *r)
{
    if (!r || r->stopped) return;
    cs_fetch *f = r->f;
    r->stopped = true;
    f->stats.cancelled++;
    if (f->depth) {
        f->reap = true; /* removed once out of curl and the callbacks */
        return;
    }
    discard(r);
}
