/* The operator's webhook: every final segment, and each call's summary, is POSTed as JSON to
 * TRANSCRIPT_WEBHOOK_URL, signed with HMAC-SHA256 of TRANSCRIPT_WEBHOOK_SECRET over
 * "<unix seconds>.<body>" (the seconds also in X-Callstream-Timestamp), and
 * retried with exponential backoff and jitter until it is taken (2xx) or the attempts
 * run out. Deliveries wait in a bounded queue on the loop; nothing here blocks a call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "http/gateway.h"
#include "net/fetch.h"

#define QUEUE_MAX      10000 /* deliveries waiting or in flight; more are dropped (logged) */
#define IN_FLIGHT_MAX  8     /* requests at once */
#define ATTEMPTS       8     /* then the segment is given up (it stays in the store) */
#define BACKOFF_MS     500   /* first retry; doubles, capped below */
#define BACKOFF_MAX_MS 60000
#define TIMEOUT_MS     10000

typedef struct delivery delivery;
enum stage { WAITING, SENDING, RETRYING };

struct delivery {
    enum stage stage;
    cs_webhook *hook;
    const char *event; /* static */
    char *body;
    size_t len;
    unsigned attempts;
    cs_fetch_req *req; /* while SENDING */
    uv_timer_t retry;
    delivery *next;                /* waiting line */
    delivery *prev_all, *next_all; /* every delivery, for shutdown */
};

struct cs_webhook {
    cs_gateway *gw;
    char secret[256];
    delivery *head, *tail; /* waiting to be sent */
    delivery *all;
    size_t queued; /* waiting, in flight or retrying */
    size_t in_flight;
    bool stopped; /* sends nothing more */
    cs_webhook_stats stats;
};

static void pump(cs_webhook *h);

static void freed(uv_handle_t *t)
{
    delivery *d = t->data;
    free(d->body);
    free(d);
}

static void finish(delivery *d)
{
    cs_webhook *h = d->hook;
    h->queued--;
    if (d->prev_all)
        d->prev_all->next_all = d->next_all;
    else
        h->all = d->next_all;
    if (d->next_all) d->next_all->prev_all = d->prev_all;
    uv_close((uv_handle_t *)&d->retry, freed);
}

static void enqueue(cs_webhook *h, delivery *d)
{
    d->stage = WAITING;
    d->next = NULL;
    if (h->tail)
        h->tail->next = d;
    else
        h->head = d;
    h->tail = d;
}

static void on_retry(uv_timer_t *t)
{
    delivery *d = t->data;
    enqueue(d->hook, d);
    pump(d->hook);
}

/* One attempt is over: taken, given up, or retried after a backoff. */
static void attempted(delivery *d, const cs_fetch_result *res)
{
    cs_webhook *h = d->hook;
    h->in_flight--;
    d->req = NULL;
    if (res->status >= 200 && res->status < 300 && res->err == 0) {
        h->stats.delivered++;
        finish(d);
    } else if (++d->attempts >= ATTEMPTS || h->gw->draining) {
        h->stats.failed++;
        cs_error("webhook: giving up on a %s delivery after %u attempts (last: %s)", d->event,
                 d->attempts, res->err ? res->reason : "HTTP error");
        finish(d);
    } else {
        h->stats.retries++;
        uint32_t wait = cs_backoff_ms(d->attempts, BACKOFF_MS, BACKOFF_MAX_MS);
        if (d->attempts == 1)
            cs_warn("webhook: %s answered %d%s%s; retrying with backoff",
                    h->gw->cfg->transcript_webhook_url, res->status, res->err ? ": " : "",
                    res->reason);
        d->stage = RETRYING;
        uv_timer_start(&d->retry, on_retry, wait, 0);
    }
}

static void on_answer(void *data, const cs_fetch_result *res)
{
    delivery *d = data;
    cs_webhook *h = d->hook;
    attempted(d, res);
    pump(h);
}

static void pump(cs_webhook *h)
{
    const char *url = h->gw->cfg->transcript_webhook_url;
    while (h->head && h->in_flight < IN_FLIGHT_MAX) {
        delivery *d = h->head;
        h->head = d->next;
        if (!h->head) h->tail = NULL;
        d->stage = SENDING;
        /* Each attempt is signed over its own time, so a receiver can refuse replays of
         * an old delivery. */
        cs_signed_headers sig;
        cs_sign_body(&sig, h->secret, d->body, d->len, cs_wall_ms() / 1000);
        char event[96];
        snprintf(event, sizeof event, "X-Callstream-Event: %s", d->event);
        const char *headers[] = {"Content-Type: application/json", event, sig.timestamp,
                                 sig.signature};
        cs_fetch_opts o = {
            .method = "POST",
            .url = url,
            .headers = headers,
            .nheaders = sizeof headers / sizeof *headers,
            .body = d->body,
            .len = d->len,
            .timeout_ms = TIMEOUT_MS,
            .on_done = on_answer,
            .data = d,
        };
        h->in_flight++;
        int rc = cs_fetch_start(h->gw->fetch, &o, &d->req);
        if (rc < 0) { /* an attempt that failed at once: retried later like a refusal */
            cs_fetch_result res = {.err = rc, .reason = cs_strerror(rc)};
            attempted(d, &res);
        }
    }
}

int cs_webhook_new(cs_webhook **out, cs_gateway *gw, cs_buf *err)
{
    if (!cs_fetch_url_ok(gw->cfg->transcript_webhook_url)) {
        cs_buf_printf(err, "TRANSCRIPT_WEBHOOK_URL: '%s' is not an http(s) URL",
                      gw->cfg->transcript_webhook_url);
        return CS_ECONFIG;
    }
    cs_webhook *h = calloc(1, sizeof *h);
    if (!h) return -ENOMEM;
    h->gw = gw;
    snprintf(h->secret, sizeof h->secret, "%s", gw->cfg->transcript_webhook_secret);
    *out = h;
    return 0;
}

void cs_webhook_send(cs_webhook *h, const char *event, const char *json, size_t len)
{
    if (h->stopped) {
        h->stats.dropped++;
        return;
    }
    if (h->queued >= QUEUE_MAX) {
        h->stats.dropped++;
        cs_error("webhook: %zu deliveries waiting; a %s is not sent", h->queued, event);
        return;
    }
    delivery *d = calloc(1, sizeof *d);
    char *body = d ? malloc(len) : NULL;
    if (!body) {
        free(d);
        h->stats.dropped++;
        return;
    }
    memcpy(body, json, len);
    d->hook = h;
    d->event = event;
    d->body = body;
    d->len = len;
    uv_timer_init(h->gw->loop, &d->retry);
    d->retry.data = d;
    h->queued++;
    d->next_all = h->all;
    if (h->all) h->all->prev_all = d;
    h->all = d;
    enqueue(h, d);
    pump(h);
}

size_t cs_webhook_pending(const cs_webhook *h)
{
    return h ? h->queued : 0;
}

const cs_webhook_stats *cs_webhook_stats_get(const cs_webhook *h)
{
    return &h->stats;
}

void cs_webhook_stop(cs_webhook *h)
{
    if (!h) return;
    h->stopped = true;
    size_t left = 0;
    for (delivery *d = h->all, *next; d; d = next) {
        next = d->next_all;
        if (d->stage == SENDING) {
            cs_fetch_cancel(d->req);
            h->in_flight--;
        }
        left++;
        finish(d);
    }
    h->head = h->tail = NULL;
    if (left) cs_warn("webhook: %zu item(s) not delivered at shutdown (kept in the store)", left);
}

void cs_webhook_free(cs_webhook *h)
{
    free(h);
}
