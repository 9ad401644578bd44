/* The LLM agent (agent/llm.h): one conversation per two-way stream.
 *
 * Turns. A final transcript of the caller is asked at once (the fast final: the voice
 * activity detector's end of speech comes VAD_HANGOVER_MS later, too late for a reply
 * within half a second). If the caller speaks again before anything of the answer was
 * said — another final, or the detector's speech onset — the request is dropped and asked
 * again with all the caller's words once they pause: at their next final, or at the
 * detector's end of speech if no final comes (a cough). Once the answer is being said,
 * the caller's speech is barge-in (the call layer clears; `cleared` cancels the request),
 * and finals that come meanwhile wait for the answer's end.
 *
 * History. User messages are the caller's finals; assistant messages are what the caller
 * heard (the utterance's text when it played to its end, its heard words when it was cut),
 * tool calls with their results. It is bounded by LLM_HISTORY_TURNS and LLM_HISTORY_CHARS:
 * the oldest turns go first, whole (a tool call never loses its result); the system prompt
 * is sent every time.
 *
 * Failures (an HTTP error, LLM_TIMEOUT_MS without a token, a stream cut or malformed)
 * end the turn with what was complete of the answer said, then LLM_APOLOGY, and an event;
 * the call goes on. A connection that fails before any answer is tried once more; nothing
 * else is retried (half a reply said twice is worse than an apology). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent/agent.h"
#include "agent/chat.h"
#include "agent/llm_int.h"
#include "agent/voice.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#define NONE           ((size_t)-1)
#define BODY_MAX       (64u << 20) /* a request's JSON (the settings bound history) */
#define EVENT_MAX      (32u << 10) /* an event's detail: two quoted texts, escaped */
#define MSGS_HEADROOM  (4 + CS_LLM_TOOL_ROUNDS * (1 + CS_LLM_CALLS_MAX)) /* one turn */

static const char *const fail_labels[] = {
#define CS_LLM_FAIL_LABEL(name, label) label,
    CS_LLM_FAIL_MAP(CS_LLM_FAIL_LABEL)
#undef CS_LLM_FAIL_LABEL
};

const char *cs_llm_fail_label(enum cs_llm_fail f)
{
    return (unsigned)f < CS_LLM_FAIL_COUNT ? fail_labels[f] : "unknown";
}

enum state {
    IDLE,     /* nothing asked */
    ASKING,   /* a request streams */
    TOOLS,    /* the model's tool calls are running */
    ENDED,    /* end_call: the call hangs up once the goodbye has played */
    TRANSFER, /* transfer: the call goes to its target once this answer has played */
};

typedef struct llm llm;

/* An operator tool's POST in flight. */
typedef struct tool_req {
    llm *a;
    cs_fetch_req *req; /* NULL once answered */
    size_t msg;        /* its tool message */
    char name[CS_TOOL_NAME_MAX + 1];
    char *args;
    bool transfer; /* call control's transfer, answered by `transferred` */
} tool_req;

struct llm {
    cs_agent base;
    cs_llm *l;
    cs_fetch *fetch;
    cs_voice voice;
    uv_timer_t timer; /* the greeting; closing it frees the agent */
    bool closed;
    char stream_sid[CS_SID_MAX + 1];
    cs_log_ctx log;
    /* the conversation */
    llm_msg *msgs;
    size_t nmsgs, cap;
    size_t turn;    /* the user message of the turn being answered; NONE between turns */
    unsigned turns; /* numbered in events */
    cs_buf caller;  /* the caller's words not asked yet */
    /* the answer */
    enum state state;
    unsigned round; /* answers with tool calls in this turn */
    bool voiced;    /* something of this turn was given to the voice */
    cs_fetch_req *req;
    unsigned attempt;
    int status;
    bool any_byte, got_token;
    bool too_long; /* the answer passed CS_LLM_REPLY_MAX: the rest is not said */
    uint64_t asked_ns;
    llm_stream st;
    cs_buf err_body;
    size_t reply; /* the assistant message being streamed; NONE */
    tool_req tools[CS_LLM_CALLS_MAX];
    size_t ntools, tools_left;
};

static void ask(llm *a);
static void send_request(llm *a);

#define LOG(a, level, ...) CS_AGENT_LOG(&(a)->log, level, __VA_ARGS__)

/* ---- events ---- */

/* {"state": state, "agent": "llm", "turn": N, …}: open for the caller's keys. */
static void event_begin(llm *a, cs_json *j, cs_buf *b, const char *state)
{
    cs_buf_init(b, EVENT_MAX);
    cs_json_init(j, b);
    cs_json_obj(j);
    cs_json_kstr(j, "state", state);
    cs_json_kstr(j, "agent", "llm");
    cs_json_kuint(j, "turn", a->turns);
}

static void event_end(llm *a, cs_json *j, cs_buf *b)
{
    cs_json_obj_end(j);
    if (cs_json_end(j) == 0) cs_agent_event(&a->base, b->data);
    cs_buf_free(b);
}

/* ---- the conversation ---- */

static void msg_free(llm_msg *m)
{
    cs_buf_free(&m->text);
    free(m->calls);
}

/* A new message at the end; NULL when CS_LLM_MSGS_MAX are kept (not expected: ask()
 * keeps room for a turn). */
static llm_msg *push(llm *a, enum llm_role role)
{
    if (a->nmsgs == CS_LLM_MSGS_MAX) return NULL;
    if (a->nmsgs == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        llm_msg *m = realloc(a->msgs, cap * sizeof *m);
        if (!m) return NULL;
        a->msgs = m;
        a->cap = cap;
    }
    llm_msg *m = &a->msgs[a->nmsgs++];
    memset(m, 0, sizeof *m);
    m->role = role;
    m->tokens_in = m->tokens_out = -1;
    cs_buf_init(&m->text, role == LLM_USER   ? CS_LLM_CALLER_MAX
                          : role == LLM_TOOL ? CS_TOOL_RESULT_MAX + 256
                                             : CS_LLM_REPLY_MAX);
    return m;
}

/* Drops messages [from, nmsgs). */
static void pop_to(llm *a, size_t from)
{
    while (a->nmsgs > from) msg_free(&a->msgs[--a->nmsgs]);
}

static size_t msg_chars(const llm_msg *m)
{
    return m->text.len + (m->calls ? strlen(m->calls) : 0);
}

/* Drops the oldest turns (each from its user message, or the greeting, to the next user
 * message) while history is over its bounds; never the turn being asked. Between turns
 * only: no request or tool refers to a message by its index then. */
static void trim(llm *a)
{
    const cs_config *cfg = a->l->cfg;
    for (;;) {
        size_t turns = 0, chars = 0, end = 0;
        for (size_t i = 0; i < a->nmsgs; i++) {
            if (a->msgs[i].role == LLM_USER) {
                turns++;
                if (!end && i > 0) end = i;
            }
            chars += msg_chars(&a->msgs[i]);
        }
        bool over = turns > (size_t)cfg->llm_history_turns ||
                    chars > (size_t)cfg->llm_history_chars ||
                    a->nmsgs + MSGS_HEADROOM > CS_LLM_MSGS_MAX;
        if (!over || end == 0 || end > a->turn) return;
        for (size_t i = 0; i < end; i++) msg_free(&a->msgs[i]);
        memmove(a->msgs, a->msgs + end, (a->nmsgs - end) * sizeof *a->msgs);
        a->nmsgs -= end;
        a->turn -= end;
        a->l->stats.history_dropped++;
    }
}

/* The assistant message an utterance says, or NONE. */
static size_t said_by(const llm *a, uint32_t utt)
{
    for (size_t i = a->nmsgs; utt && i-- > 0;)
        if (a->msgs[i].role == LLM_ASSISTANT && a->msgs[i].utt == utt) return i;
    return NONE;
}

/* An utterance was heard (whole or cut): its message keeps what the caller heard, and an
 * event says it, unless nothing was said at all (a reply broken off in its first
 * sentence). */
static void heard(llm *a, const cs_heard *h, const char *text, size_t len)
{
    static const char *const said[] = {"reply", "greeting", "apology"};
    size_t i = said_by(a, h->utt);
    llm_msg *m = i != NONE ? &a->msgs[i] : NULL; /* NULL: dropped from history already */
    if (m) {
        cs_buf_reset(&m->text);
        cs_buf_append(&m->text, text, len); /* no longer than what was said */
        m->heard = true;
    }
    if (!h->total_ms && !len) return;
    cs_json j;
    cs_buf b;
    event_begin(a, &j, &b, "said");
    cs_json_kstr(&j, "said", said[m ? m->said : LLM_SAID_REPLY]);
    cs_agent_event_text(&j, "text", text, len);
    cs_json_kbool(&j, "cut", h->cut);
    cs_json_kuint(&j, "heardMs", h->heard_ms);
    cs_json_kuint(&j, "totalMs", h->total_ms);
    if (m && m->tokens_in >= 0) cs_json_kint(&j, "promptTokens", m->tokens_in);
    if (m && m->tokens_out >= 0) cs_json_kint(&j, "completionTokens", m->tokens_out);
    event_end(a, &j, &b);
}

/* ---- ending a turn ---- */

static void turn_end(llm *a)
{
    if (a->state != ENDED) a->state = IDLE;
    a->turn = NONE;
    a->reply = NONE;
    if (a->caller.len) ask(a);
}

/* Stops what the turn has in flight: the request, the tools (their messages say so), the
 * voice. */
static void cancel(llm *a, const char *why)
{
    if (a->req) {
        cs_fetch_cancel(a->req);
        a->req = NULL;
        a->l->stats.cancelled++;
        cs_agent_timer(&a->base, 0);
    }
    for (size_t i = 0; i < a->ntools; i++) {
        tool_req *t = &a->tools[i];
        if (t->req) {
            cs_fetch_cancel(t->req);
            t->req = NULL;
            cs_tool_error(&a->msgs[t->msg].text, "%s before the tool answered", why);
            a->msgs[t->msg].pending = false;
        }
        free(t->args);
        t->args = NULL;
    }
    a->ntools = a->tools_left = 0;
    cs_voice_stop(&a->voice);
}

/* The turn failed: what was complete of its answer is still said, then the apology. */
static void failed(llm *a, enum cs_llm_fail kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failed(llm *a, enum cs_llm_fail kind, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    a->l->stats.failures[kind]++;
    LOG(a, CS_LOG_WARN, "llm: turn %u: %s: %s", a->turns, cs_llm_fail_label(kind), why);
    cs_json j;
    cs_buf b;
    event_begin(a, &j, &b, "error");
    cs_json_kstr(&j, "kind", cs_llm_fail_label(kind));
    if (a->status) cs_json_kint(&j, "status", a->status);
    cs_json_kstr(&j, "message", why);
    event_end(a, &j, &b);
    if (a->reply != NONE) cs_voice_abandon(&a->voice);
    const char *sorry = a->l->cfg->llm_apology;
    llm_msg *m = sorry[0] && a->base.stream ? push(a, LLM_ASSISTANT) : NULL;
    if (m && cs_voice_say(&a->voice, sorry, strlen(sorry)) == 0) {
        m->said = LLM_SAID_APOLOGY;
        m->utt = a->voice.utt;
        cs_buf_puts(&m->text, sorry);
    } else if (m) {
        pop_to(a, a->nmsgs - 1);
    }
    turn_end(a);
}

/* ---- the model's tools ---- */

static void next_round(llm *a)
{
    if (++a->round == CS_LLM_TOOL_ROUNDS) a->l->stats.tool_rounds_limited++;
    send_request(a);
}

static void tool_event(llm *a, const char *name, const char *args, const llm_msg *result, bool ok)
{
    cs_json j;
    cs_buf b;
    event_begin(a, &j, &b, "tool");
    cs_json_kstr(&j, "tool", name);
    cs_agent_event_text(&j, "arguments", args, strlen(args));
    cs_agent_event_text(&j, "result", result->text.data ? result->text.data : "", result->text.len);
    cs_json_kbool(&j, "ok", ok);
    event_end(a, &j, &b);
}

static void tool_answered(void *data, const cs_fetch_result *res)
{
    tool_req *t = data;
    llm *a = t->a;
    t->req = NULL;
    llm_msg *m = &a->msgs[t->msg];
    bool ok = cs_tool_result(res, &m->text);
    m->pending = false;
    if (!ok) {
        a->l->stats.tool_failures++;
        LOG(a, CS_LOG_WARN, "llm: tool %s: %s", t->name, m->text.data);
    }
    tool_event(a, t->name, t->args, m, ok);
    free(t->args);
    t->args = NULL;
    if (--a->tools_left == 0) {
        a->ntools = 0;
        next_round(a);
    }
}

/* Calls an operator tool (signed POST); its answer comes to tool_answered. */
static int tool_start(llm *a, const cs_tool *tool, const llm_call *c, size_t msg)
{
    tool_req *t = &a->tools[a->ntools];
    *t = (tool_req){.a = a, .msg = msg};
    snprintf(t->name, sizeof t->name, "%s", tool->name);
    cs_tool_caller who = {a->base.call_sid, a->stream_sid};
    const char *args = c->args.data ? c->args.data : "";
    int rc = cs_tool_post(a->fetch, &a->l->tools, tool, &who, c->id, args, c->args.len,
                          tool_answered, t, &t->req);
    if (rc < 0) return rc;
    t->args = strdup(args);
    a->ntools++;
    a->tools_left++;
    a->l->stats.tool_calls++;
    return 0;
}

/* Call control's answer to the model's transfer: done, the call is on its way (the
 * stream ends); failed, the model is told why and asked again, to say so. */
static void transferred(cs_agent *base, int err, const char *message)
{
    llm *a = (llm *)base;
    tool_req *t = NULL;
    for (size_t i = 0; i < a->ntools && !t; i++)
        if (a->tools[i].transfer) t = &a->tools[i];
    if (a->state != TRANSFER || !t) return;
    llm_msg *m = &a->msgs[t->msg];
    m->pending = false;
    t->transfer = false;
    if (err == 0) {
        a->l->stats.transfers++;
        a->state = ENDED;
        cs_buf_reset(&m->text);
        cs_buf_puts(&m->text, "{\"ok\":true,\"result\":\"the call is transferred\"}");
    } else {
        a->l->stats.transfer_failures++;
        LOG(a, CS_LOG_WARN, "llm: transfer failed: %s", message);
        cs_tool_error(&m->text, "the transfer failed: %s", message);
        a->state = TOOLS;
    }
    tool_event(a, t->name, t->args ? t->args : "", m, err == 0);
    free(t->args);
    t->args = NULL;
    if (err == 0) return;
    if (--a->tools_left == 0) {
        a->ntools = 0;
        next_round(a);
    }
}

/* The model's transfer: to the target it names (never a number it wrote), once this
 * answer has played. 0: asked (its answer comes to `transferred`); else r's text says
 * why not. */
static int transfer_start(llm *a, const llm_call *c, size_t msg)
{
    llm_msg *r = &a->msgs[msg];
    const char *args = c->args.data ? c->args.data : "";
    const cs_transfer_target *target =
        cs_tools_transfer_target(&a->l->tools, args, c->args.len, &r->text);
    if (!target) {
        a->l->stats.transfer_failures++;
        return CS_EPARSE;
    }
    char reason[CS_TOOL_NAME_MAX + 32];
    snprintf(reason, sizeof reason, "llm transfer to %s", target->name);
    int rc = cs_agent_transfer(&a->base, target->number, reason, transferred);
    if (rc < 0) {
        a->l->stats.transfer_failures++;
        cs_tool_error(&r->text, "the transfer could not be asked: %s",
                      rc == CS_ESTATE ? "call control is busy with this call" : cs_strerror(rc));
        return rc;
    }
    tool_req *t = &a->tools[a->ntools++];
    *t = (tool_req){.a = a, .msg = msg, .transfer = true, .args = strdup(args)};
    snprintf(t->name, sizeof t->name, "%s", CS_TOOL_TRANSFER);
    a->tools_left++;
    LOG(a, CS_LOG_INFO, "llm: the model transfers the call to %s", target->name);
    return 0;
}

/* The tool_calls of the assistant's message, as the request gives them back. */
static char *calls_json(const llm_stream *st)
{
    cs_buf b = CS_BUF_INIT(CS_LLM_CALLS_MAX * (CS_LLM_ARGS_MAX + 512));
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_arr(&j);
    for (size_t i = 0; i < st->ncalls; i++) {
        const llm_call *c = &st->calls[i];
        cs_json_obj(&j);
        cs_json_kstr(&j, "id", c->id);
        cs_json_kstr(&j, "type", "function");
        cs_json_key(&j, "function");
        cs_json_obj(&j);
        cs_json_kstr(&j, "name", c->name);
        cs_json_key(&j, "arguments");
        cs_json_strn(&j, c->args.data ? c->args.data : "", c->args.len);
        cs_json_obj_end(&j);
        cs_json_obj_end(&j);
    }
    cs_json_arr_end(&j);
    if (cs_json_end(&j) < 0) {
        cs_buf_free(&b);
        return NULL;
    }
    size_t len;
    return cs_buf_detach(&b, &len);
}

/* What a relay's provider hands on when the model ends the call: the end_call
 * arguments, as the model wrote them. */
static void handoff(llm *a)
{
    const llm_stream *st = &a->st;
    const char *args = "";
    for (size_t i = 0; i < st->ncalls; i++)
        if (strcmp(st->calls[i].name, CS_TOOL_END_CALL) == 0 && st->calls[i].args.data)
            args = st->calls[i].args.data;
    cs_buf b = CS_BUF_INIT(6 * CS_LLM_ARGS_MAX + 64);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "by", "end_call");
    cs_json_kstr(&j, "arguments", args);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) cs_stream_handoff(a->base.stream, b.data);
    cs_buf_free(&b);
}

static bool is_transfer(const llm *a, const char *name)
{
    return a->l->tools.ntargets && strcmp(name, CS_TOOL_TRANSFER) == 0;
}

/* The answer called tools: run them (end_call hangs up, transfer puts the call through),
 * then ask again with their results. */
static void run_tools(llm *a)
{
    llm_stream *st = &a->st;
    /* A call without an id (some servers) gets one, so its result can name it. */
    for (size_t i = 0; i < st->ncalls; i++)
        if (!st->calls[i].id[0])
            snprintf(st->calls[i].id, sizeof st->calls[i].id, "call_%u_%u_%zu", a->turns, a->round,
                     i);
    if (a->reply != NONE) cs_voice_end(&a->voice); /* its text plays as said so far */
    llm_msg *m = a->reply != NONE ? &a->msgs[a->reply] : push(a, LLM_ASSISTANT);
    char *calls = calls_json(st);
    if (!m || !calls) {
        free(calls);
        failed(a, CS_LLM_FAIL_MALFORMED, "tool calls too large to keep");
        return;
    }
    m->calls = calls;
    a->reply = NONE;
    size_t first = a->nmsgs;
    bool hangup = false, asked = false;
    size_t xfer = SIZE_MAX; /* the transfer call, if any */
    for (size_t i = 0; i < st->ncalls; i++) {
        llm_msg *r = push(a, LLM_TOOL);
        if (!r) break;
        snprintf(r->call_id, sizeof r->call_id, "%s", st->calls[i].id);
        r->pending = true;
        hangup = hangup || strcmp(st->calls[i].name, CS_TOOL_END_CALL) == 0;
        if (xfer == SIZE_MAX && is_transfer(a, st->calls[i].name)) xfer = i;
    }
    /* A transfer first: while the call is being put through, nothing else runs. */
    if (!hangup && xfer != SIZE_MAX && first + xfer < a->nmsgs)
        asked = transfer_start(a, &st->calls[xfer], first + xfer) == 0;
    for (size_t i = 0; i < st->ncalls && first + i < a->nmsgs; i++) {
        const llm_call *c = &st->calls[i];
        llm_msg *r = &a->msgs[first + i];
        const cs_tool *tool = cs_tools_find(&a->l->tools, c->name);
        const char *args = c->args.data ? c->args.data : "";
        bool end = strcmp(c->name, CS_TOOL_END_CALL) == 0;
        int rc = 0;
        if (i == xfer && asked) continue; /* its answer comes to transferred */
        if (end)
            cs_buf_puts(&r->text, CS_TOOL_END_CALL_RESULT);
        else if (hangup)
            cs_tool_error(&r->text, "not run: the call is ending");
        else if (i == xfer)
            ; /* its text says why it was not asked */
        else if (asked)
            cs_tool_error(&r->text, "not run: the call is being transferred");
        else if (is_transfer(a, c->name))
            cs_tool_error(&r->text, "one transfer at a time");
        else if (!tool)
            cs_tool_error(&r->text, "there is no tool named %s", c->name);
        else if ((rc = tool_start(a, tool, c, first + i)) == 0)
            continue; /* its answer comes later */
        else if (rc == CS_EPARSE)
            cs_tool_error(&r->text, "the arguments are not a JSON object");
        else
            cs_tool_error(&r->text, "the tool could not be called: %s", cs_strerror(rc));
        r->pending = false;
        tool_event(a, c->name, args, r, end);
    }
    if (hangup) {
        a->l->stats.hangups++;
        LOG(a, CS_LOG_INFO, "llm: the model ends the call");
        a->state = ENDED;
        if (a->base.stream) {
            handoff(a);
            cs_agent_end_call(&a->base, "end_call");
        }
        return;
    }
    if (a->tools_left) {
        a->state = asked ? TRANSFER : TOOLS;
        return;
    }
    next_round(a);
}

/* ---- the request ---- */

static void on_text(void *data, const char *text, size_t len)
{
    llm *a = data;
    if (a->closed) return;
    if (!a->got_token) {
        a->got_token = true;
        cs_agent_timer(&a->base, 0);
        cs_agent_note(&a->base, CS_TURN_REPLY);
        cs_hist_observe(&a->l->stats.first_token, (double)(cs_mono_ns() - a->asked_ns) / 1e9);
    }
    if (a->reply == NONE) {
        llm_msg *m = push(a, LLM_ASSISTANT);
        if (!m) return;
        a->reply = a->nmsgs - 1;
    }
    llm_msg *m = &a->msgs[a->reply];
    if (a->too_long || cs_buf_append(&m->text, text, len) < 0) {
        if (!a->too_long) a->l->stats.replies_cut++;
        a->too_long = true;
        return;
    }
    int rc = cs_voice_feed(&a->voice, text, len);
    if (rc < 0) {
        LOG(a, CS_LOG_WARN, "llm: the reply cannot be said: %s", cs_strerror(rc));
        return;
    }
    m->utt = a->voice.utt;
    a->voiced = true;
}

static int on_data(void *data, int status, const char *p, size_t n)
{
    llm *a = data;
    a->status = status;
    a->any_byte = true;
    if (status < 200 || status >= 300) {
        size_t room = CS_LLM_ERROR_BODY_MAX - a->err_body.len;
        cs_buf_append(&a->err_body, p, n < room ? n : room);
        return 0;
    }
    int rc = llm_stream_feed(&a->st, p, n);
    return a->closed ? CS_ECLOSED : rc;
}

static void on_done(void *data, const cs_fetch_result *res)
{
    llm *a = data;
    a->req = NULL;
    cs_agent_timer(&a->base, 0);
    if (res->status) a->status = res->status;
    int status = a->status;
    uint32_t timeout = (uint32_t)a->l->cfg->llm_timeout_ms;
    if (status && (status < 200 || status >= 300)) {
        char msg[300];
        cs_chat_error_message(a->err_body.data ? a->err_body.data : "", a->err_body.len, msg,
                              sizeof msg);
        failed(a, CS_LLM_FAIL_HTTP, "HTTP %d: %s", status, msg);
    } else if (res->err == 0 && llm_stream_complete(&a->st)) {
        a->l->stats.replies++;
        if (a->st.ncalls && a->round >= CS_LLM_TOOL_ROUNDS) {
            failed(a, CS_LLM_FAIL_MALFORMED, "tool calls after %d rounds, with tool_choice none",
                   CS_LLM_TOOL_ROUNDS);
        } else if (a->st.ncalls) {
            run_tools(a);
        } else if (a->reply == NONE) {
            failed(a, CS_LLM_FAIL_MALFORMED, "an answer with no text and no tool call");
        } else {
            a->msgs[a->reply].tokens_in = a->st.prompt_tokens;
            a->msgs[a->reply].tokens_out = a->st.completion_tokens;
            /* Cut at max_tokens or CS_LLM_REPLY_MAX: its unfinished sentence is not said. */
            if (a->too_long || strcmp(a->st.finish, "length") == 0)
                cs_voice_abandon(&a->voice);
            else
                cs_voice_end(&a->voice);
            turn_end(a);
        }
    } else if (a->st.error[0]) {
        failed(a, CS_LLM_FAIL_MALFORMED, "%s", a->st.error);
    } else if (res->err == -ETIMEDOUT) {
        if (a->got_token)
            failed(a, CS_LLM_FAIL_TIMEOUT, "the stream stalled for %u ms", timeout);
        else
            failed(a, CS_LLM_FAIL_TIMEOUT, "no token within %u ms", timeout);
    } else if (status) {
        failed(a, CS_LLM_FAIL_CUT, "the stream ended before [DONE]%s%s", res->err ? ": " : "",
               res->err ? res->reason : "");
    } else if (!a->any_byte && a->attempt == 1) {
        /* Refused, reset or unreachable before any answer: once more. */
        a->l->stats.retries++;
        LOG(a, CS_LOG_INFO, "llm: %s; trying again", res->reason);
        send_request(a);
    } else {
        failed(a, CS_LLM_FAIL_CONNECT, "%s", res->reason);
    }
}

static void send_request(llm *a)
{
    cs_llm *l = a->l;
    a->attempt++;
    a->status = 0;
    a->any_byte = a->got_token = a->too_long = false;
    a->reply = NONE;
    llm_stream_free(&a->st);
    llm_stream_init(&a->st, on_text, a);
    cs_buf_reset(&a->err_body);
    cs_buf body = CS_BUF_INIT(BODY_MAX);
    int rc = llm_request_body(&body, l, a->msgs, a->nmsgs, a->round < CS_LLM_TOOL_ROUNDS);
    const char *headers[] = {"Content-Type: application/json", "Accept: text/event-stream",
                             l->auth};
    cs_fetch_opts o = {
        .method = "POST",
        .url = l->chat_url,
        .headers = headers,
        .nheaders = l->auth ? 3 : 2,
        .body = body.data,
        .len = body.len,
        .timeout_ms = CS_LLM_REQUEST_MS,
        .idle_timeout_ms = (uint32_t)l->cfg->llm_timeout_ms,
        .on_data = on_data,
        .on_done = on_done,
        .data = a,
    };
    if (rc == 0) rc = cs_fetch_start(a->fetch, &o, &a->req);
    cs_buf_free(&body);
    if (rc < 0) {
        a->req = NULL;
        failed(a, CS_LLM_FAIL_CONNECT, "the request could not start: %s", cs_strerror(rc));
        return;
    }
    l->stats.requests++;
    a->asked_ns = cs_mono_ns();
    a->state = ASKING;
    /* The first token's deadline: keep-alive comments or an empty first chunk reset the
     * stream's idle time, not this. */
    cs_agent_timer(&a->base, (uint32_t)l->cfg->llm_timeout_ms);
}

/* No token within LLM_TIMEOUT_MS of the request. */
static void llm_timer(cs_agent *base)
{
    llm *a = (llm *)base;
    if (a->state != ASKING || a->got_token || !a->req) return;
    cs_fetch_cancel(a->req);
    a->req = NULL;
    failed(a, CS_LLM_FAIL_TIMEOUT, "no token within %u ms", (unsigned)a->l->cfg->llm_timeout_ms);
}

/* A new turn with the caller's words. */
static void ask(llm *a)
{
    if (a->state != IDLE || !a->caller.len || !a->base.stream) return;
    llm_msg *m = push(a, LLM_USER);
    if (!m) return;
    cs_buf_append(&m->text, a->caller.data, a->caller.len);
    cs_buf_reset(&a->caller);
    a->turn = a->nmsgs - 1;
    a->turns++;
    a->round = 0;
    a->attempt = 0;
    a->voiced = false;
    trim(a);
    m = &a->msgs[a->turn]; /* moved by trim */
    cs_json j;
    cs_buf b;
    event_begin(a, &j, &b, "user");
    cs_agent_event_text(&j, "text", m->text.data, m->text.len);
    event_end(a, &j, &b);
    send_request(a);
}

/* The caller went on speaking before anything was said: the request is dropped and its
 * words wait, with what comes next, for the caller to pause. */
static void hold(llm *a)
{
    if (a->state != ASKING || a->voiced || a->round > 0) return;
    cs_fetch_cancel(a->req);
    a->req = NULL;
    cs_agent_timer(&a->base, 0);
    a->l->stats.cancelled++;
    a->l->stats.reasks++;
    const llm_msg *u = &a->msgs[a->turn];
    cs_buf words = CS_BUF_INIT(CS_LLM_CALLER_MAX);
    cs_buf_append(&words, u->text.data, u->text.len);
    if (a->caller.len) {
        cs_buf_putc(&words, ' ');
        cs_buf_append(&words, a->caller.data, a->caller.len);
    }
    cs_buf_reset(&a->caller);
    cs_buf_append(&a->caller, words.data, words.len);
    cs_buf_free(&words);
    pop_to(a, a->turn);
    a->state = IDLE;
    a->turn = NONE;
    a->reply = NONE;
}

/* ---- the call's side ---- */

static void greet(uv_timer_t *t)
{
    llm *a = t->data;
    const char *text = a->l->cfg->llm_greeting;
    if (!a->base.stream || !text[0]) return;
    llm_msg *m = push(a, LLM_ASSISTANT);
    if (!m) return;
    int rc = cs_voice_say(&a->voice, text, strlen(text));
    if (rc < 0) {
        LOG(a, CS_LOG_WARN, "llm: the greeting cannot be said: %s", cs_strerror(rc));
        pop_to(a, a->nmsgs - 1);
        return;
    }
    m->said = LLM_SAID_GREETING;
    m->utt = a->voice.utt;
    cs_buf_puts(&m->text, text);
}

static void voice_failed(cs_agent *base, int err)
{
    llm *a = (llm *)base;
    cs_json j;
    cs_buf b;
    event_begin(a, &j, &b, "error");
    cs_json_kstr(&j, "kind", "tts");
    cs_json_kstr(&j, "message", cs_strerror(err));
    event_end(a, &j, &b);
}

static int llm_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    cs_llm *l = cs_agent_state(env, &cs_agent_llm);
    /* Checked at start-up for AGENT=llm; a relay's provider speaks. */
    if (!l || (!env->tts_ops && !cs_stream_relay(s))) return CS_ECONFIG;
    llm *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->l = l;
    a->fetch = env->fetch;
    cs_voice_init(&a->voice, &a->base, env->tts_ops, env->tts);
    a->voice.fallback = env->tts_fallback;
    a->voice.failed = voice_failed;
    snprintf(a->stream_sid, sizeof a->stream_sid, "%s", s->sid);
    a->log = (cs_log_ctx){a->base.call_sid, a->stream_sid}; /* the call layer sets it */
    a->turn = a->reply = NONE;
    cs_buf_init(&a->caller, CS_LLM_CALLER_MAX);
    cs_buf_init(&a->err_body, CS_LLM_ERROR_BODY_MAX);
    llm_stream_init(&a->st, on_text, a);
    uv_timer_init(env->loop, &a->timer);
    a->timer.data = a;
    /* A relay's provider said the greeting for us (cs_stream_greeting): it is in the
     * history before the caller's first words can come. */
    uint32_t said = cs_stream_greeting(s);
    llm_msg *m = said && env->cfg->llm_greeting[0] ? push(a, LLM_ASSISTANT) : NULL;
    if (m) {
        m->said = LLM_SAID_GREETING;
        m->utt = said;
        cs_buf_puts(&m->text, env->cfg->llm_greeting);
    } else if (env->cfg->llm_greeting[0]) {
        uv_timer_start(&a->timer, greet, 0, 0);
    }
    *out = &a->base;
    return 0;
}

static void llm_transcript(cs_agent *base, const cs_transcript *t)
{
    llm *a = (llm *)base;
    if (!t->final || a->state == ENDED || a->state == TRANSFER) return;
    const char *p = t->text;
    size_t n = strlen(p);
    while (n && (unsigned char)p[n - 1] <= ' ') n--;
    while (n && (unsigned char)*p <= ' ') p++, n--;
    if (!n) return;
    size_t keep = a->caller.len;
    if ((a->caller.len && cs_buf_putc(&a->caller, ' ') < 0) ||
        cs_buf_append(&a->caller, p, n) < 0) {
        cs_buf_truncate(&a->caller, keep);
        LOG(a, CS_LOG_WARN, "llm: the caller's words over %u bytes: a final is left out",
            CS_LLM_CALLER_MAX);
        return;
    }
    hold(a); /* asked already and nothing said yet: ask again with both */
    ask(a);
}

static void llm_speech(cs_agent *base, bool started, uint64_t pos)
{
    (void)pos;
    llm *a = (llm *)base;
    if (started)
        hold(a);
    else
        ask(a); /* words held, and no final came: the caller has paused */
}

static void llm_played(cs_agent *base, const cs_heard *h)
{
    heard((llm *)base, h, h->full, h->full_len);
}

static void llm_cleared(cs_agent *base, const cs_heard *h, enum cs_clear_why why)
{
    llm *a = (llm *)base;
    heard(a, h, h->text, h->text_len);
    if (why == CS_CLEAR_END || a->state == IDLE || a->state == ENDED || a->state == TRANSFER) {
        cs_voice_stop(&a->voice);
        return;
    }
    /* The caller cut in: nothing more of this turn is said or asked. */
    cancel(a, "the caller interrupted");
    turn_end(a);
}

static void freed(uv_handle_t *h)
{
    llm *a = h->data;
    pop_to(a, 0);
    free(a->msgs);
    cs_buf_free(&a->caller);
    cs_buf_free(&a->err_body);
    llm_stream_free(&a->st);
    cs_agent_closed(&a->base);
    free(a);
}

static void llm_close(cs_agent *base)
{
    llm *a = (llm *)base;
    a->closed = true;
    cancel(a, "the call ended");
    cs_voice_free(&a->voice);
    /* Freed after this callback: one of ours may be on the stack (a reply that ended the
     * stream). */
    uv_close((uv_handle_t *)&a->timer, freed);
}

static const char *llm_welcome(const cs_config *cfg)
{
    return cfg->llm_greeting[0] ? cfg->llm_greeting : NULL;
}

/* ---- start-up ---- */

static int settings(cs_llm *l, const cs_agent_env *env, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    if (!env->tts_ops && !cs_agents_text_mode(cfg)) {
        cs_buf_printf(
            err, "AGENT=llm speaks: TTS cannot be none (but with STREAM_MODE=relay or gather)");
        return CS_ECONFIG;
    }
    if (!cfg->llm_model[0]) {
        cs_buf_printf(err, "LLM_MODEL: the model to ask is needed with LLM_URL");
        return CS_ECONFIG;
    }
    int rc = cs_chat_endpoint(cfg, &l->chat_url, &l->auth, err);
    if (rc < 0) return rc;
    if (cfg->llm_temperature[0]) {
        char *end;
        l->temperature = strtod(cfg->llm_temperature, &end);
        if (*end || end == cfg->llm_temperature || !(l->temperature >= 0 && l->temperature <= 2)) {
            cs_buf_printf(err, "LLM_TEMPERATURE: '%s' is not a number from 0 to 2",
                          cfg->llm_temperature);
            return CS_ECONFIG;
        }
        l->temperature_set = true;
    }
    return cs_tools_load(&l->tools, cfg, env->control, err);
}

static void llm_cleanup(void *state)
{
    cs_llm *l = state;
    cs_tools_free(&l->tools);
    free(l->chat_url);
    free(l->auth);
    free(l);
}

static void llm_metrics(void *state, cs_buf *out)
{
    if (!state) return; /* no call can have it */
    const cs_llm_stats *ls = &((const cs_llm *)state)->stats;
    cs_prom_counter(out, "callstream_llm_requests_total",
                    "chat completions asked (tool rounds and retries included)",
                    (double)ls->requests);
    cs_prom_counter(out, "callstream_llm_replies_total", "chat completions answered to the end",
                    (double)ls->replies);
    const char *kinds[CS_LLM_FAIL_COUNT];
    for (int i = 0; i < CS_LLM_FAIL_COUNT; i++) kinds[i] = cs_llm_fail_label((enum cs_llm_fail)i);
    cs_prom_family(out, "callstream_llm_failures_total", "counter",
                   "chat completions failed (the caller hears the apology), by kind", "kind", kinds,
                   ls->failures, CS_LLM_FAIL_COUNT);
    static const char *const whys[] = {"retried", "cancelled", "reasked"};
    uint64_t counts[] = {ls->retries, ls->cancelled, ls->reasks};
    cs_prom_family(
        out, "callstream_llm_requests_ended_total", "counter",
        "chat completions tried again (no answer at all), cancelled (barge-in, the call's end, "
        "the caller going on), of those asked again with the caller's next words",
        "outcome", whys, counts, 3);
    cs_prom_counter(out, "callstream_llm_tool_calls_total", "the operator's tools called",
                    (double)ls->tool_calls);
    cs_prom_counter(out, "callstream_llm_tool_failures_total",
                    "tool calls without a 2xx answer in time", (double)ls->tool_failures);
    cs_prom_counter(out, "callstream_llm_tool_rounds_limited_total",
                    "turns that reached the limit of answers with tool calls",
                    (double)ls->tool_rounds_limited);
    cs_prom_counter(out, "callstream_llm_hangups_total", "calls the model ended (end_call)",
                    (double)ls->hangups);
    cs_prom_counter(out, "callstream_llm_transfers_total",
                    "calls the model transferred (transfer, done by the provider)",
                    (double)ls->transfers);
    cs_prom_counter(out, "callstream_llm_transfer_failures_total",
                    "the model's transfers that failed (it was told why)",
                    (double)ls->transfer_failures);
    cs_prom_counter(out, "callstream_llm_history_dropped_total",
                    "old turns dropped from conversations (LLM_HISTORY_TURNS, LLM_HISTORY_CHARS)",
                    (double)ls->history_dropped);
    cs_prom_counter(out, "callstream_llm_replies_cut_total",
                    "answers longer than the agent says, cut", (double)ls->replies_cut);
    cs_prom_hist(out, "callstream_llm_first_token_seconds",
                 "a chat completion asked to its first token", &ls->first_token);
}

static int llm_setup(const cs_agent_env *env, void **state, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    if (!cfg->llm_url[0]) {
        if (strcmp(cfg->agent, "llm") != 0) return 0; /* no call can have it */
        cs_buf_printf(err, "AGENT=llm needs LLM_URL, e.g. http://127.0.0.1:11434/v1");
        return CS_ECONFIG;
    }
    cs_llm *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->cfg = cfg;
    cs_hist_init(&l->stats.first_token, cs_hist_bounds_latency, cs_hist_nbounds_latency);
    int rc = settings(l, env, err);
    if (rc < 0) {
        llm_cleanup(l);
        return rc;
    }
    *state = l;
    cs_info("llm: %s, model %s, %zu tool(s) besides end_call%s", l->chat_url, cfg->llm_model,
            l->tools.n, l->auth ? ", with an API key" : "");
    return 0;
}

static int llm_say(cs_agent *base, const char *text, size_t len)
{
    return cs_voice_say(&((llm *)base)->voice, text, len);
}

const cs_agent_ops cs_agent_llm = {
    .name = "llm",
    .needs = "LLM_URL and LLM_MODEL",
    .help = "answers with an OpenAI-compatible chat model (LLM_URL), streamed into its voice",
    .speaks_text = true,
    .interruptible = true,
    .welcome = llm_welcome,
    .open = llm_open,
    .setup = llm_setup,
    .cleanup = llm_cleanup,
    .metrics = llm_metrics,
    .speech = llm_speech,
    .transcript = llm_transcript,
    .played = llm_played,
    .cleared = llm_cleared,
    .timer = llm_timer,
    .say = llm_say,
    .close = llm_close,
};
