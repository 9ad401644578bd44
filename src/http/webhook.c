/* The transcript webhook: every final segment is POSTed as JSON to
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
#include "net/client.h"

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
    char *body;
    size_t len;
    unsigned attempts;
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

static void on_answer(void *data, int status, const char *body, size_t len, int err)
{
    (void)body;
    (void)len;
    delivery *d = data;
    cs_webhook *h = d->hook;
    h->in_flight--;
    if (status >= 200 && status < 300) {
        h->stats.delivered++;
        finish(d);
    } else if (++d->attempts >= ATTEMPTS || h->gw->draining) {
        h->stats.failed++;
        cs_error("webhook: giving up on a transcript segment after %u attempts (last: %s)",
                 d->attempts, status ? "HTTP error" : cs_strerror(err));
        finish(d);
    } else {
        h->stats.retries++;
        uint32_t wait = cs_backoff_ms(d->attempts, BACKOFF_MS, BACKOFF_MAX_MS);
        if (d->attempts == 1)
            cs_warn("webhook: %s answered %d%s%s; retrying with backoff",
                    h->gw->cfg->transcript_webhook_url, status, err ? ": " : "",
                    err ? cs_strerror(err) : "");
        d->stage = RETRYING;
        uv_timer_start(&d->retry, on_retry, wait, 0);
    }
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
         * an old delivery (the time is in the signed text, not only in a header). */
        uint8_t mac[CS_SHA256_LEN];
        char hex[2 * CS_SHA256_LEN + 1], ts[24], headers[320];
        int tn = snprintf(ts, sizeof ts, "%lld.", (long long)(cs_wall_ms() / 1000));
        const void *parts[] = {ts, d->body};
        size_t lens[] = {(size_t)tn, d->len};
        cs_hmac_sha256(mac, h->secret, strlen(h->secret), parts, lens, 2);
        cs_hex(hex, mac, sizeof mac);
        snprintf(headers, sizeof headers,
                 "Content-Type: application/json\r\nX-Callstream-Event: transcript.final\r\n"
                 "X-Callstream-Timestamp: %.*s\r\nX-Callstream-Signature: sha256=%s\r\n",
                 tn - 1, ts, hex);
        h->in_flight++;
        if (cs_client_request(h->gw->net, "POST", url, headers, d->body, d->len, TIMEOUT_MS,
                              on_answer, d) < 0)
            on_answer(d, 0, NULL, 0, CS_EBACKEND);
    }
}

int cs_webhook_new(cs_webhook **out, cs_gateway *gw)
{
    cs_webhook *h = calloc(1, sizeof *h);
    if (!h) return -ENOMEM;
    h->gw = gw;
    snprintf(h->secret, sizeof h->secret, "%s", gw->cfg->transcript_webhook_secret);
    *out = h;
    return 0;
}

void cs_webhook_send(cs_webhook *h, const char *json, size_t len)
{
    if (h->queued >= QUEUE_MAX) {
        h->stats.dropped++;
        cs_error("webhook: %zu deliveries waiting; a transcript segment is not sent", h->queued);
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
    size_t left = 0;
    /* In flight ones end with their connections (closed at shutdown), as failures. */
    for (delivery *d = h->all, *next; d; d = next) {
        next = d->next_all;
        if (d->stage != SENDING) {
            left++;
            finish(d);
        }
    }
    h->head = h->tail = NULL;
    if (left)
        cs_warn("webhook: %zu transcript segment(s) not delivered at shutdown (kept in the store)",
                left);
}

void cs_webhook_free(cs_webhook *h)
{
    free(h);
}
