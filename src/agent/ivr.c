/* The IVR agent (AGENT=ivr): runs a menu of agent/ivr_menu.h on a call. Each node's text
 * is spoken with the agents' voice; keys come from the caller's DTMF, spoken choices from
 * a session of the STT engine opened per node with the node's phrases as its grammar
 * (so what it recognises is one of them, or nothing), timed by the voice activity
 * detector's onset and offset. Webhooks are signed POSTs through the agents' HTTP client;
 * transfers and hang-ups go through the call layer's call control (call/talk.h);
 * messages are kept as WAV files under DATA_DIR/messages, written on libuv's thread pool.
 * Everything the caller does, and every node, becomes an `agent` event. The menus are
 * read and checked at start-up (setup), never during a call. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/ivr_menu.h"
#include "agent/voice.h"
#include "audio/g711.h"
#include "audio/wav.h"
#include "call/control.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/path.h"
#include "core/prom.h"

#define MENUS_MAX       256         /* in IVR_DIR */
#define STEPS_MAX       500         /* nodes entered per call: a loop through webhooks ends */
#define FINAL_WAIT_MS   2000        /* after the caller stopped speaking, for the final */
#define PROMPT_CHECK_MS 100         /* how often a prompt is checked for its end */
#define PREROLL_MS      1000        /* caller audio kept before a recording starts */
#define SETTLE_MS       2000        /* a message's transcript waits this long for finals */
#define WEBHOOK_BODY    (64u << 10) /* a webhook POST's body, and its answer, at most */
#define MESSAGE_TEXT    CS_IVR_TEXT_MAX
#define BEEP_MS         400
#define EVENT_MAX       (16u << 10)

/* ---- the kind's state: menus and counters ---- */

typedef struct ivr_stats {
    uint64_t calls, nodes, keys, spoken, no_input, no_match, fallbacks;
    uint64_t webhooks, webhook_failures, messages, message_failures;
    uint64_t speech_unavailable; /* nodes whose grammar session could not open or failed */
    uint64_t steps_limit;
    uint64_t transfers, transfer_failures;
} ivr_stats;

typedef struct ivr_kind {
    cs_ivr_menu *main;  /* IVR_FILE's, or NULL */
    cs_map by_name;     /* IVR_DIR's, by name */
    char *secret;       /* AGENT_WEBHOOK_SECRET */
    char *messages_dir; /* DATA_DIR/messages */
    uint8_t beep[BEEP_MS * CS_FRAMES_PER_MS];
    ivr_stats stats;
} ivr_kind;

/* ---- a call ---- */

enum phase {
    PROMPTING, /* saying the node's text; input already counts (barge-in) */
    WAITING,   /* it has played: waiting for the caller */
    RECORDING,
    FETCHING,     /* a webhook is in flight */
    TRANSFERRING, /* once the node's text has played, the call is transferred */
    DONE,         /* hanging up */
};

typedef struct ivr ivr;

/* A session of the STT engine with the grammar of one node; it lives until on_closed. */
typedef struct listener {
    ivr *a;
    cs_stt_session *s;
    uint32_t node;
    bool current; /* still the node's: its results count */
    bool failed;
} listener;

/* A recorded message, until its file is written and its transcript settled. */
typedef struct message {
    ivr *a;
    uv_work_t work;
    uint32_t seq;     /* within the call */
    const char *node; /* the menu's */
    const char *save; /* the menu's, or NULL */
    char path[4352];  /* the file */
    char rel[128];    /* the same under DATA_DIR */
    uint8_t *ulaw;
    size_t n;
    uint64_t start, end; /* frames on the call's timeline */
    uint64_t speech_end; /* where the caller's speech ended (frames), or 0 */
    uint64_t settle_at;  /* calls' clock: its transcript is taken as complete */
    int err;             /* writing it */
    bool written, settled;
    cs_buf text; /* the caller's finals within its span */
    struct message *next;
} message;

/* What the caller gave, by the name a node saves it under: raw JSON. */
typedef struct value {
    const char *name;
    char *json;
    uint32_t msg; /* the message it describes, or 0 */
} value;

struct ivr {
    cs_agent base;
    const cs_agent_env *env;
    ivr_kind *kind;
    const cs_ivr_menu *menu;
    char stream_sid[CS_SID_MAX + 1];
    cs_voice voice;
    uint32_t node;
    enum phase phase;
    uint32_t attempts; /* failures at this node */
    uint32_t steps;
    bool speaking; /* the caller, as the detector says */
    bool spoke;    /* the caller began speaking at this node since its last prompt */
    uint32_t speech_node;
    char digits[CS_IVR_DIGITS_MAX + 1];
    size_t ndigits;
    uint64_t due;       /* calls' clock: the node's deadline (no input, digits, final), or 0 */
    uint64_t check_at;  /* calls' clock: look whether the prompt has played, or 0 */
    listener *listen;   /* the node's grammar session, or NULL */
    size_t listeners;   /* open or closing */
    bool want_listener; /* the node's could not open: try again when one closes */
    /* recording */
    cs_buf rec;         /* caller audio, from rec_start */
    uint64_t rec_start; /* frames */
    uint64_t rec_speech_end;
    bool rec_heard;    /* the caller spoke in it */
    cs_buf rec_text;   /* finals within it so far */
    message *messages; /* being written or settled */
    uint32_t nmessages;
    /* webhook */
    cs_fetch_req *req;
    uint64_t req_ms;
    value *values;
    size_t nvalues, cap_values;
    bool closed;
    bool in_close; /* inside close: it finishes last */
};

static void enter(ivr *a, uint32_t node);
static void arm(ivr *a);

static uint64_t now_ms(const ivr *a)
{
    return a->base.calls->clock_ms();
}

static const cs_ivr_node *cur(const ivr *a)
{
    return &a->menu->nodes[a->node];
}

static const char *node_name(const ivr *a, uint32_t n)
{
    return n == CS_IVR_NONE ? NULL : a->menu->nodes[n].name;
}

/* ---- events ---- */

typedef struct ev {
    cs_buf buf;
    cs_json j;
} ev;

/* An `agent` event about `node`: {"agent":"ivr","state":…,"node":…, …}. */
static void ev_begin_at(ev *e, const char *state, const char *node)
{
    cs_buf_init(&e->buf, EVENT_MAX);
    cs_json_init(&e->j, &e->buf);
    cs_json_obj(&e->j);
    cs_json_kstr(&e->j, "agent", "ivr");
    cs_json_kstr(&e->j, "state", state);
    cs_json_kstr(&e->j, "node", node);
}

static void ev_begin(ivr *a, ev *e, const char *state)
{
    ev_begin_at(e, state, cur(a)->name);
}

static void ev_end(ivr *a, ev *e)
{
    cs_json_obj_end(&e->j);
    if (cs_json_end(&e->j) == 0) cs_agent_event(&a->base, e->buf.data);
    cs_buf_free(&e->buf);
}

/* ---- values ---- */

static void set_value(ivr *a, const char *name, const char *json, uint32_t msg)
{
    if (!name) return;
    char *copy = strdup(json);
    if (!copy) return;
    for (size_t i = 0; i < a->nvalues; i++) {
        if (strcmp(a->values[i].name, name) == 0) {
            free(a->values[i].json);
            a->values[i] = (value){name, copy, msg};
            return;
        }
    }
    if (a->nvalues == a->cap_values) { /* at most one per node that saves */
        size_t cap = a->cap_values ? 2 * a->cap_values : 8;
        value *v = cap <= CS_IVR_NODES_MAX ? realloc(a->values, cap * sizeof *v) : NULL;
        if (!v) {
            free(copy);
            return;
        }
        a->values = v;
        a->cap_values = cap;
    }
    a->values[a->nvalues++] = (value){name, copy, msg};
}

static void set_string(ivr *a, const char *name, const char *s)
{
    cs_buf b = CS_BUF_INIT(2 * CS_IVR_TEXT_MAX + 8);
    if (cs_json_escape(&b, s, strlen(s)) == 0) set_value(a, name, b.data, 0);
    cs_buf_free(&b);
}

/* ---- speaking ---- */

static void say(ivr *a, const char *text)
{
    if (!text || !a->base.stream) return;
    int rc = cs_voice_say(&a->voice, text, strlen(text));
    if (rc < 0) cs_warn("ivr: cannot say '%.40s…': %s", text, cs_strerror(rc));
}

/* A tone after a record node's prompt: its own utterance, after what is being said. */
static void beep(ivr *a)
{
    cs_stream *s = a->base.stream;
    uint32_t utt;
    if (!s || cs_stream_relay(s) || cs_stream_say_begin(s, &utt) < 0) return; /* text only */
    cs_stream_say_audio(s, utt, a->kind->beep, sizeof a->kind->beep);
    cs_stream_say_end(s, utt);
}

static void close_listener(ivr *a);

/* Members saying where the call is and what it collected: menu, node, values. */
static void collected_json(ivr *a, cs_json *j)
{
    cs_json_kstr(j, "menu", a->menu->name);
    cs_json_kstr(j, "node", cur(a)->name);
    cs_json_key(j, "values");
    cs_json_obj(j);
    for (size_t i = 0; i < a->nvalues; i++) {
        cs_json_key(j, a->values[i].name);
        cs_json_raw(j, a->values[i].json, strlen(a->values[i].json));
    }
    cs_json_obj_end(j);
}

/* What the call collected goes on with it (a relay's provider passes it to what the
 * call does next). */
static void handoff(ivr *a)
{
    cs_buf b = CS_BUF_INIT(WEBHOOK_BODY);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "by", "ivr");
    collected_json(a, &j);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) cs_stream_handoff(a->base.stream, b.data);
    cs_buf_free(&b);
}

static void hang_up(ivr *a, const char *goodbye)
{
    say(a, goodbye);
    close_listener(a);
    a->phase = DONE;
    a->due = a->check_at = 0;
    ev e;
    ev_begin(a, &e, "hangup");
    ev_end(a, &e);
    if (!a->base.stream) return;
    handoff(a);
    cs_agent_end_call(&a->base, "ivr hangup");
}

/* ---- listening: a grammar session per node ---- */

static void maybe_finish(ivr *a);
static void on_choice_text(ivr *a, const char *text);

static void listener_segment(void *data, const cs_stt_segment *seg)
{
    listener *l = data;
    ivr *a = l->a;
    if (!l->current || !seg->final || a->closed) return;
    cs_agent_note(&a->base, CS_TURN_FINAL);
    on_choice_text(a, seg->text);
}

static void speech_unavailable(ivr *a, const char *why)
{
    a->kind->stats.speech_unavailable++;
    ev e;
    ev_begin(a, &e, "speech_unavailable");
    cs_json_kstr(&e.j, "reason", why);
    ev_end(a, &e);
}

static void listener_error(void *data, int err, const char *why)
{
    (void)err;
    listener *l = data;
    l->failed = true;
    if (l->current && !l->a->closed) speech_unavailable(l->a, why);
}

static void open_listener(ivr *a);

static void listener_closed(void *data)
{
    listener *l = data;
    ivr *a = l->a;
    a->listeners--;
    free(l);
    if (a->closed) return maybe_finish(a);
    if (a->want_listener) open_listener(a); /* its decoder may be free now */
}

static void close_listener(ivr *a)
{
    listener *l = a->listen;
    a->listen = NULL;
    a->want_listener = false;
    if (!l) return;
    l->current = false;
    a->env->stt_ops->close(l->s);
}

/* The node's session, when it has phrases and the gateway a speech engine. */
static void open_listener(ivr *a)
{
    const cs_ivr_node *n = cur(a);
    const cs_agent_env *env = a->env;
    a->want_listener = false;
    if (a->listen || !n->grammar || !env->stt_ops || a->phase == DONE) return;
    listener *l = calloc(1, sizeof *l);
    if (!l) return;
    *l = (listener){.a = a, .node = a->node, .current = true};
    char label[2 * CS_SID_MAX + 16];
    snprintf(label, sizeof label, "%s/ivr", a->base.call_sid);
    cs_stt_session_opts o = {
        .label = label,
        .grammar = env->stt_ops->grammars ? n->grammar : NULL,
        .on_segment = listener_segment,
        .on_error = listener_error,
        .on_closed = listener_closed,
        .data = l,
    };
    int rc = env->stt_ops->open(env->stt, &o, &l->s);
    if (rc < 0) {
        free(l);
        /* Keys still work; spoken choices come back when a decoder is free. */
        a->want_listener = rc == CS_EFULL && a->listeners > 0;
        speech_unavailable(a,
                           rc == CS_EFULL ? "no decoder free (STT_MAX_SESSIONS)" : cs_strerror(rc));
        return;
    }
    a->listeners++;
    a->listen = l;
}

/* ---- nodes ---- */

static void prompt(ivr *a)
{
    const cs_ivr_node *n = cur(a);
    say(a, n->say);
    if (n->kind == CS_IVR_RECORD && n->record.beep) beep(a);
    a->phase = PROMPTING;
    a->spoke = false;
    a->ndigits = 0;
    a->due = 0;
    a->check_at = now_ms(a) + PROMPT_CHECK_MS;
    if (n->kind == CS_IVR_RECORD) {
        cs_buf_reset(&a->rec);
        cs_buf_reset(&a->rec_text);
        a->rec_heard = false;
        a->rec_start = a->base.stream ? cs_stream_now(a->base.stream) : 0;
    }
    arm(a);
}

static void start_webhook(ivr *a);
static void start_transfer(ivr *a);

/* Goes to `node`: its event, then what it does. Nodes that only say and go on are
 * followed at once (the menu has no loop of them). */
static void enter(ivr *a, uint32_t node)
{
    while (!a->closed) {
        if (node == CS_IVR_NONE) return hang_up(a, a->menu->goodbye);
        if (++a->steps > STEPS_MAX) {
            a->kind->stats.steps_limit++;
            cs_warn("ivr: call %s went through %d nodes: hanging up", a->base.call_sid, STEPS_MAX);
            ev e;
            ev_begin(a, &e, "error");
            cs_json_kstr(&e.j, "error", "too many nodes in one call");
            ev_end(a, &e);
            close_listener(a);
            a->phase = DONE;
            if (a->base.stream) cs_stream_hangup(a->base.stream, true);
            return;
        }
        if (node != a->node || !a->listen || a->listen->node != node) close_listener(a);
        a->node = node;
        a->attempts = 0;
        a->due = a->check_at = 0;
        a->kind->stats.nodes++;
        const cs_ivr_node *n = cur(a);
        ev e;
        ev_begin(a, &e, "node");
        cs_json_kstr(&e.j, "kind", cs_ivr_kind_label(n->kind));
        ev_end(a, &e);
        switch (n->kind) {
        case CS_IVR_SAY:
            say(a, n->say);
            node = n->next;
            continue;
        case CS_IVR_HANGUP:
            return hang_up(a, n->say);
        case CS_IVR_WEBHOOK:
            say(a, n->say);
            return start_webhook(a);
        case CS_IVR_TRANSFER:
            say(a, n->say);
            return start_transfer(a);
        default:
            a->phase = PROMPTING;
            open_listener(a);
            return prompt(a);
        }
    }
}

/* No input or no match: a re-prompt, or once the retries are spent, the fallback. */
static void failed(ivr *a, bool no_input, const char *heard)
{
    const cs_ivr_node *n = cur(a);
    no_input ? a->kind->stats.no_input++ : a->kind->stats.no_match++;
    const char *why = no_input ? "no_input" : "no_match";
    ev e;
    bool retry = ++a->attempts <= n->retries;
    ev_begin(a, &e, retry ? "retry" : "fallback");
    cs_json_kstr(&e.j, "reason", why);
    cs_json_kuint(&e.j, "attempt", a->attempts);
    if (heard) cs_json_kstr(&e.j, "heard", heard);
    if (!retry) cs_json_kstr(&e.j, "goto", node_name(a, n->fallback));
    ev_end(a, &e);
    say(a, no_input ? n->no_input : n->no_match);
    if (retry) return prompt(a);
    a->kind->stats.fallbacks++;
    enter(a, n->fallback);
}

static void take(ivr *a, const cs_ivr_choice *c, char key, const char *text)
{
    const cs_ivr_node *n = cur(a);
    key ? a->kind->stats.keys++ : a->kind->stats.spoken++;
    ev e;
    ev_begin(a, &e, "choice");
    cs_json_kstr(&e.j, "by", key ? "key" : "speech");
    if (key) {
        char k[2] = {key, '\0'};
        cs_json_kstr(&e.j, "key", k);
    } else {
        cs_json_kstr(&e.j, "text", text);
    }
    cs_json_kstr(&e.j, "value", c->value);
    cs_json_kstr(&e.j, "goto", node_name(a, c->go));
    ev_end(a, &e);
    set_string(a, n->save, c->value);
    enter(a, c->go);
}

/* A final of the node's grammar session. */
static void on_choice_text(ivr *a, const char *text)
{
    const cs_ivr_node *n = cur(a);
    /* Only after the caller was heard at this node: a decoder's guess on noise, or the
     * tail of speech already answered, is no choice. */
    if (n->kind != CS_IVR_MENU || (a->phase != PROMPTING && a->phase != WAITING) || !a->spoke)
        return;
    const cs_ivr_choice *c = cs_ivr_menu_match(n, text);
    if (c) return take(a, c, '\0', text);
    failed(a, false, text);
}

static void collected(ivr *a)
{
    const cs_ivr_node *n = cur(a);
    if (a->ndigits < n->collect.min_digits) return failed(a, false, NULL);
    a->digits[a->ndigits] = '\0';
    ev e;
    ev_begin(a, &e, "collected");
    cs_json_kuint(&e.j, "digits", a->ndigits); /* how many: they may be a PIN */
    ev_end(a, &e);
    set_string(a, n->save, a->digits);
    enter(a, n->next);
}

/* ---- recording ---- */

static void write_message(uv_work_t *w)
{
    message *m = w->data;
    int16_t pcm[1024];
    cs_wav_writer wr;
    const char *dir = m->a->kind->messages_dir;
    m->err = cs_mkdir_p(dir, 0750);
    if (m->err == 0) m->err = cs_wav_writer_open(&wr, m->path, 8000, 1);
    for (size_t at = 0; m->err == 0 && at < m->n; at += sizeof pcm / sizeof *pcm) {
        size_t k = m->n - at < sizeof pcm / sizeof *pcm ? m->n - at : sizeof pcm / sizeof *pcm;
        cs_ulaw_decode(pcm, m->ulaw + at, k);
        m->err = cs_wav_writer_write(&wr, at, pcm, k);
    }
    if (wr.fd >= 0 || m->err == 0) {
        int rc = cs_wav_writer_close(&wr, true);
        if (m->err == 0) m->err = rc;
    }
}

static void message_json(cs_json *j, const message *m)
{
    cs_json_kstr(j, "file", m->err ? NULL : m->rel);
    cs_json_kuint(j, "startMs", m->start / CS_FRAMES_PER_MS);
    cs_json_kuint(j, "endMs", m->end / CS_FRAMES_PER_MS);
    cs_json_kstr(j, "transcript", m->text.data ? m->text.data : "");
}

/* What the message is, kept under its node's `save` for webhooks. */
static void save_message(ivr *a, const message *m)
{
    cs_buf b = CS_BUF_INIT(EVENT_MAX);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    message_json(&j, m);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) set_value(a, m->save, b.data, m->seq);
    cs_buf_free(&b);
}

/* Written and its transcript complete: told, and gone. */
static void message_settle(ivr *a, message *m)
{
    if (!m->written || !m->settled) return;
    for (message **p = &a->messages; *p; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    m->err ? a->kind->stats.message_failures++ : a->kind->stats.messages++;
    if (m->err) cs_error("ivr: cannot write %s: %s", m->path, cs_strerror(m->err));
    ev e;
    ev_begin_at(&e, "message", m->node);
    message_json(&e.j, m);
    if (m->err) cs_json_kstr(&e.j, "error", cs_strerror(m->err));
    ev_end(a, &e);
    bool still = false; /* the value saved is this message's (not a later one's) */
    for (size_t i = 0; i < a->nvalues; i++) still |= a->values[i].msg == m->seq;
    if (!a->closed && still) save_message(a, m);
    cs_buf_free(&m->text);
    free(m);
}

static void message_written(uv_work_t *w, int status)
{
    message *m = w->data;
    if (status < 0 && m->err == 0) m->err = status; /* cancelled */
    free(m->ulaw);
    m->ulaw = NULL;
    m->written = true;
    ivr *a = m->a;
    message_settle(a, m);
    if (a->closed) maybe_finish(a);
}

/* Ends the recording: its audio becomes a message, written off the loop. */
static void end_recording(ivr *a, const char *how)
{
    const cs_ivr_node *n = cur(a);
    message *m = calloc(1, sizeof *m);
    size_t len = 0;
    uint8_t *audio = m ? (uint8_t *)cs_buf_detach(&a->rec, &len) : NULL;
    if (!m || (!audio && a->rec.len)) {
        free(m);
        cs_error("ivr: out of memory for a message");
        a->kind->stats.message_failures++;
        return;
    }
    *m = (message){.a = a,
                   .seq = ++a->nmessages,
                   .node = n->name,
                   .save = n->save,
                   .ulaw = audio,
                   .n = len,
                   .start = a->rec_start,
                   .end = a->rec_start + len,
                   .speech_end = a->rec_speech_end};
    cs_buf_init(&m->text, MESSAGE_TEXT);
    if (a->rec_text.len) cs_buf_append(&m->text, a->rec_text.data, a->rec_text.len);
    cs_buf_reset(&a->rec_text);
    snprintf(m->rel, sizeof m->rel, "messages/%s-%u.wav", a->base.call_sid, m->seq);
    snprintf(m->path, sizeof m->path, "%s/%s-%u.wav", a->kind->messages_dir, a->base.call_sid,
             m->seq);
    /* No engine, or the call is over: no more finals will come. */
    m->settled = !a->env->stt_ops || a->closed;
    m->settle_at = now_ms(a) + SETTLE_MS;
    m->next = a->messages;
    a->messages = m;
    m->work.data = m;
    int rc = uv_queue_work(a->env->loop, &m->work, write_message, message_written);
    if (rc < 0) {
        m->err = rc;
        message_written(&m->work, rc);
        return;
    }
    if (!a->closed) {
        ev e;
        ev_begin(a, &e, "recorded");
        cs_json_kstr(&e.j, "ended", how);
        cs_json_kuint(&e.j, "startMs", m->start / CS_FRAMES_PER_MS);
        cs_json_kuint(&e.j, "endMs", m->end / CS_FRAMES_PER_MS);
        ev_end(a, &e);
        save_message(a, m);
    }
}

/* The recording is over (`how`: silence, key, max_s, hangup): on to the next node. */
static void finish_recording(ivr *a, const char *how)
{
    end_recording(a, how);
    enter(a, cur(a)->next);
}

static void start_recording(ivr *a, uint64_t from)
{
    /* Keep what was heard from `from` on (the onset of speech that cut the prompt). */
    if (from < a->rec_start) from = a->rec_start;
    size_t skip = (size_t)(from - a->rec_start);
    cs_buf_consume(&a->rec, skip < a->rec.len ? skip : a->rec.len);
    a->rec_start = from;
    a->phase = RECORDING;
    a->check_at = 0;
    a->due = now_ms(a) + cur(a)->timeout_ms; /* for speech to begin */
    ev e;
    ev_begin(a, &e, "recording");
    cs_json_kuint(&e.j, "startMs", from / CS_FRAMES_PER_MS);
    ev_end(a, &e);
    arm(a);
}

/* Caller audio at `pos` for the recording (its prompt's pre-roll included). */
static void record_audio(ivr *a, uint64_t pos, const uint8_t *ulaw, size_t n)
{
    uint64_t end = a->rec_start + a->rec.len;
    if (pos + n <= end) return;
    if (pos < end) {
        ulaw += end - pos;
        n -= (size_t)(end - pos);
        pos = end;
    }
    uint64_t cap = a->phase == RECORDING ? (uint64_t)cur(a)->record.max_ms * CS_FRAMES_PER_MS
                                         : 2 * PREROLL_MS * CS_FRAMES_PER_MS;
    if (pos > end) { /* a gap on the timeline: silence */
        uint8_t quiet[160];
        memset(quiet, 0xFF, sizeof quiet);
        for (uint64_t g = pos - end; g && a->rec.len + 160 <= cap; g -= g < 160 ? g : 160)
            cs_buf_append(&a->rec, quiet, g < 160 ? (size_t)g : 160);
    }
    if (a->rec.len + n > cap) n = a->rec.len < cap ? (size_t)(cap - a->rec.len) : 0;
    cs_buf_append(&a->rec, ulaw, n);
    if (a->phase == RECORDING) {
        if (a->rec.len < cap) return;
        if (a->rec_heard) return finish_recording(a, "max_s");
        return failed(a, true, NULL); /* max_s of silence */
    }
    /* Prompting: only the last PREROLL_MS matter. */
    size_t keep = PREROLL_MS * CS_FRAMES_PER_MS;
    if (a->rec.len >= 2 * keep) {
        size_t drop = a->rec.len - keep;
        cs_buf_consume(&a->rec, drop);
        a->rec_start += drop;
    }
}

/* ---- webhooks ---- */

static void webhook_failed(ivr *a, int status, const char *why)
{
    const cs_ivr_node *n = cur(a);
    a->kind->stats.webhook_failures++;
    cs_warn("ivr: webhook %s of call %s failed: %s", n->webhook.url, a->base.call_sid, why);
    ev e;
    ev_begin(a, &e, "webhook_failed");
    if (status) cs_json_kint(&e.j, "status", status);
    cs_json_kstr(&e.j, "error", why);
    cs_json_kuint(&e.j, "ms", now_ms(a) - a->req_ms);
    cs_json_kstr(&e.j, "goto", node_name(a, n->fallback));
    ev_end(a, &e);
    say(a, n->error);
    enter(a, n->fallback);
}

static void on_webhook(void *data, const cs_fetch_result *res)
{
    ivr *a = data;
    const cs_ivr_node *n = cur(a);
    a->req = NULL;
    if (res->err < 0)
        return webhook_failed(a, res->status, res->err == -ETIMEDOUT ? "timeout" : res->reason);
    char why[64];
    if (res->status < 200 || res->status > 299) {
        snprintf(why, sizeof why, "HTTP %d", res->status);
        return webhook_failed(a, res->status, why);
    }
    /* An answer may say something, and name the node to go to; an empty one is fine. */
    const char *say_text = NULL;
    uint32_t go = n->next;
    cJSON *j = NULL;
    size_t blank = strspn(res->body ? res->body : "", " \t\r\n");
    if (res->len > blank) {
        j = cJSON_ParseWithLength(res->body, res->len);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "say");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "goto");
        const char *bad = !cJSON_IsObject(j) ? "the answer is not a JSON object"
                          : s && (!cJSON_IsString(s) || strlen(s->valuestring) > CS_IVR_TEXT_MAX)
                              ? "say is not a text"
                          : g && !cJSON_IsString(g) ? "goto is not a node name"
                                                    : NULL;
        if (!bad && g) {
            go = CS_IVR_NONE;
            for (size_t i = 0; i < a->menu->nnodes && go == CS_IVR_NONE; i++)
                if (strcmp(a->menu->nodes[i].name, g->valuestring) == 0) go = (uint32_t)i;
            if (go == CS_IVR_NONE) bad = "goto names no node of the menu";
        }
        if (bad) {
            cJSON_Delete(j);
            return webhook_failed(a, res->status, bad);
        }
        say_text = s && s->valuestring[0] ? s->valuestring : NULL;
    }
    a->kind->stats.webhooks++;
    ev e;
    ev_begin(a, &e, "webhook");
    cs_json_kint(&e.j, "status", res->status);
    cs_json_kuint(&e.j, "ms", now_ms(a) - a->req_ms);
    if (say_text) cs_json_kstr(&e.j, "say", say_text);
    cs_json_kstr(&e.j, "goto", node_name(a, go));
    ev_end(a, &e);
    say(a, say_text);
    cJSON_Delete(j);
    enter(a, go);
}

/* POSTs what the call collected, signed as the transcript webhook is. */
static void start_webhook(ivr *a)
{
    const cs_ivr_node *n = cur(a);
    a->phase = FETCHING;
    a->req_ms = now_ms(a);
    cs_buf body = CS_BUF_INIT(WEBHOOK_BODY);
    cs_json j;
    cs_json_init(&j, &body);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "ivr.webhook");
    cs_json_kstr(&j, "call_sid", a->base.call_sid);
    cs_json_kstr(&j, "stream_sid", a->stream_sid);
    collected_json(a, &j);
    cs_json_obj_end(&j);
    int rc = cs_json_end(&j);
    if (rc < 0) {
        cs_buf_free(&body);
        return webhook_failed(a, 0, "the call's values are too large to send");
    }
    cs_signed_headers sig;
    cs_sign_body(&sig, a->kind->secret, body.data, body.len, cs_wall_ms() / 1000);
    const char *headers[] = {"Content-Type: application/json", "X-Callstream-Event: ivr.webhook",
                             sig.timestamp, sig.signature};
    cs_fetch_opts o = {
        .method = "POST",
        .url = n->webhook.url,
        .headers = headers,
        .nheaders = sizeof headers / sizeof *headers,
        .body = body.data,
        .len = body.len,
        .timeout_ms = n->webhook.timeout_ms,
        .max_body = WEBHOOK_BODY,
        .on_done = on_webhook,
        .data = a,
    };
    rc = cs_fetch_start(a->env->fetch, &o, &a->req);
    cs_buf_free(&body);
    if (rc < 0) {
        a->req = NULL;
        webhook_failed(a, 0, cs_strerror(rc));
    }
}

/* ---- transfers ---- */

/* The transfer failed: the node's apology, then its fallback (or the goodbye). */
static void transfer_failed(ivr *a, const char *why)
{
    const cs_ivr_node *n = cur(a);
    a->kind->stats.transfer_failures++;
    cs_warn("ivr: transfer of call %s to %s failed: %s", a->base.call_sid, n->transfer.to, why);
    ev e;
    ev_begin(a, &e, "transfer_failed");
    cs_json_kstr(&e.j, "to", n->transfer.to);
    cs_json_kstr(&e.j, "error", why);
    cs_json_kstr(&e.j, "goto", node_name(a, n->fallback));
    ev_end(a, &e);
    say(a, n->error);
    enter(a, n->fallback);
}

static void transferred(cs_agent *base, int err, const char *why)
{
    ivr *a = (ivr *)base;
    if (a->phase != TRANSFERRING) return;
    if (err < 0) return transfer_failed(a, why);
    a->kind->stats.transfers++;
    a->phase = DONE;
    ev e;
    ev_begin(a, &e, "transferred");
    cs_json_kstr(&e.j, "to", cur(a)->transfer.to);
    ev_end(a, &e);
}

/* Once the node's text has played, the call goes to its number (the stream then ends). */
static void start_transfer(ivr *a)
{
    const cs_ivr_node *n = cur(a);
    close_listener(a);
    a->phase = TRANSFERRING;
    a->due = a->check_at = 0;
    char reason[CS_IVR_NAME_MAX + 32];
    snprintf(reason, sizeof reason, "ivr node %s", n->name);
    int rc = cs_agent_transfer(&a->base, n->transfer.to, reason, transferred);
    if (rc < 0)
        return transfer_failed(a, rc == CS_ESTATE ? "call control is off, or busy on this call"
                                                  : cs_strerror(rc));
    ev e;
    ev_begin(a, &e, "transfer");
    cs_json_kstr(&e.j, "to", n->transfer.to);
    ev_end(a, &e);
}

/* ---- time ---- */

/* The agent's one timer, at the earliest of what waits. */
static void arm(ivr *a)
{
    uint64_t due = a->due;
    if (a->check_at && (!due || a->check_at < due)) due = a->check_at;
    for (message *m = a->messages; m; m = m->next)
        if (!m->settled && (!due || m->settle_at < due)) due = m->settle_at;
    uint64_t now = now_ms(a);
    cs_agent_timer(&a->base, due ? (uint32_t)(due > now ? due - now : 1) : 0);
}

/* The prompt has played to its end (or was cut): the caller's turn. */
static void prompt_over(ivr *a)
{
    const cs_ivr_node *n = cur(a);
    a->check_at = 0;
    if (n->kind == CS_IVR_RECORD) return start_recording(a, cs_stream_now(a->base.stream));
    a->phase = WAITING;
    if (!a->speaking) a->due = now_ms(a) + n->timeout_ms;
}

static bool prompt_playing(const ivr *a)
{
    return a->base.stream && (cs_stream_talking(a->base.stream) || cs_voice_busy(&a->voice));
}

static void ivr_timer(cs_agent *base)
{
    ivr *a = (ivr *)base;
    uint64_t now = now_ms(a);
    for (message *m = a->messages, *next; m; m = next) {
        next = m->next;
        if (!m->settled && now >= m->settle_at) {
            m->settled = true;
            message_settle(a, m);
        }
    }
    if (a->phase == PROMPTING && a->check_at && now >= a->check_at) {
        if (prompt_playing(a))
            a->check_at = now + PROMPT_CHECK_MS;
        else
            prompt_over(a);
    }
    if (a->due && now >= a->due) {
        a->due = 0;
        const cs_ivr_node *n = cur(a);
        if (a->phase == RECORDING)
            failed(a, true, NULL); /* the caller never spoke */
        else if (a->phase == WAITING && n->kind == CS_IVR_COLLECT && a->ndigits)
            collected(a); /* the digits stopped coming */
        else if (a->phase == WAITING)
            failed(a, !a->spoke, NULL); /* spoke: no final came that matched */
    }
    arm(a);
}

/* ---- what the caller does ---- */

static void ivr_audio(cs_agent *base, uint64_t pos, const uint8_t *ulaw, size_t n)
{
    ivr *a = (ivr *)base;
    if (a->listen && !a->listen->failed)
        a->env->stt_ops->feed(a->listen->s, (uint32_t)(pos / CS_FRAMES_PER_MS), ulaw, n);
    if (cur(a)->kind == CS_IVR_RECORD && (a->phase == PROMPTING || a->phase == RECORDING))
        record_audio(a, pos, ulaw, n);
}

static void ivr_speech(cs_agent *base, bool started, uint64_t pos)
{
    ivr *a = (ivr *)base;
    const cs_ivr_node *n = cur(a);
    a->speaking = started;
    if (started) {
        a->spoke = true;
        a->speech_node = a->node;
    }
    switch (a->phase) {
    case PROMPTING:
        /* Speech that cut the prompt starts the message. */
        if (started && n->kind == CS_IVR_RECORD && !prompt_playing(a)) {
            start_recording(a, pos);
            a->rec_heard = true;
            a->due = 0;
        }
        break;
    case RECORDING:
        if (started) {
            a->rec_heard = true;
            a->due = 0;
        } else if (a->rec_heard) {
            a->rec_speech_end = pos;
            finish_recording(a, "silence");
        }
        break;
    case WAITING:
        if (n->kind != CS_IVR_MENU) break;
        if (started) {
            a->due = 0;
        } else if (a->speech_node == a->node) {
            /* The final decides; without a session none will come. */
            if (!a->listen || a->listen->failed) return failed(a, false, NULL);
            a->due = now_ms(a) + FINAL_WAIT_MS;
        } else if (!a->due) { /* the end of speech answered at the node before */
            a->due = now_ms(a) + n->timeout_ms;
        }
        break;
    default:
        break;
    }
    arm(a);
}

static void ivr_dtmf(cs_agent *base, char digit)
{
    ivr *a = (ivr *)base;
    const cs_ivr_node *n = cur(a);
    if (a->phase != PROMPTING && a->phase != WAITING && a->phase != RECORDING) return;
    switch (n->kind) {
    case CS_IVR_MENU: {
        const cs_ivr_choice *c = cs_ivr_menu_key(n, digit);
        char k[2] = {digit, '\0'};
        if (c) return take(a, c, digit, NULL);
        return failed(a, false, k);
    }
    case CS_IVR_COLLECT:
        if (digit == n->collect.finish) return collected(a);
        a->digits[a->ndigits++] = digit;
        if (a->ndigits >= n->collect.max_digits) return collected(a);
        a->phase = WAITING;
        a->check_at = 0;
        a->due = now_ms(a) + n->collect.digit_timeout_ms;
        break;
    case CS_IVR_RECORD:
        if (a->phase == PROMPTING) { /* a key skips the prompt */
            start_recording(a, cs_stream_now(a->base.stream));
        } else if (digit == n->record.finish) {
            if (!a->rec_heard) return failed(a, true, NULL);
            a->rec_speech_end = 0;
            return finish_recording(a, "key");
        }
        break;
    default:
        break;
    }
    arm(a);
}

/* The caller's live transcript: the words of a message; and at a menu without a grammar
 * session of its own (a relay, whose provider recognises speech), the spoken choice. */
static void ivr_transcript(cs_agent *base, const cs_transcript *t)
{
    ivr *a = (ivr *)base;
    if (!t->final || !t->text[0]) return;
    const cs_ivr_node *n = cur(a);
    bool relay = a->base.stream && cs_stream_relay(a->base.stream);
    if (n->kind == CS_IVR_MENU && !a->listen && (relay || a->spoke) &&
        (a->phase == PROMPTING || a->phase == WAITING)) {
        a->spoke = true; /* no detector on a relay: the words are the speech */
        cs_agent_note(&a->base, CS_TURN_FINAL);
        on_choice_text(a, t->text);
        arm(a);
        return;
    }
    uint64_t at = (uint64_t)t->start_ms * CS_FRAMES_PER_MS;
    if (a->phase == RECORDING && at + PREROLL_MS * CS_FRAMES_PER_MS >= a->rec_start) {
        if (a->rec_text.len) cs_buf_putc(&a->rec_text, ' ');
        cs_buf_puts(&a->rec_text, t->text);
        return;
    }
    for (message *m = a->messages; m; m = m->next) {
        if (m->settled || at + PREROLL_MS * CS_FRAMES_PER_MS < m->start || at >= m->end) continue;
        if (m->text.len) cs_buf_putc(&m->text, ' ');
        cs_buf_puts(&m->text, t->text);
        /* The final of its last words: nothing more to wait for. */
        if ((uint64_t)t->end_ms * CS_FRAMES_PER_MS + 400 * CS_FRAMES_PER_MS >= m->speech_end &&
            m->speech_end) {
            m->settled = true;
            message_settle(a, m);
        }
        break;
    }
}

static void check_soon(ivr *a)
{
    if (a->phase != PROMPTING) return;
    a->check_at = now_ms(a);
    arm(a);
}

static void ivr_played(cs_agent *base, const cs_heard *h)
{
    (void)h;
    check_soon((ivr *)base);
}

/* Barge-in: the rest of what was being said is not wanted. */
static void ivr_cleared(cs_agent *base, const cs_heard *h, enum cs_clear_why why)
{
    (void)h;
    (void)why;
    ivr *a = (ivr *)base;
    cs_voice_stop(&a->voice);
    check_soon(a);
}

/* ---- life ---- */

static int ivr_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    ivr_kind *k = cs_agent_state(env, &cs_agent_ivr);
    if (!k || (!env->tts_ops && !cs_stream_relay(s))) return CS_ECONFIG; /* a relay speaks */
    const char *want = cs_stream_param(s, "IvrMenu");
    if (want && !want[0]) want = NULL;
    const cs_ivr_menu *menu = want ? cs_map_get(&k->by_name, cs_str_of(want)) : k->main;
    if (!menu) {
        cs_warn("ivr: call %s asks for menu '%s': %s", s->call->sid, want ? want : "",
                want ? "there is no such IVR_DIR/NAME.json" : "no IVR_FILE to default to");
        return CS_ENOTFOUND;
    }
    ivr *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->env = env;
    a->kind = k;
    a->menu = menu;
    a->node = menu->start;
    snprintf(a->stream_sid, sizeof a->stream_sid, "%s", s->sid);
    cs_voice_init(&a->voice, &a->base, env->tts_ops, env->tts);
    a->voice.fallback = env->tts_fallback;
    cs_buf_init(&a->rec, (size_t)CS_IVR_RECORD_MAX_S * 1000 * CS_FRAMES_PER_MS);
    cs_buf_init(&a->rec_text, MESSAGE_TEXT);
    k->stats.calls++;
    *out = &a->base;
    return 0;
}

/* The call layer has set the agent up: the first node speaks. */
static void ivr_start(cs_agent *base)
{
    ivr *a = (ivr *)base;
    enter(a, a->menu->start);
}

static void free_ivr(ivr *a)
{
    for (size_t i = 0; i < a->nvalues; i++) free(a->values[i].json);
    free(a->values);
    cs_buf_free(&a->rec);
    cs_buf_free(&a->rec_text);
    free(a);
}

/* Closed, and nothing of it is left in flight: finished. */
static void maybe_finish(ivr *a)
{
    if (a->in_close || a->listeners || a->messages) return;
    cs_agent_closed(&a->base);
    free_ivr(a);
}

static void ivr_close(cs_agent *base)
{
    ivr *a = (ivr *)base;
    a->closed = a->in_close = true;
    cs_fetch_cancel(a->req);
    a->req = NULL;
    cs_voice_free(&a->voice);
    close_listener(a);
    /* A caller who hangs up while leaving a message has left it. */
    if (a->phase == RECORDING && a->rec_heard) end_recording(a, "hangup");
    for (message *m = a->messages, *next; m; m = next) {
        next = m->next;
        if (!m->settled) {
            m->settled = true;
            message_settle(a, m);
        }
    }
    a->in_close = false;
    maybe_finish(a);
}

/* ---- the kind: menus read and checked at start-up ---- */

/* Waits for grammar checks on the loop (start-up only). */
typedef struct check {
    bool closed, failed;
} check;

static void check_segment(void *data, const cs_stt_segment *seg)
{
    (void)data;
    (void)seg;
}

static void check_error(void *data, int err, const char *why)
{
    (void)err;
    (void)why;
    ((check *)data)->failed = true;
}

static void check_closed(void *data)
{
    ((check *)data)->closed = true;
}

/* Whether the engine takes `grammar`: a session opened and closed at once. */
static int grammar_ok(const cs_agent_env *env, const char *grammar, bool *ok)
{
    check c = {0};
    cs_stt_session_opts o = {
        .label = "ivr-check",
        .grammar = grammar,
        .on_segment = check_segment,
        .on_error = check_error,
        .on_closed = check_closed,
        .data = &c,
    };
    cs_stt_session *s;
    int rc = env->stt_ops->open(env->stt, &o, &s);
    if (rc < 0) return rc;
    env->stt_ops->close(s);
    while (!c.closed) uv_run(env->loop, UV_RUN_ONCE);
    *ok = !c.failed;
    return 0;
}

/* Every node's grammar, through the speech engine: a word it does not know is found
 * here, phrase by phrase, not on a call. */
static int check_grammars(const cs_agent_env *env, const cs_ivr_menu *m, cs_buf *err)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        const cs_ivr_node *n = &m->nodes[i];
        bool ok = true;
        int rc = n->grammar ? grammar_ok(env, n->grammar, &ok) : 0;
        for (size_t c = 0; rc == 0 && !ok && c < n->nchoices; c++) {
            for (size_t p = 0; rc == 0 && p < n->choices[c].nphrases; p++) {
                const char *phrase = n->choices[c].phrases[p];
                cs_buf g = CS_BUF_INIT(4096);
                bool one = true;
                rc = cs_ivr_grammar(&g, &phrase, 1);
                if (rc == 0) rc = grammar_ok(env, g.data, &one);
                cs_buf_free(&g);
                if (rc == 0 && !one) {
                    cs_buf_printf(err,
                                  "%s: /nodes/%s/choices/%zu/phrases/%zu: '%s': the speech "
                                  "engine does not know every word of it",
                                  m->path, n->name, c, p, phrase);
                    return CS_ECONFIG;
                }
            }
        }
        if (rc < 0) {
            cs_buf_printf(err, "%s: /nodes/%s: cannot check its grammar: %s", m->path, n->name,
                          cs_strerror(rc));
            return CS_ECONFIG;
        }
        if (!ok) {
            cs_buf_printf(err, "%s: /nodes/%s/choices: the speech engine refused the grammar",
                          m->path, n->name);
            return CS_ECONFIG;
        }
    }
    return 0;
}

/* A menu of `setting`, checked; errors start with the setting's name. */
static int load(const cs_agent_env *env, const char *setting, const char *path, cs_ivr_menu **out,
                cs_buf *err)
{
    size_t mark = err->len;
    cs_buf_printf(err, "%s: ", setting);
    int rc = cs_ivr_menu_load(out, path, err);
    for (size_t i = 0; rc == 0 && !env->control && i < (*out)->nnodes; i++) {
        if ((*out)->nodes[i].kind != CS_IVR_TRANSFER) continue;
        cs_buf_printf(
            err, "%s: /nodes/%s/transfer: transferring needs call control: " CS_CONTROL_SETTINGS,
            path, (*out)->nodes[i].name);
        rc = CS_ECONFIG;
    }
    if (rc == 0 && env->stt_ops && env->stt_ops->grammars) rc = check_grammars(env, *out, err);
    if (rc < 0) {
        cs_ivr_menu_free(*out);
        *out = NULL;
        return rc;
    }
    cs_buf_truncate(err, mark);
    return 0;
}

static void ivr_cleanup(void *state)
{
    ivr_kind *k = state;
    cs_ivr_menu_free(k->main);
    void *v;
    for (size_t pos = 0; cs_map_next(&k->by_name, &pos, NULL, &v);) cs_ivr_menu_free(v);
    cs_map_free(&k->by_name);
    free(k->secret);
    free(k->messages_dir);
    free(k);
}

/* IVR_DIR/NAME.json: every menu a call may pick. */
static int load_dir(const cs_agent_env *env, ivr_kind *k, const char *dir, cs_buf *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        cs_buf_printf(err, "IVR_DIR: cannot open %s", dir);
        return CS_ECONFIG;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 || e->d_name[0] == '.') continue;
        if (k->by_name.len >= MENUS_MAX) {
            cs_buf_printf(err, "IVR_DIR: more than %d menus in %s", MENUS_MAX, dir);
            rc = CS_ECONFIG;
            break;
        }
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cs_ivr_menu *m;
        if ((rc = load(env, "IVR_DIR", path, &m, err)) < 0) break;
        if ((rc = cs_map_put(&k->by_name, cs_str_of(m->name), m)) < 0) cs_ivr_menu_free(m);
    }
    closedir(d);
    if (rc == 0 && k->by_name.len == 0) {
        cs_buf_printf(err, "IVR_DIR: no NAME.json menu in %s", dir);
        rc = CS_ECONFIG;
    }
    return rc;
}

static int ivr_setup(const cs_agent_env *env, void **state, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    *state = NULL;
    if (!cfg->ivr_file[0] && !cfg->ivr_dir[0]) {
        if (strcmp(cfg->agent, "ivr") != 0) return 0;
        cs_buf_printf(err, "AGENT=ivr needs a menu: IVR_FILE (or IVR_DIR with <Parameter "
                           "name=\"IvrMenu\">)");
        return CS_ECONFIG;
    }
    if (!env->tts_ops && !cs_agents_text_mode(cfg)) {
        cs_buf_printf(err,
                      "%s: the IVR speaks, and TTS is none (but with STREAM_MODE=relay or gather)",
                      cfg->ivr_file[0] ? "IVR_FILE" : "IVR_DIR");
        return CS_ECONFIG;
    }
    ivr_kind *k = calloc(1, sizeof *k);
    if (!k) return -ENOMEM;
    k->secret = strdup(cfg->agent_webhook_secret);
    size_t n = strlen(cfg->data_dir) + sizeof "/messages";
    k->messages_dir = malloc(n);
    if (!k->secret || !k->messages_dir) {
        ivr_cleanup(k);
        return -ENOMEM;
    }
    snprintf(k->messages_dir, n, "%s/messages", cfg->data_dir);
    /* 1 kHz at a third of full scale. */
    for (size_t i = 0; i < sizeof k->beep; i++) {
        int16_t v = (int16_t)(10000 * sin(2 * M_PI * 1000 * (double)i / 8000));
        cs_ulaw_encode(&k->beep[i], &v, 1);
    }
    int rc = cfg->ivr_file[0] ? load(env, "IVR_FILE", cfg->ivr_file, &k->main, err) : 0;
    if (rc == 0 && cfg->ivr_dir[0]) rc = load_dir(env, k, cfg->ivr_dir, err);
    if (rc < 0) {
        ivr_cleanup(k);
        return rc;
    }
    bool phrases = false;
    void *v;
    for (size_t pos = 0; !phrases && cs_map_next(&k->by_name, &pos, NULL, &v);)
        for (size_t i = 0; i < ((cs_ivr_menu *)v)->nnodes; i++)
            phrases |= ((cs_ivr_menu *)v)->nodes[i].grammar != NULL;
    for (size_t i = 0; k->main && i < k->main->nnodes; i++)
        phrases |= k->main->nodes[i].grammar != NULL;
    if (phrases && !env->stt_ops) cs_warn("ivr: STT is none: spoken choices are off, keys only");
    if (k->main) cs_info("ivr: menu '%s' from %s", k->main->name, k->main->path);
    if (cfg->ivr_dir[0]) cs_info("ivr: %zu menu(s) from %s", k->by_name.len, cfg->ivr_dir);
    *state = k;
    return 0;
}

static void ivr_metrics(void *state, cs_buf *out)
{
    ivr_kind *k = state;
    if (!k) return;
    const ivr_stats *st = &k->stats;
    struct {
        const char *name, *help;
        uint64_t v;
    } rows[] = {
        {"callstream_ivr_calls_total", "calls the IVR answered", st->calls},
        {"callstream_ivr_nodes_total", "menu nodes entered", st->nodes},
        {"callstream_ivr_choices_key_total", "choices taken by key", st->keys},
        {"callstream_ivr_choices_speech_total", "choices taken by speech", st->spoken},
        {"callstream_ivr_no_input_total", "prompts the caller did not answer", st->no_input},
        {"callstream_ivr_no_match_total", "answers that matched no choice", st->no_match},
        {"callstream_ivr_fallbacks_total", "nodes left for their fallback, retries spent",
         st->fallbacks},
        {"callstream_ivr_webhooks_total", "webhooks answered", st->webhooks},
        {"callstream_ivr_webhook_failures_total",
         "webhooks that failed (error, timeout, status, bad answer): an apology was said",
         st->webhook_failures},
        {"callstream_ivr_messages_total", "messages recorded and written", st->messages},
        {"callstream_ivr_message_failures_total", "messages that could not be written",
         st->message_failures},
        {"callstream_ivr_speech_unavailable_total",
         "nodes without spoken choices: no decoder free, or the engine failed",
         st->speech_unavailable},
        {"callstream_ivr_steps_limit_total", "calls hung up after too many nodes", st->steps_limit},
        {"callstream_ivr_transfers_total", "calls a transfer node put through", st->transfers},
        {"callstream_ivr_transfer_failures_total",
         "transfers the provider refused or that could not be asked: an apology was said",
         st->transfer_failures},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        cs_prom_counter(out, rows[i].name, rows[i].help, (double)rows[i].v);
}

static int ivr_say(cs_agent *base, const char *text, size_t len)
{
    return cs_voice_say(&((ivr *)base)->voice, text, len);
}

const cs_agent_ops cs_agent_ivr = {
    .name = "ivr",
    .needs = "IVR_FILE or IVR_DIR",
    .help = "a scripted phone menu (IVR_FILE): keys, spoken choices, digits, messages, webhooks",
    .speaks_text = true,
    .interruptible = true,
    .open = ivr_open,
    .start = ivr_start,
    .audio = ivr_audio,
    .speech = ivr_speech,
    .transcript = ivr_transcript,
    .dtmf = ivr_dtmf,
    .played = ivr_played,
    .cleared = ivr_cleared,
    .timer = ivr_timer,
    .say = ivr_say,
    .close = ivr_close,
    .setup = ivr_setup,
    .cleanup = ivr_cleanup,
    .metrics = ivr_metrics,
};
