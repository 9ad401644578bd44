/* Gather conversations (see gather.h): each is a CS_MODE_GATHER stream whose sink keeps
 * what the agent says until a request takes it. One timer decides when an answer is
 * ready (the agent quiet after speaking, or the deadline), expires idle conversations,
 * and delivers every answer, so none is ever given inside the call that asked. */
#include "call/gather.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "call/call_int.h"
#include "call/talk.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#define TICK_MS 20

typedef struct conv conv;

struct conv {
    cs_gather *g;
    char call_sid[CS_SID_MAX + 1];
    cs_stream *s; /* NULL once it ended */
    /* what the agent said since the last answer: NUL-ended pieces in `text` */
    cs_buf text;
    struct {
        bool play;
        unsigned loop;
        size_t off;
    } items[CS_GATHER_ITEMS_MAX];
    size_t nitems;
    bool hangup;     /* the agent (or the call) ended it */
    bool spoke;      /* an utterance ended since the request came */
    bool said_end;   /* the last piece's utterance ended: the next text is a new piece */
    bool opening;    /* the first answer: the agent quiet is enough */
    bool heard;      /* the caller said or keyed something this turn */
    unsigned silent; /* answers in a row where neither side said anything */
    cs_gather_cb cb; /* a request waits for the answer: NULL if none */
    void *data;
    uint64_t asked_ms; /* when it came */
    uint64_t quiet_ms; /* the agent's last output (or the request) */
    uint64_t opened_ms;
    uint64_t touched_ms; /* the last request or answer */
    unsigned turns;
    conv *prev, *next;
};

struct cs_gather {
    cs_calls *calls;
    cs_gather_opts o;
    uv_timer_t *timer; /* NULL once stopped */
    conv *head;
    size_t n;
    struct {
        char sid[CS_SID_MAX + 1];
        enum cs_end_reason why;
    } fates[CS_GATHER_FATES];
    size_t nfates; /* written so far; the ring's next slot is nfates % CS_GATHER_FATES */
    cs_gather_stats stats;
};

static uint64_t now_ms(const cs_gather *g)
{
    return g->calls->clock_ms();
}

/* ---- what the agent says (the stream's sink) ---- */

static int refuse_audio(void *data, const uint8_t *ulaw, size_t n)
{
    (void)data, (void)ulaw, (void)n;
    return CS_ESTATE;
}

static int refuse_mark(void *data, cs_str name)
{
    (void)data, (void)name;
    return CS_ESTATE;
}

static int refuse_clear(void *data)
{
    (void)data;
    return CS_ESTATE;
}

/* A new piece (NUL-ended in c->text): CS_ELIMIT past the bounds (counted). */
static int piece_new(conv *c, bool play, unsigned loop)
{
    if (c->nitems == CS_GATHER_ITEMS_MAX || c->text.len + 1 > CS_GATHER_TEXT_MAX) {
        c->g->stats.dropped++;
        return CS_ELIMIT;
    }
    c->items[c->nitems].play = play;
    c->items[c->nitems].loop = loop;
    c->items[c->nitems].off = c->text.len;
    c->nitems++;
    return cs_buf_putc(&c->text, '\0');
}

/* Appends to the last piece (before its NUL); a piece left empty is taken back, so
 * every piece has text. */
static int piece_append(conv *c, cs_str s)
{
    if (c->text.len + s.n > CS_GATHER_TEXT_MAX) {
        c->g->stats.dropped++;
        if (c->text.len == c->items[c->nitems - 1].off + 1) c->text.len = c->items[--c->nitems].off;
        return CS_ELIMIT;
    }
    c->text.len--; /* its NUL */
    cs_buf_append(&c->text, s.p, s.n);
    return cs_buf_putc(&c->text, '\0');
}

static int sink_relay(void *data, const cs_relay_out *m)
{
    conv *c = data;
    c->quiet_ms = now_ms(c->g);
    switch (m->type) {
    case CS_RELAY_TEXT:
        if (m->last) c->spoke = c->said_end = true;
        if (!m->text.n) return 0;
        /* Each utterance is a piece of its own. */
        bool fresh = !c->nitems || c->items[c->nitems - 1].play || c->said_end;
        c->said_end = false;
        if (fresh && piece_new(c, false, 0) < 0) return 0;
        piece_append(c, m->text); /* past the bound: dropped and counted, the call goes on */
        return 0;
    case CS_RELAY_PLAY:
        c->spoke = true;
        if (piece_new(c, true, m->loop) == 0) piece_append(c, m->text);
        return 0;
    case CS_RELAY_END:
        c->hangup = true;
        return 0;
    case CS_RELAY_DIGITS:
        break; /* nothing sends keys to the caller between turns */
    }
    return CS_ESTATE;
}

static void conv_end_stream(conv *c, enum cs_end_reason why)
{
    cs_stream *s = c->s;
    if (!s) return;
    c->s = NULL;
    cs_stream_end(s, why);
}

/* The agent hangs up (after `end`): the stream ends; the answer says so. */
static void sink_close(void *data)
{
    conv *c = data;
    c->hangup = true;
    conv_end_stream(c, CS_END_HANGUP);
}

/* ---- events ---- */

static void gather_event(conv *c, cs_buf *detail)
{
    cs_calls *calls = c->g->calls;
    if (c->s)
        NOTIFY(calls, event, c->s->call, c->s, CS_EVENT_GATHER, cs_wall_ms(), detail->data);
    else
        cs_calls_event(calls, c->call_sid, CS_EVENT_GATHER, detail->data);
}

/* ---- answering ---- */

static void conv_free(conv *c)
{
    cs_gather *g = c->g;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next) c->next->prev = c->prev;
    g->n--;
    if (g->o.shared) cs_quota_give(g->o.shared);
    cs_buf_free(&c->text);
    free(c);
}

/* Hands what was said to the waiting request; a conversation that is over goes. */
static void answer(conv *c, bool late)
{
    cs_gather *g = c->g;
    cs_gather_item items[CS_GATHER_ITEMS_MAX];
    for (size_t i = 0; i < c->nitems; i++)
        items[i] =
            (cs_gather_item){c->items[i].play, c->text.data + c->items[i].off, c->items[i].loop};
    /* A caller who says nothing to an agent that says nothing: a line left open (Twilio
     * would go on asking for ever). */
    c->silent = c->nitems == 0 && !c->heard ? c->silent + 1 : 0;
    bool silence = c->silent >= CS_GATHER_SILENT_MAX && !c->hangup && c->s;
    if (silence) {
        g->stats.silent++;
        const cs_log_ctx *prev = cs_log_set_ctx(&c->s->log);
        cs_info("gather: %u answers in a row with nothing said; hanging up", c->silent);
        cs_log_set_ctx(prev);
        c->hangup = true;
    }
    cs_gather_reply r = {c->hangup || !c->s ? CS_GATHER_HANGUP : CS_GATHER_LISTEN, items, c->nitems,
                         late};
    g->stats.answers[r.next]++;
    if (late) g->stats.late++;
    cs_buf detail = CS_BUF_INIT(CS_GATHER_TEXT_MAX * 6 + 256);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "answer");
    cs_json_kstr(&j, "next", r.next == CS_GATHER_HANGUP ? "hangup" : "listen");
    cs_json_key(&j, "said");
    cs_json_arr(&j);
    for (size_t i = 0; i < r.nitems; i++) {
        cs_json_obj(&j);
        cs_json_kstr(&j, items[i].play ? "play" : "say", items[i].text);
        cs_json_obj_end(&j);
    }
    cs_json_arr_end(&j);
    cs_json_kbool(&j, "late", late);
    if (silence) cs_json_kbool(&j, "silence", true);
    cs_json_kuint(&j, "waitedMs", now_ms(g) - c->asked_ms);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) gather_event(c, &detail);
    cs_buf_free(&detail);

    cs_gather_cb cb = c->cb;
    void *data = c->data;
    c->cb = NULL;
    c->touched_ms = now_ms(g);
    cb(data, &r); /* the views are still ours */
    c->nitems = 0;
    cs_buf_reset(&c->text);
    if (r.next == CS_GATHER_HANGUP) {
        conv_end_stream(c, CS_END_HANGUP);
        conv_free(c);
    }
}

/* Whether the agent's turn is over: it hung up, or spoke (or, opening, said what it
 * says first) and has been quiet since. */
static bool turn_over(const conv *c, uint64_t now)
{
    if (c->hangup || !c->s) return true;
    if (cs_stream_talking(c->s) || now - c->quiet_ms < CS_GATHER_SETTLE_MS) return false;
    return c->opening || c->spoke || c->nitems > 0;
}

static void tick(cs_gather *g)
{
    uint64_t now = now_ms(g);
    for (conv *c = g->head, *next; c; c = next) {
        next = c->next;
        if (c->s && now - c->opened_ms >= g->o.max_ms) {
            const cs_log_ctx *prev = cs_log_set_ctx(&c->s->log);
            cs_warn("gather: the conversation reached MAX_CALL_S; ending it");
            cs_log_set_ctx(prev);
            c->hangup = true;
            conv_end_stream(c, CS_END_MAX_DURATION);
        }
        if (c->cb) {
            bool late = now - c->asked_ms >= g->o.reply_ms;
            if (turn_over(c, now) || late) answer(c, late && !turn_over(c, now));
        } else if (now - c->touched_ms >= g->o.idle_ms) {
            g->stats.expired++;
            if (c->s) {
                const cs_log_ctx *prev = cs_log_set_ctx(&c->s->log);
                cs_info("gather: no request for %u ms; the conversation ends", g->o.idle_ms);
                cs_log_set_ctx(prev);
            }
            conv_end_stream(c, CS_END_IDLE);
            conv_free(c);
        }
    }
    if (!g->head && g->timer) uv_timer_stop(g->timer);
}

static void on_tick(uv_timer_t *t)
{
    tick(t->data);
}

static void schedule(cs_gather *g)
{
    if (g->timer && !uv_is_active((uv_handle_t *)g->timer))
        uv_timer_start(g->timer, on_tick, TICK_MS, TICK_MS);
}

static conv *find(const cs_gather *g, const char *call_sid)
{
    for (conv *c = g->head; c; c = c->next)
        if (strcmp(c->call_sid, call_sid) == 0) return c;
    return NULL;
}

static void wait_answer(conv *c, cs_gather_cb cb, void *data)
{
    c->cb = cb;
    c->data = data;
    c->asked_ms = c->quiet_ms = c->touched_ms = now_ms(c->g);
    c->spoke = false;
    schedule(c->g);
}

/* ---- conversations ---- */

int cs_gather_open(cs_gather *g, const cs_pevent *start, const char *why, cs_gather_cb cb,
                   void *data)
{
    cs_str call = start->start.call_id;
    if (call.n < 2 || call.n > CS_SID_MAX) return -EINVAL;
    char sid[CS_SID_MAX + 1];
    cs_str_copy(sid, sizeof sid, call);
    if (find(g, sid)) return CS_ESTATE;
    if (!g->timer) return CS_ESTATE; /* stopped */
    if (g->o.shared ? !cs_quota_take(g->o.shared) : g->n >= g->o.max) {
        g->stats.refused_full++;
        return CS_ELIMIT;
    }
    conv *c = calloc(1, sizeof *c);
    if (!c) {
        if (g->o.shared) cs_quota_give(g->o.shared);
        return -ENOMEM;
    }
    c->g = g;
    snprintf(c->call_sid, sizeof c->call_sid, "%s", sid);
    cs_buf_init(&c->text, CS_GATHER_TEXT_MAX + CS_GATHER_ITEMS_MAX);
    c->opened_ms = now_ms(g);
    c->opening = true;
    wait_answer(c, cb, data);
    c->next = g->head;
    if (g->head) g->head->prev = c;
    g->head = c;
    g->n++;

    /* Its stream: "GA" and the rest of the CallSid. */
    char stream_sid[CS_SID_MAX + 1];
    snprintf(stream_sid, sizeof stream_sid, "GA%s", sid + 2);
    cs_pevent ev = *start;
    ev.start.stream_id = ev.stream_id = cs_str_of(stream_sid);
    ev.start.tracks = CS_TRACK_BIT(CS_TRACK_INBOUND);
    cs_stream_sink sink = {refuse_audio, refuse_mark, refuse_clear, sink_close, c, sink_relay};
    cs_stream *s = NULL;
    int rc = cs_stream_begin(g->calls, &ev, CS_MODE_GATHER, false, &sink, c, NULL, &s);
    if (rc == 0) {
        c->s = s;
        /* nobody to talk with: none, it failed, or it speaks audio only (echo) */
        if (!s->agent || !s->agent->ops->speaks_text) rc = CS_ENOTFOUND;
    }
    if (rc < 0) {
        c->cb = NULL;
        conv_end_stream(c, CS_END_HANGUP);
        conv_free(c);
        return rc;
    }
    g->stats.opened++;
    cs_buf detail = CS_BUF_INIT(256);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "begin");
    cs_json_kstr(&j, "reason", why);
    cs_json_kstr(&j, "agent", s->agent->ops->name);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) gather_event(c, &detail);
    cs_buf_free(&detail);
    return 0;
}

int cs_gather_turn(cs_gather *g, const char *call_sid, const char *speech, double confidence,
                   const char *digits, cs_gather_cb cb, void *data)
{
    conv *c = find(g, call_sid);
    if (!c) {
        g->stats.unknown++;
        return CS_ENOTFOUND;
    }
    if (c->cb) return CS_ESTATE;
    size_t nd = digits ? strlen(digits) : 0;
    if (nd > CS_GATHER_DIGITS_MAX || strspn(digits ? digits : "", "0123456789*#") != nd)
        return -EINVAL;
    /* A provider's words are never this long: the rest is cut, between characters. */
    char cut[CS_GATHER_SPEECH_MAX + 1];
    if (speech && strlen(speech) > CS_GATHER_SPEECH_MAX) {
        size_t n = CS_GATHER_SPEECH_MAX;
        while (n && ((unsigned char)speech[n] & 0xC0) == 0x80) n--;
        memcpy(cut, speech, n);
        cut[n] = '\0';
        speech = cut;
        g->stats.dropped++;
    }
    g->stats.turns++;
    c->turns++;
    c->opening = false;
    c->heard = (speech && *speech) || nd > 0;
    wait_answer(c, cb, data);
    cs_buf detail = CS_BUF_INIT(6 * (speech ? strlen(speech) : 0) + 256);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "turn");
    cs_json_kuint(&j, "turn", c->turns);
    if (speech && *speech) cs_json_kstr(&j, "speech", speech);
    if (speech && *speech && confidence >= 0) cs_json_kdouble(&j, "confidence", confidence);
    if (nd) cs_json_kstr(&j, "digits", digits);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) gather_event(c, &detail);
    cs_buf_free(&detail);
    if (!c->s) return 0; /* it ended: the answer says so */

    /* The caller's turn reaches the agent as a relay's would: words, then keys. */
    const cs_log_ctx *prev = cs_log_set_ctx(&c->s->log);
    if (speech && *speech) {
        cs_pevent ev = {.type = CS_PEV_PROMPT, .seq = -1};
        ev.prompt.text = cs_str_of(speech);
        ev.prompt.last = true;
        cs_stream_event(c->s, &ev, NULL);
    }
    for (size_t i = 0; i < nd && c->s; i++) {
        cs_pevent ev = {.type = CS_PEV_DTMF, .seq = -1};
        ev.dtmf.digit = digits[i];
        cs_stream_event(c->s, &ev, NULL);
    }
    cs_log_set_ctx(prev);
    return 0;
}

void cs_gather_end(cs_gather *g, const char *call_sid)
{
    conv *c = find(g, call_sid);
    if (!c) return;
    c->hangup = true;
    conv_end_stream(c, CS_END_STOP);
    if (!c->cb) conv_free(c); /* else the timer answers the request, and it goes */
}

bool cs_gather_has(const cs_gather *g, const char *call_sid)
{
    return find(g, call_sid) != NULL;
}

/* ---- how streams fared ---- */

static void stream_ended(void *o, const cs_stream *s, enum cs_end_reason why)
{
    cs_gather *g = o;
    if (s->mode == CS_MODE_GATHER) return;
    size_t k = g->nfates++ % CS_GATHER_FATES;
    snprintf(g->fates[k].sid, sizeof g->fates[k].sid, "%s", s->call->sid);
    g->fates[k].why = why;
}

enum cs_gather_fate cs_gather_fate(const cs_gather *g, const char *call_sid,
                                   enum cs_end_reason *why)
{
    const cs_call *call = cs_calls_call(g->calls, cs_str_of(call_sid));
    for (size_t i = 0; call && i < call->nstreams; i++)
        if (call->streams[i]->mode != CS_MODE_GATHER) return CS_FATE_LIVE;
    size_t n = g->nfates < CS_GATHER_FATES ? g->nfates : CS_GATHER_FATES;
    for (size_t i = 1; i <= n; i++) { /* the latest first */
        size_t k = (g->nfates - i) % CS_GATHER_FATES;
        if (strcmp(g->fates[k].sid, call_sid) == 0) {
            *why = g->fates[k].why;
            return CS_FATE_ENDED;
        }
    }
    return CS_FATE_UNKNOWN;
}

/* ---- the set ---- */

int cs_gather_new(cs_gather **out, cs_calls *calls, void *loop, const cs_gather_opts *o)
{
    cs_gather *g = calloc(1, sizeof *g);
    uv_timer_t *t = g ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        free(g);
        return -ENOMEM;
    }
    g->calls = calls;
    g->o = *o;
    cs_call_observer obs = {.stream_ended = stream_ended, .data = g};
    int rc = cs_calls_observe(calls, &obs);
    if (rc < 0) {
        free(t);
        free(g);
        return rc;
    }
    uv_timer_init(loop, t); /* cannot fail */
    t->data = g;
    g->timer = t;
    *out = g;
    return 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void cs_gather_stop(cs_gather *g)
{
    if (!g || !g->timer) return;
    while (g->head) {
        conv *c = g->head;
        c->hangup = true;
        conv_end_stream(c, CS_END_SHUTDOWN);
        if (c->cb)
            answer(c, false); /* frees it */
        else
            conv_free(c);
    }
    uv_close((uv_handle_t *)g->timer, free_handle);
    g->timer = NULL;
}

void cs_gather_free(cs_gather *g)
{
    free(g);
}

size_t cs_gather_active(const cs_gather *g)
{
    return g ? g->n : 0;
}

const cs_gather_stats *cs_gather_stats_get(const cs_gather *g)
{
    return &g->stats;
}
