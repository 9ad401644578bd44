/* Live transcription of every call: one STT session per speaker of a stream — the caller
 * from inbound media, the agent from the audio we send (or Twilio's outbound track) — fed
 * by the call's audio. Segments go to listeners (interim and final), and finals to the
 * store and the transcript webhook. A call that finds no engine free, or whose engine
 * fails, says so in its events and goes on without a transcript. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/gateway.h"

#define GRAMMAR_MAX  (64u << 10) /* bytes of one JSGF grammar */
#define GRAMMARS_MAX 256         /* grammars in STT_GRAMMAR_DIR */
#define KEYWORDS_MAX 4096        /* bytes of a keyword list */

static const char *const speaker_names[] = {"caller", "agent"};

/* One speaker of one stream, until the engine says it is closed. */
typedef struct voice {
    cs_gateway *gw;
    cs_stt_session *s;
    char call[CS_SID_MAX + 1];
    char stream[CS_SID_MAX + 1];
    enum cs_speaker who;
} voice;

/* The voices of a live stream. */
typedef struct stream_tx {
    char stream[CS_SID_MAX + 1];
    voice *voices[2];
} stream_tx;

typedef struct grammar {
    char name[64];
    char *text;
} grammar;

/* ---- results ---- */

static void call_state(cs_gateway *gw, const char *call, const char *state, enum cs_speaker who,
                       const char *why)
{
    cs_call_row row = {.sid = call, .transcription = state};
    cs_journal_call(gw, &row);
    cs_buf d = CS_BUF_INIT(1024);
    cs_json j;
    cs_json_init(&j, &d);
    cs_json_obj(&j);
    cs_json_kstr(&j, "state", state);
    cs_json_kstr(&j, "speaker", speaker_names[who]);
    if (why) cs_json_kstr(&j, "reason", why);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) cs_calls_event(&gw->calls, call, CS_EVENT_TRANSCRIPTION, d.data);
    cs_buf_free(&d);
}

/* Where a segment comes from: the speaker of a stream of a call; `cut` for agent lines
 * cut short by the caller. */
typedef struct origin {
    const char *call, *stream;
    enum cs_speaker who;
    bool cut;
} origin;

static void segment_json(cs_json *j, const origin *v, const cs_stt_segment *seg)
{
    char id[3 * CS_SID_MAX];
    snprintf(id, sizeof id, "%s/%s/%llu", v->stream, speaker_names[v->who],
             (unsigned long long)seg->id);
    cs_json_obj(j);
    cs_json_kstr(j, "id", id);
    cs_json_kstr(j, "speaker", speaker_names[v->who]);
    if (v->cut) cs_json_kbool(j, "cut", true);
    cs_json_kuint(j, "start_ms", seg->start_ms);
    cs_json_kuint(j, "end_ms", seg->end_ms);
    cs_json_kstr(j, "text", seg->text);
    cs_json_kbool(j, "final", seg->final);
    cs_json_kbool(j, "refined", seg->refined);
    cs_json_key(j, "confidence");
    if (seg->confidence >= 0)
        cs_json_double(j, seg->confidence);
    else
        cs_json_null(j);
    cs_json_obj_end(j);
}

/* A segment goes to the listeners (interim and final), finals to the store and the
 * transcript webhook. */
static void deliver(cs_gateway *gw, const origin *v, const cs_stt_segment *seg)
{
    gw->transcripts.segments++;
    cs_buf msg = CS_BUF_INIT(CS_STT_TEXT_MAX * 8);
    cs_json j;
    cs_json_init(&j, &msg);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "transcript");
    cs_json_kstr(&j, "call", v->call);
    cs_json_key(&j, "segment");
    segment_json(&j, v, seg);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0 && gw->bus) {
        cs_bus_msg m = {.kind = CS_BUS_TEXT, .topic = v->call, .text = msg.data, .len = msg.len};
        cs_bus_publish(gw->bus, &m);
    }
    cs_buf_free(&msg);
    if (!seg->final || !seg->text[0]) return; /* an empty final only clears the listeners' line */

    cs_store_rec *rec = cs_store_rec_new(CS_REC_SEGMENT);
    if (rec) {
        rec->segment = (cs_segment_row){
            .call_sid = cs_pool_strdup(&rec->pool, v->call),
            .stream_sid = cs_pool_strdup(&rec->pool, v->stream),
            .speaker = speaker_names[v->who],
            .text = cs_pool_strdup(&rec->pool, seg->text),
            .seq = (int64_t)seg->id,
            .start_ms = seg->start_ms,
            .end_ms = seg->end_ms,
            .confidence = seg->confidence >= 0 ? (int64_t)(seg->confidence * 1000 + 0.5) : -1,
            .at = cs_wall_ms(),
            .refined = seg->refined,
            .cut = v->cut,
        };
        cs_store_write(gw->store, rec);
    }
    if (gw->webhook) {
        cs_buf body = CS_BUF_INIT(CS_STT_TEXT_MAX * 8);
        cs_json_init(&j, &body);
        cs_json_obj(&j);
        /* A refined final updates the one sent before under the same id. */
        cs_json_kstr(&j, "event", seg->refined ? "transcript.refined" : "transcript.final");
        cs_json_kstr(&j, "call_sid", v->call);
        cs_json_kstr(&j, "stream_sid", v->stream);
        cs_json_key(&j, "segment");
        segment_json(&j, v, seg);
        cs_json_obj_end(&j);
        if (cs_json_end(&j) == 0)
            cs_webhook_send(gw->webhook, seg->refined ? "transcript.refined" : "transcript.final",
                            body.data, body.len);
        cs_buf_free(&body);
    }
}

static void on_segment(void *data, const cs_stt_segment *seg)
{
    voice *v = data;
    origin o = {v->call, v->stream, v->who, false};
    deliver(v->gw, &o, seg);
    /* The caller's words go to the stream's agent too: the fast final takes the turn; a
     * refined one, seconds later, is for the record only. */
    cs_stream *s = v->who == CS_SPEAKER_CALLER && !seg->refined
                       ? cs_calls_stream(&v->gw->calls, cs_str_of(v->stream))
                       : NULL;
    if (s) {
        cs_transcript t = {seg->id,   seg->start_ms, seg->end_ms,
                           seg->text, seg->final,    seg->confidence};
        cs_stream_transcript(s, &t);
    }
}

/* The caller's words as a relay's provider recognised them: the caller's line. */
/* What an agent that speaks text said, as heard: its line of the transcript. */
static void on_said(void *o, const cs_stream *s, const cs_heard *h)
{
    cs_gateway *gw = o;
    if (!s->agent_ops || !s->agent_ops->speaks_text || h->text_len == 0) return;
    origin v = {s->call->sid, s->sid, CS_SPEAKER_AGENT, h->cut};
    uint64_t start_ms = h->start_pos / CS_FRAMES_PER_MS;
    cs_stt_segment seg = {
        .id = h->utt,
        .start_ms = (uint32_t)start_ms,
        .end_ms = (uint32_t)(start_ms + h->heard_ms),
        .text = h->text,
        .final = true,
        .confidence = -1,
    };
    deliver(gw, &v, &seg);
}

/* The caller's words as the provider (relay) or the agent's service heard them. */
static void on_heard(void *o, const cs_stream *s, const cs_transcript *t)
{
    origin v = {s->call->sid, s->sid, CS_SPEAKER_CALLER, false};
    cs_stt_segment seg = {
        .id = t->id,
        .start_ms = t->start_ms,
        .end_ms = t->end_ms,
        .text = t->text,
        .final = t->final,
        .confidence = t->confidence,
    };
    deliver(o, &v, &seg);
}

static void on_error(void *data, int err, const char *why)
{
    voice *v = data;
    v->gw->transcripts.failed++;
    cs_error("transcription of %s/%s failed: %s (%s); the call goes on without it", v->call,
             speaker_names[v->who], why, cs_strerror(err));
    call_state(v->gw, v->call, "failed", v->who, why);
}

static void on_closed(void *data)
{
    voice *v = data;
    v->gw->transcripts.open--;
    cs_summary_release(v->gw->summary, v->call); /* its last finals are in */
    free(v);
}

/* ---- streams ---- */

static const char *grammar_text(cs_gateway *gw, const char *name)
{
    grammar *g = name && *name ? cs_map_get(&gw->grammars, cs_str_of(name)) : NULL;
    return g ? g->text : NULL;
}

/* "yes, no, talk to an agent" → one pocketsphinx keyphrase per line. */
static void keyword_lines(char *out, size_t cap, const char *list)
{
    size_t n = 0;
    out[0] = '\0';
    while (list && *list && n + 1 < cap) {
        size_t len = strcspn(list, ",");
        const char *p = list;
        while (len && (*p == ' ' || *p == '\t')) p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len) {
            int w = snprintf(out + n, cap - n, "%.*s /1e-20/\n", (int)len, p);
            if (w < 0 || (size_t)w >= cap - n) break;
            n += (size_t)w;
        }
        list += strcspn(list, ",");
        if (*list == ',') list++;
    }
}

static voice *open_voice(cs_gateway *gw, const cs_stream *s, enum cs_speaker who)
{
    const cs_call *call = s->call;
    voice *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->gw = gw;
    v->who = who;
    snprintf(v->call, sizeof v->call, "%s", call->sid);
    snprintf(v->stream, sizeof v->stream, "%s", s->sid);
    char label[2 * CS_SID_MAX], keywords[KEYWORDS_MAX];
    snprintf(label, sizeof label, "%s/%s", call->sid, speaker_names[who]);
    /* A call may ask for its own grammar or keywords; the settings give the default. */
    const char *gname = cs_stream_param(s, "SttGrammar");
    const char *jsgf = grammar_text(gw, gname ? gname : gw->cfg->stt_grammar);
    const char *kw = cs_stream_param(s, "SttKeywords");
    keyword_lines(keywords, sizeof keywords, kw ? kw : gw->cfg->stt_keywords);
    if (gname && !jsgf) cs_warn("transcription: %s asks for an unknown grammar '%s'", label, gname);
    cs_stt_session_opts o = {
        .label = label,
        .grammar = jsgf,
        .keywords = !jsgf && keywords[0] ? keywords : NULL,
        .on_segment = on_segment,
        .on_error = on_error,
        .on_closed = on_closed,
        .data = v,
    };
    int rc = gw->stt_ops->open(gw->stt, &o, &v->s);
    if (rc < 0) {
        bool full = rc == CS_EFULL;
        if (full) gw->transcripts.unavailable++;
        cs_warn("transcription of %s %s", label,
                full ? "unavailable: every decoder is busy (STT_MAX_SESSIONS)" : cs_strerror(rc));
        call_state(gw, call->sid, full ? "unavailable" : "failed", who,
                   full ? "no decoder free" : cs_strerror(rc));
        free(v);
        return NULL;
    }
    gw->transcripts.open++;
    cs_summary_hold(gw->summary, call->sid);
    return v;
}

static void on_stream_started(void *o, const cs_stream *s)
{
    cs_gateway *gw = o;
    if (cs_stream_relay(s)) return; /* no audio: its provider transcribes */
    stream_tx *tx = calloc(1, sizeof *tx);
    if (!tx) return;
    snprintf(tx->stream, sizeof tx->stream, "%s", s->sid);
    /* An agent that speaks text has its transcript from that text, not from its audio. */
    bool agent_speaks = (s->agent_ops && !s->agent_ops->speaks_text) ||
                        (s->tracks & CS_TRACK_BIT(CS_TRACK_OUTBOUND));
    if (s->tracks & CS_TRACK_BIT(CS_TRACK_INBOUND))
        tx->voices[CS_SPEAKER_CALLER] = open_voice(gw, s, CS_SPEAKER_CALLER);
    if (agent_speaks) tx->voices[CS_SPEAKER_AGENT] = open_voice(gw, s, CS_SPEAKER_AGENT);
    if (tx->voices[0] || tx->voices[1]) call_state(gw, s->call->sid, "on", CS_SPEAKER_CALLER, NULL);
    if (cs_map_put(&gw->transcribing, cs_str_of(tx->stream), tx) < 0) {
        for (int i = 0; i < 2; i++)
            if (tx->voices[i]) gw->stt_ops->close(tx->voices[i]->s);
        free(tx);
    }
}

static void on_audio(void *o, const cs_stream *s, enum cs_speaker who, uint64_t pos,
                     const uint8_t *ulaw, size_t n)
{
    cs_gateway *gw = o;
    stream_tx *tx = cs_map_get(&gw->transcribing, cs_str_of(s->sid));
    voice *v = tx ? tx->voices[who] : NULL;
    if (v) gw->stt_ops->feed(v->s, (uint32_t)(pos / CS_FRAMES_PER_MS), ulaw, n);
}

static void on_stream_ended(void *o, const cs_stream *s, enum cs_end_reason why)
{
    (void)why;
    cs_gateway *gw = o;
    stream_tx *tx = cs_map_del(&gw->transcribing, cs_str_of(s->sid));
    if (!tx) return;
    for (int i = 0; i < 2; i++)
        if (tx->voices[i]) gw->stt_ops->close(tx->voices[i]->s);
    free(tx);
}

/* The call's summary waits for its transcriptions to close. */
static void on_call_ended(void *o, const cs_call *call)
{
    cs_gateway *gw = o;
    cs_summary_call_ended(gw->summary, call->sid);
}

/* ---- set-up ---- */

/* STT_GRAMMAR_DIR/NAME.jsgf, read once at start-up (never from the loop later). */
static int load_grammars(cs_gateway *gw, cs_buf *err)
{
    const char *dir = gw->cfg->stt_grammar_dir;
    if (!dir[0]) return 0;
    DIR *d = opendir(dir);
    if (!d) {
        cs_buf_printf(err, "STT_GRAMMAR_DIR: cannot open %s", dir);
        return CS_ECONFIG;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || n - 5 >= sizeof((grammar *)0)->name || strcmp(e->d_name + n - 5, ".jsgf"))
            continue;
        if (gw->grammars.len >= GRAMMARS_MAX) {
            cs_buf_printf(err, "STT_GRAMMAR_DIR: more than %d grammars", GRAMMARS_MAX);
            rc = CS_ECONFIG;
            break;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        grammar *g = calloc(1, sizeof *g);
        char *text = calloc(1, GRAMMAR_MAX + 1);
        size_t got = f && text ? fread(text, 1, GRAMMAR_MAX + 1, f) : 0;
        if (f) fclose(f);
        if (!g || !text || got == 0 || got > GRAMMAR_MAX) {
            cs_buf_printf(err, "STT_GRAMMAR_DIR: cannot read %s (or larger than %u bytes)", path,
                          GRAMMAR_MAX);
            free(g);
            free(text);
            rc = CS_ECONFIG;
            break;
        }
        snprintf(g->name, sizeof g->name, "%.*s", (int)(n - 5), e->d_name);
        g->text = text;
        cs_map_put(&gw->grammars, cs_str_of(g->name), g);
    }
    closedir(d);
    if (rc == 0 && gw->cfg->stt_grammar[0] && !grammar_text(gw, gw->cfg->stt_grammar)) {
        cs_buf_printf(err, "STT_GRAMMAR: no %s.jsgf in STT_GRAMMAR_DIR", gw->cfg->stt_grammar);
        rc = CS_ECONFIG;
    }
    return rc;
}

int cs_transcribe_start(cs_gateway *gw, cs_buf *err)
{
    int rc = cs_stt_find(gw->cfg->stt, &gw->stt_ops);
    if (rc < 0) {
        cs_buf_printf(err, "STT: '%s' is not pocketsphinx, deepgram or none", gw->cfg->stt);
        return rc;
    }
    if (gw->cfg->transcript_webhook_url[0] && (rc = cs_webhook_new(&gw->webhook, gw, err)) < 0)
        return rc;
    /* Agents' lines, and the caller's as the provider or an agent heard them, need no
     * engine. */
    cs_call_observer o = {
        .call_ended = on_call_ended, .said = on_said, .heard = on_heard, .data = gw};
    if (gw->stt_ops) {
        if ((rc = load_grammars(gw, err)) < 0) return rc;
        rc = gw->stt_ops->create(&gw->stt, gw->cfg, gw->loop, gw->mb, err);
        if (rc < 0) return rc;
        o.stream_started = on_stream_started;
        o.stream_ended = on_stream_ended;
        o.audio = on_audio;
    }
    return cs_calls_observe(&gw->calls, &o);
}

bool cs_transcribe_idle(const cs_gateway *gw)
{
    return gw->transcripts.open == 0;
}

void cs_transcribe_stop(cs_gateway *gw)
{
    if (gw->stt) gw->stt_ops->destroy(gw->stt);
    gw->stt = NULL;
    cs_webhook_stop(gw->webhook);
}

void cs_transcribe_free(cs_gateway *gw)
{
    void *v;
    for (size_t pos = 0; cs_map_next(&gw->transcribing, &pos, NULL, &v);) free(v);
    cs_map_free(&gw->transcribing);
    for (size_t pos = 0; cs_map_next(&gw->grammars, &pos, NULL, &v);) {
        free(((grammar *)v)->text);
        free(v);
    }
    cs_map_free(&gw->grammars);
    cs_webhook_free(gw->webhook);
}
