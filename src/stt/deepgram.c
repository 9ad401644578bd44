/* Deepgram live streaming (wss://api.deepgram.com/v1/listen) as an STT engine: one
 * WebSocket per session, on the loop, opened once there is audio to send; μ-law audio goes
 * out as binary frames and Results come back as JSON text. Audio is kept until Deepgram
 * finalizes it, so when a connection fails the session reconnects (exponential backoff with
 * jitter) and resends what was not finalized, placed on the call's timeline as before. No
 * workers: nothing here blocks. Quirks cite developers.deepgram.com/docs/… by page name. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "core/backoff.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "net/form.h"
#include "net/url.h"
#include "net/wsconn.h"
#include "stt/stt.h"

/* ---- limits ---- */
#define DG_SAMPLE_RATE      8000
#define DG_BYTES_PER_MS     8            /* μ-law at 8 kHz: one byte a sample */
#define DG_ENDPOINTING_MS   300          /* pause that ends an utterance (speech_final) */
#define DG_UTTERANCE_END_MS 1000         /* gap after the last word that sends UtteranceEnd */
#define DG_BUFFER_MS        30000        /* unfinalized audio kept for a reconnection */
#define DG_GAP_FILL_MS      1000         /* a longer gap in positions is not sent in full */
#define DG_MAX_RUNS         16           /* such gaps within the unfinalized audio */
#define DG_FRAME_MAX        4000         /* bytes in one binary message (500 ms) */
#define DG_MAX_MESSAGE      (256u << 10) /* largest message taken from Deepgram */
#define DG_TICK_MS          1000         /* KeepAlive, stall and close deadline checks */
#define DG_KEEPALIVE_MS     3000         /* quiet time before a KeepAlive: one every 3–4 s */
#define DG_STALL_MS         12000        /* audio (and time) without an answer: reconnect */
#define DG_CLOSE_MARGIN_MS  5000         /* close(): after the backlog, time for the finals */
#define DG_CLOSE_MAX_MS     40000 /* close(): at most (30 s resent at 1.25×, a backoff, margin) */
#define DG_RATE_NUM         5     /* Deepgram takes a stream at most 1.25× real time, */
#define DG_RATE_DEN         4     /* so a resent backlog takes 4/5 of its length */
#define DG_BACKOFF_MIN_MS   250
#define DG_BACKOFF_MAX_MS   8000
#define DG_MAX_ATTEMPTS     7   /* failed connections in a row before giving up */
#define DG_MAX_TERMS        100 /* keywords or keyterms in one request (docs/keywords) */
#define DG_LABEL_MAX        64
#define DG_REQUEST_ID_MAX   64  /* Deepgram's request ids are UUIDs */
#define DG_SAID_MAX         256 /* what Deepgram said about a failure, as logged */
#define DG_WHY_MAX          512

/* Query parameters every session sends (developers.deepgram.com/reference/speech-to-text/
 * listen-streaming): Twilio's audio as it comes, interim results, punctuation, and both
 * end-of-speech signals — endpointing (speech_final) and, for noisy lines where the pause
 * detector never fires, UtteranceEnd (docs/understanding-end-of-speech-detection). */
#define DG_QUERY                                                                                   \
    "encoding=mulaw&sample_rate=%d&channels=1&interim_results=true&punctuate=true"                 \
    "&endpointing=%d&utterance_end_ms=%d"

/* Deepgram: KeepAlive must be a text frame, every 3–5 s, or the stream closes after 10 s
 * without audio (docs/audio-keep-alive); CloseStream makes Deepgram send what is left,
 * then a Metadata summary, then close (docs/close-stream). */
#define DG_KEEPALIVE   "{\"type\":\"KeepAlive\"}"
#define DG_CLOSESTREAM "{\"type\":\"CloseStream\"}"

struct cs_stt {
    uv_loop_t *loop;
    cs_net *net;
    char *url;    /* endpoint and the query parameters every session shares */
    char *auth;   /* "Authorization: Token …\r\n" */
    bool keyterm; /* Nova-3 takes keyterm= where older models take keywords= */
    uint64_t max_sessions;
    cs_stt_stats st;
    uint64_t audio_bytes, dropped_bytes; /* st.audio_ms and st.dropped_ms, in bytes */
};

/* ---- audio not yet finalized ----
 * A ring of DG_BUFFER_MS holding what was sent on the current socket but not yet covered
 * by an is_final result, then what is not sent yet. Deepgram's times count seconds of
 * audio from the start of the socket; runs map the ring back onto the call's timeline
 * across the gaps that were not sent in full. Positions are in bytes (samples). */

typedef struct dg_run {
    uint64_t call_pos; /* call timeline position of the run's first byte */
    size_t len;
} dg_run;

typedef struct dg_audio {
    uint8_t *buf;
    size_t cap, head, len;
    size_t sent;        /* bytes from the front already sent on the current socket */
    uint64_t sock_base; /* socket position of the front byte */
    dg_run runs[DG_MAX_RUNS];
    size_t nruns; /* ≥ 1; runs[0] starts at the front, only the last may be empty */
} dg_audio;

static int audio_init(dg_audio *a)
{
    a->cap = (size_t)DG_BUFFER_MS * DG_BYTES_PER_MS;
    a->buf = malloc(a->cap);
    a->nruns = 1;
    return a->buf ? 0 : -ENOMEM;
}

/* Forgets the n oldest bytes; returns how many of them were never sent. */
static size_t audio_drop_front(dg_audio *a, size_t n)
{
    size_t sent = n < a->sent ? n : a->sent;
    a->sent -= sent;
    a->sock_base += sent;
    a->head = (a->head + n) % a->cap;
    a->len -= n;
    for (size_t left = n; left;) {
        dg_run *r = &a->runs[0];
        size_t k = left < r->len ? left : r->len;
        r->call_pos += k;
        r->len -= k;
        left -= k;
        if (!r->len && a->nruns > 1) memmove(a->runs, a->runs + 1, --a->nruns * sizeof *r);
    }
    return n - sent;
}

/* Appends n ≤ cap bytes (silence when `data` is NULL) to the last run, dropping the
 * oldest bytes to make room; returns the unsent bytes dropped. */
static size_t audio_put(dg_audio *a, const uint8_t *data, size_t n)
{
    size_t dropped = a->len + n > a->cap ? audio_drop_front(a, a->len + n - a->cap) : 0;
    for (size_t done = 0; done < n;) {
        size_t at = (a->head + a->len) % a->cap;
        size_t k = n - done < a->cap - at ? n - done : a->cap - at;
        if (data)
            memcpy(a->buf + at, data + done, k);
        else
            memset(a->buf + at, CS_ULAW_SILENCE, k);
        a->len += k;
        done += k;
    }
    a->runs[a->nruns - 1].len += n;
    return dropped;
}

/* Places n bytes fed at call position `pos` after what the ring holds. A gap up to
 * DG_GAP_FILL_MS is sent as silence; a longer one gets that much silence (Deepgram still
 * hears a pause) and then a new run, so hours of nothing are never sent. An overlap is
 * cut. Returns the bytes lost: dropped to make room, or past DG_MAX_RUNS gaps. */
static size_t audio_add(dg_audio *a, uint64_t pos, const uint8_t *data, size_t n)
{
    size_t lost = 0;
    if (n > a->cap) { /* more than the ring at once: only its end can be kept */
        lost = n - a->cap;
        pos += lost;
        data += lost;
        n = a->cap;
    }
    dg_run *last = &a->runs[a->nruns - 1];
    uint64_t end = last->call_pos + last->len;
    if (pos < end) {
        if (end - pos >= n) return lost;
        data += end - pos;
        n -= (size_t)(end - pos);
        pos = end;
    }
    uint64_t gap = pos - end, fill_max = (uint64_t)DG_GAP_FILL_MS * DG_BYTES_PER_MS;
    if (!last->len) {
        last->call_pos = pos; /* nothing held before it: the run starts here */
    } else if (gap) {
        if (gap > fill_max && a->nruns == DG_MAX_RUNS) return lost + n;
        lost += audio_put(a, NULL, (size_t)(gap < fill_max ? gap : fill_max));
        if (gap > fill_max) a->runs[a->nruns++] = (dg_run){pos, 0};
    }
    return lost + audio_put(a, data, n);
}

/* A new socket: everything in the ring goes out again, from its position 0. */
static void audio_rewind(dg_audio *a)
{
    a->sent = 0;
    a->sock_base = 0;
}

static int64_t sock_offset(const dg_audio *a, double seconds)
{
    return (int64_t)llround(seconds * DG_SAMPLE_RATE) - (int64_t)a->sock_base;
}

/* Deepgram's time (seconds of this socket's audio) on the call's timeline, in ms. Times
 * before the front (audio already trimmed) or past the end are extrapolated. */
static uint32_t audio_call_ms(const dg_audio *a, double seconds)
{
    int64_t off = sock_offset(a, seconds);
    size_t i = 0;
    while (i + 1 < a->nruns && off >= (int64_t)a->runs[i].len) off -= (int64_t)a->runs[i++].len;
    int64_t pos = (int64_t)a->runs[i].call_pos + off;
    return pos > 0 ? (uint32_t)(pos / DG_BYTES_PER_MS) : 0;
}

/* Deepgram finalized the socket's audio up to `seconds`: it will not be needed again. */
static void audio_finalized(dg_audio *a, double seconds)
{
    int64_t off = sock_offset(a, seconds);
    if (off > 0) audio_drop_front(a, (size_t)off < a->sent ? (size_t)off : a->sent);
}

/* ---- sessions ---- */

typedef enum dg_state {
    DG_IDLE,       /* no connection, and no audio to send on one */
    DG_CONNECTING, /* connection or handshake in progress */
    DG_OPEN,
    DG_WAITING, /* backing off before the next attempt */
    DG_FAILED,  /* gave up (on_error ran): nothing more until closed */
    DG_DONE,    /* finished: timers closing, then on_closed */
} dg_state;

/* The utterance being put together. Deepgram finalizes speech in chunks (is_final) and
 * flags the last chunk before a pause (speech_final, or an UtteranceEnd message after it):
 * the chunks up to there are one segment, reported final once. In between, interims show
 * the finalized chunks plus Deepgram's latest guess, all under the same id. */
typedef struct dg_utt {
    uint64_t id;               /* 0: none yet */
    size_t len;                /* finalized chunks, joined by spaces */
    uint32_t start_ms, end_ms; /* of the finalized chunks */
    double conf_sum, conf_weight;
    char text[CS_STT_TEXT_MAX + 1];
    cs_stt_segment shown; /* last interim reported: what is left at the end of the stream */
    size_t shown_len;
    char shown_text[CS_STT_TEXT_MAX + 1];
} dg_utt;

struct cs_stt_session {
    cs_stt *e;
    cs_stt_session_opts o;
    char label[DG_LABEL_MAX];
    char *url;
    dg_state state;
    bool closing;
    bool close_stream_sent;
    bool flushed;      /* Metadata arrived after CloseStream: Deepgram is done */
    unsigned attempts; /* failed connections in a row */
    size_t resent;     /* bytes the ring held when the current connection was made */
    cs_wsconn ws;
    uv_timer_t step; /* one-shot: the next attempt, or finishing */
    uv_timer_t tick;
    unsigned handles;     /* timers not closed yet */
    uint64_t last_tx_ms;  /* audio or KeepAlive last sent */
    uint64_t awaiting_ms; /* when audio first went out unanswered */
    size_t unanswered;    /* audio bytes sent since Deepgram last said anything */
    uint64_t close_started_ms, close_deadline_ms;
    uint64_t next_id;
    char request_id[DG_REQUEST_ID_MAX]; /* of the current connection, "" until known */
    char said[DG_SAID_MAX];             /* what Deepgram said about its failure, or "" */
    dg_audio audio;
    dg_utt utt;
};

static const cs_wsconn_ops ws_ops;

static uint64_t now_ms(const cs_stt_session *s)
{
    return uv_now(s->e->loop);
}

/* ---- segments ---- */

static void emit(cs_stt_session *s, const cs_stt_segment *seg)
{
    if (seg->final)
        s->e->st.finals++;
    else
        s->e->st.interims++;
    s->o.on_segment(s->o.data, seg);
}

/* Appends " add" to text[0..len), cut to CS_STT_TEXT_MAX between characters. */
static size_t text_append(char *text, size_t len, const char *add, size_t n)
{
    size_t sep = len ? 1 : 0;
    size_t room = CS_STT_TEXT_MAX - len > sep ? CS_STT_TEXT_MAX - len - sep : 0;
    if (n > room) {
        n = room;
        while (n && ((unsigned char)add[n] & 0xC0) == 0x80) n--;
    }
    if (!n) return len;
    if (sep) text[len++] = ' ';
    memcpy(text + len, add, n);
    text[len + n] = '\0';
    return len + n;
}

/* Duration-weighted confidence of the finalized chunks and one more piece (conf < 0:
 * none); -1 when nothing had one. */
static float utt_confidence(const dg_utt *u, double conf, double weight)
{
    if (conf < 0) weight = 0;
    double w = u->conf_weight + weight;
    return w > 0 ? (float)((u->conf_sum + conf * weight) / w) : (float)conf;
}

static void utt_reset(dg_utt *u)
{
    u->id = 0;
    u->len = u->shown_len = 0;
    u->text[0] = '\0';
    u->conf_sum = u->conf_weight = 0;
}

static void utt_show(cs_stt_session *s, uint32_t start_ms, uint32_t end_ms, float conf)
{
    dg_utt *u = &s->utt;
    u->shown = (cs_stt_segment){.id = u->id,
                                .start_ms = start_ms,
                                .end_ms = end_ms,
                                .text = u->shown_text,
                                .confidence = conf};
    emit(s, &u->shown);
}

/* speech_final or UtteranceEnd: the finalized chunks are the utterance. Without any yet,
 * the id stays for the speech that follows. */
static void utt_finish(cs_stt_session *s)
{
    dg_utt *u = &s->utt;
    if (!u->len) return;
    cs_stt_segment seg = {.id = u->id,
                          .start_ms = u->start_ms,
                          .end_ms = u->end_ms,
                          .text = u->text,
                          .final = true,
                          .confidence = utt_confidence(u, -1, 0)};
    emit(s, &seg);
    utt_reset(u);
}

/* The stream ended: what was last shown is all there will be. */
static void utt_flush(cs_stt_session *s)
{
    dg_utt *u = &s->utt;
    if (!u->shown_len) return;
    u->shown.final = true;
    emit(s, &u->shown);
    utt_reset(u);
}

/* One Results message, reduced to what we use. */
typedef struct dg_result {
    bool is_final, speech_final;
    double end;                      /* of the audio it covers (start + duration) */
    double speech_start, speech_end; /* first word's start, last word's end (else the span) */
    double duration;
    const char *text; /* trimmed transcript of the best alternative */
    size_t len;
    double confidence;
} dg_result;

static bool json_seconds(const cJSON *obj, const char *name, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    /* Deepgram's times are seconds of audio: finite, ≥ 0, and well under a year. */
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble < 3e7)) return false;
    *out = it->valuedouble;
    return true;
}

/* {"type":"Results","start":…,"duration":…,"is_final":…,"speech_final":…,
 *  "channel":{"alternatives":[{"transcript":…,"confidence":…,"words":[{"start","end"}…]}]}}
 * (docs/interim-results, docs/endpointing). */
static bool parse_result(const cJSON *msg, dg_result *r)
{
    double start;
    const cJSON *channel = cJSON_GetObjectItemCaseSensitive(msg, "channel");
    const cJSON *alt =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(channel, "alternatives"), 0);
    const cJSON *transcript = cJSON_GetObjectItemCaseSensitive(alt, "transcript");
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(alt, "confidence");
    if (!json_seconds(msg, "start", &start) || !json_seconds(msg, "duration", &r->duration) ||
        !cJSON_IsString(transcript))
        return false;
    r->is_final = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "is_final"));
    r->speech_final = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "speech_final"));
    r->end = start + r->duration;
    r->confidence = cJSON_IsNumber(conf) ? conf->valuedouble : -1;
    const char *t = transcript->valuestring;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\n')) n--;
    while (n && (*t == ' ' || *t == '\t' || *t == '\n')) t++, n--;
    r->text = t;
    r->len = n;
    const cJSON *words = cJSON_GetObjectItemCaseSensitive(alt, "words");
    int nwords = cJSON_GetArraySize(words);
    if (!nwords || !json_seconds(cJSON_GetArrayItem(words, 0), "start", &r->speech_start) ||
        !json_seconds(cJSON_GetArrayItem(words, nwords - 1), "end", &r->speech_end)) {
        r->speech_start = start;
        r->speech_end = r->end;
    }
    return true;
}

static void take_interim(cs_stt_session *s, const dg_result *r)
{
    dg_utt *u = &s->utt;
    if (!r->len) return; /* nothing heard yet */
    if (!u->id) u->id = ++s->next_id;
    uint32_t start = u->len ? u->start_ms : audio_call_ms(&s->audio, r->speech_start);
    memcpy(u->shown_text, u->text, u->len + 1);
    u->shown_len = text_append(u->shown_text, u->len, r->text, r->len);
    utt_show(s, start, audio_call_ms(&s->audio, r->speech_end),
             utt_confidence(u, r->confidence, r->duration));
}

static void take_final(cs_stt_session *s, const dg_result *r)
{
    dg_utt *u = &s->utt;
    uint32_t start = audio_call_ms(&s->audio, r->speech_start);
    uint32_t end = audio_call_ms(&s->audio, r->speech_end);
    audio_finalized(&s->audio, r->end);
    if (r->len) {
        /* A segment's text is bounded: an utterance that would outgrow it ends here. */
        if (u->len && u->len + 1 + r->len > CS_STT_TEXT_MAX) utt_finish(s);
        if (!u->id) u->id = ++s->next_id;
        if (!u->len) u->start_ms = start;
        u->end_ms = end;
        u->len = text_append(u->text, u->len, r->text, r->len);
        if (r->confidence >= 0) {
            u->conf_sum += r->confidence * r->duration;
            u->conf_weight += r->duration;
        }
    }
    /* The final version of this audio supersedes any guess shown for it. */
    memcpy(u->shown_text, u->text, u->len + 1);
    u->shown_len = u->len;
    if (r->speech_final)
        utt_finish(s);
    else if (r->len)
        utt_show(s, u->start_ms, u->end_ms, utt_confidence(u, -1, 0));
}

/* ---- Deepgram's messages ---- */

/* Copies text from Deepgram for a log line: printable ASCII, anything else as '?'. */
static void copy_printable(char *out, size_t cap, const char *p, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++) out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    out[i] = '\0';
}

static void on_results(cs_stt_session *s, const cJSON *msg)
{
    dg_result r;
    if (!parse_result(msg, &r)) {
        cs_warn("deepgram %s: skipped a Results message without start, duration or transcript",
                s->label);
        return;
    }
    if (r.is_final)
        take_final(s, &r);
    else
        take_interim(s, &r);
    /* Real progress: what the connection was made to resend is finalized. Not any Results:
     * a server that answers once, then fails each connection, would be retried at the
     * first backoff step for the whole call, resending the backlog each time. */
    if (r.is_final && (uint64_t)llround(r.end * DG_SAMPLE_RATE) >= s->resent) s->attempts = 0;
}

/* Sent after utterance_end_ms without words, when speech_final did not come
 * (docs/utterance-end). */
static void on_utterance_end(cs_stt_session *s, const cJSON *msg)
{
    /* Deepgram: last_word_end -1 means no word ended the utterance: nothing to finish. */
    const cJSON *end = cJSON_GetObjectItemCaseSensitive(msg, "last_word_end");
    if (cJSON_IsNumber(end) && end->valuedouble < 0) return;
    utt_finish(s);
}

/* The summary Deepgram sends last, after CloseStream (docs/close-stream). */
static void on_metadata(cs_stt_session *s, const cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "request_id");
    cs_debug("deepgram %s: stream summary, request %s", s->label,
             cJSON_IsString(id) ? id->valuestring : "?");
    if (s->close_stream_sent) s->flushed = true;
}

/* {"type":"Error","description":…,"message":…,"variant":…}: the stream is broken; a new
 * connection gets the unfinalized audio again. What it says is logged with the close. */
static void on_error_message(cs_stt_session *s, const cJSON *msg)
{
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(msg, "description");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(msg, "message");
    char said[DG_SAID_MAX];
    snprintf(said, sizeof said, "%s%s%s", cJSON_IsString(desc) ? desc->valuestring : "",
             cJSON_IsString(desc) && cJSON_IsString(text) ? ": " : "",
             cJSON_IsString(text) ? text->valuestring : "");
    copy_printable(s->said, sizeof s->said, said, strlen(said));
    cs_wsconn_abort(&s->ws, CS_EBACKEND);
}

/* The request id, for a connection whose upgrade answer had none: Results carry it in
 * metadata.request_id, Metadata at the top (docs/close-stream). */
static void take_request_id(cs_stt_session *s, const cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "request_id");
    if (!cJSON_IsString(id))
        id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(msg, "metadata"),
                                              "request_id");
    if (cJSON_IsString(id))
        copy_printable(s->request_id, sizeof s->request_id, id->valuestring,
                       strlen(id->valuestring));
}

typedef void (*dg_handler)(cs_stt_session *s, const cJSON *msg);

static const struct {
    const char *type;
    dg_handler fn;
} handlers[] = {
    {"Results", on_results},
    {"UtteranceEnd", on_utterance_end},
    {"Metadata", on_metadata},
    {"Error", on_error_message},
};

static void on_ws_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    cs_stt_session *s = ws->data;
    s->unanswered = 0; /* Deepgram answers: the stream is not stuck */
    if (op != CS_WS_OP_TEXT || s->state != DG_OPEN) return;
    cJSON *msg = cJSON_ParseWithLength(data, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
    if (!cJSON_IsString(type)) {
        cs_warn("deepgram %s: skipped a message that is not a typed JSON object", s->label);
    } else {
        if (!s->request_id[0]) take_request_id(s, msg);
        size_t i = 0, n = sizeof handlers / sizeof *handlers;
        while (i < n && strcmp(handlers[i].type, type->valuestring) != 0) i++;
        /* Other types (SpeechStarted without vad_events, newer ones) carry nothing we use. */
        if (i < n) handlers[i].fn(s, msg);
    }
    cJSON_Delete(msg);
}

/* ---- the connection ---- */

static bool send_control(cs_stt_session *s, const char *json)
{
    if (cs_wsconn_send(&s->ws, CS_WS_OP_TEXT, json, strlen(json)) < 0) return false;
    s->last_tx_ms = now_ms(s);
    return true;
}

static void send_audio(cs_stt_session *s)
{
    dg_audio *a = &s->audio;
    while (a->sent < a->len) {
        size_t at = (a->head + a->sent) % a->cap;
        size_t n = a->len - a->sent;
        if (n > a->cap - at) n = a->cap - at;
        if (n > DG_FRAME_MAX) n = DG_FRAME_MAX;
        /* A failure means the socket is going: on_close follows and the ring is resent. */
        if (cs_wsconn_send(&s->ws, CS_WS_OP_BINARY, a->buf + at, n) < 0) return;
        if (!s->unanswered) s->awaiting_ms = now_ms(s);
        a->sent += n;
        s->unanswered += n;
        s->last_tx_ms = now_ms(s);
    }
}

/* Sends what is pending; once closing and everything is out, CloseStream. */
static void pump(cs_stt_session *s)
{
    if (s->state != DG_OPEN) return;
    send_audio(s);
    if (s->closing && !s->close_stream_sent && s->audio.sent == s->audio.len)
        s->close_stream_sent = send_control(s, DG_CLOSESTREAM);
}

static void connect_now(cs_stt_session *s);
static void finish(cs_stt_session *s);
static void release(cs_stt_session *s);

/* The next attempt, at once for the first audio or after a backoff: connect if there is
 * audio to send, else wait for the next audio. Deepgram: "You must stream audio to the new
 * connection within 10 seconds of opening, or the connection will close due to lack of
 * data", KeepAlive or not (docs/recovering-from-connection-errors-and-timeouts-when-live-
 * streaming-audio). */
static void on_retry_timer(uv_timer_t *t)
{
    cs_stt_session *s = t->data;
    if (s->audio.len)
        connect_now(s);
    else
        s->state = DG_IDLE;
}

static void on_finish_timer(uv_timer_t *t)
{
    finish(t->data);
}

/* Finishing on the loop, never inside the caller's own call. */
static void finish_soon(cs_stt_session *s)
{
    uv_timer_start(&s->step, on_finish_timer, 0, 0);
}

/* Once closing: the final results are due after `wait_ms` (a backoff), the backlog sent
 * again at the rate Deepgram takes it, and DG_CLOSE_MARGIN_MS; never later than
 * DG_CLOSE_MAX_MS after close(), and never sooner than an earlier deadline. The whole
 * backlog counts: after a reconnection all of it is resent, and even on a working
 * connection Deepgram may still be working through a resend. */
static void extend_close_deadline(cs_stt_session *s, uint64_t wait_ms)
{
    uint64_t backlog_ms = s->audio.len / DG_BYTES_PER_MS;
    uint64_t due =
        now_ms(s) + wait_ms + backlog_ms * DG_RATE_DEN / DG_RATE_NUM + DG_CLOSE_MARGIN_MS;
    uint64_t max = s->close_started_ms + DG_CLOSE_MAX_MS;
    if (due > max) due = max;
    if (due > s->close_deadline_ms) s->close_deadline_ms = due;
}

static void give_up(cs_stt_session *s, int err, const char *why)
{
    s->state = DG_FAILED;
    s->e->st.failures++;
    cs_warn("deepgram %s: giving up, no transcript for the rest of the call: %s", s->label, why);
    s->o.on_error(s->o.data, err, why);
    if (s->closing) finish_soon(s);
}

static void retry(cs_stt_session *s, const char *why)
{
    s->state = DG_WAITING;
    if (++s->attempts >= DG_MAX_ATTEMPTS) {
        char msg[DG_WHY_MAX + 32];
        snprintf(msg, sizeof msg, "%s (%u attempts)", why, s->attempts);
        give_up(s, CS_EBACKEND, msg);
    } else if (s->closing && !s->audio.len) {
        finish(s); /* nothing left for Deepgram to finalize */
    } else {
        unsigned ms = cs_backoff_ms(s->attempts, DG_BACKOFF_MIN_MS, DG_BACKOFF_MAX_MS);
        s->e->st.reconnects++;
        cs_warn("deepgram %s: %s; reconnecting in %u ms", s->label, why, ms);
        if (s->closing) extend_close_deadline(s, ms);
        uv_timer_start(&s->step, on_retry_timer, ms, 0);
    }
}

/* An upgrade refused with 4xx will be refused again (bad key, no credit, bad parameters);
 * 408, 429 and 5xx are worth another try (docs/stt-troubleshooting-websocket-data-and-net-
 * errors). */
static bool refusal_is_final(int status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

/* Deepgram: the reason in the close frame of a failed stream; NET-0000 and NET-0001 both
 * come with 1011 (docs/stt-troubleshooting-websocket-data-and-net-errors). Audio that
 * cannot be decoded will not decode on a new connection either. */
static const struct {
    const char *reason;
    const char *means;
    bool final;
} close_reasons[] = {
    {"DATA-0000", "the audio could not be decoded", true},
    {"NET-0000", "Deepgram sent no result in time", false},
    {"NET-0001", "no audio or KeepAlive reached Deepgram in time", false},
};

static void on_ws_open(cs_wsconn *ws)
{
    cs_stt_session *s = ws->data;
    s->state = DG_OPEN;
    s->last_tx_ms = now_ms(s);
    cs_debug("deepgram %s: connected, request %s", s->label,
             s->request_id[0] ? s->request_id : "?");
    pump(s);
}

/* The upgrade's answer: Deepgram names the request in dg-request-id, and a refusal's
 * reason in dg-error and in the body (docs/stt-troubleshooting-websocket-data-and-net-
 * errors). */
static void on_ws_upgrade(cs_wsconn *ws, const cs_http_resp *resp, const char *body, size_t len)
{
    cs_stt_session *s = ws->data;
    const cs_str *id = cs_http_header_get(resp->headers, resp->nheaders, "dg-request-id");
    const cs_str *error = cs_http_header_get(resp->headers, resp->nheaders, "dg-error");
    if (id) copy_printable(s->request_id, sizeof s->request_id, id->p, id->n);
    if (error)
        copy_printable(s->said, sizeof s->said, error->p, error->n);
    else
        copy_printable(s->said, sizeof s->said, body, len);
}

/* One line on what ended a connection: the refusal, Error message, transport failure or
 * close frame, and the request id for Deepgram's support. *final when retrying is futile. */
static void describe_close(const cs_stt_session *s, uint16_t code, int err, char *why, size_t cap,
                           bool *final)
{
    int status = s->ws.http_status, n;
    const char *reason = s->ws.close_reason;
    *final = false;
    if (status && status != 101) {
        *final = refusal_is_final(status);
        n = snprintf(why, cap, "Deepgram refused the connection with HTTP %d%s%s", status,
                     s->said[0] ? ": " : "", s->said);
    } else if (s->said[0]) {
        n = snprintf(why, cap, "Deepgram error: %s", s->said);
    } else if (err) {
        n = snprintf(why, cap, "connection failed: %s", cs_strerror(err));
    } else {
        size_t i = 0, nr = sizeof close_reasons / sizeof *close_reasons;
        while (i < nr && strncmp(reason, close_reasons[i].reason, strlen(close_reasons[i].reason)))
            i++;
        char text[sizeof s->ws.close_reason];
        copy_printable(text, sizeof text, reason, strlen(reason));
        *final = i < nr && close_reasons[i].final;
        n = snprintf(why, cap, "Deepgram closed the stream with %u%s%s%s%s%s", code,
                     text[0] ? " " : "", text, i < nr ? " (" : "",
                     i < nr ? close_reasons[i].means : "", i < nr ? ")" : "");
    }
    if (s->request_id[0] && n >= 0 && (size_t)n < cap)
        snprintf(why + n, cap - (size_t)n, ", request %s", s->request_id);
}

static void on_ws_close(cs_wsconn *ws, uint16_t code, int err)
{
    cs_stt_session *s = ws->data;
    if (s->state == DG_DONE) {
        release(s);
        return;
    }
    if (s->close_stream_sent && (s->flushed || code == CS_WS_CLOSE_NORMAL)) {
        finish(s);
        return;
    }
    char why[DG_WHY_MAX];
    bool final;
    describe_close(s, code, err, why, sizeof why, &final);
    if (final)
        give_up(s, s->ws.http_status == 401 || s->ws.http_status == 403 ? CS_EAUTH : CS_EBACKEND,
                why);
    else
        retry(s, why);
}

static const cs_wsconn_ops ws_ops = {
    .on_open = on_ws_open,
    .on_upgrade = on_ws_upgrade,
    .on_message = on_ws_message,
    .on_close = on_ws_close,
};

static void connect_now(cs_stt_session *s)
{
    s->state = DG_CONNECTING;
    s->close_stream_sent = s->flushed = false;
    s->unanswered = 0;
    s->request_id[0] = s->said[0] = '\0';
    audio_rewind(&s->audio);
    s->resent = s->audio.len;
    int rc = cs_wsconn_connect(&s->ws, s->e->net, s->url, s->e->auth, DG_MAX_MESSAGE, &ws_ops, s);
    if (rc < 0 && s->ws.conn) {
        cs_wsconn_abort(&s->ws, rc); /* the socket exists: on_ws_close takes it from here */
    } else if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot connect: %s", cs_strerror(rc));
        retry(s, why);
    }
}

/* ---- timers and the end ---- */

static void on_timer_closed(uv_handle_t *h)
{
    cs_stt_session *s = h->data;
    if (--s->handles) return;
    void (*on_closed)(void *) = s->o.on_closed;
    void *data = s->o.data;
    s->e->st.sessions_open--;
    free(s->audio.buf);
    free(s->url);
    free(s);
    on_closed(data);
}

/* The socket is gone: the timers go, then on_closed. */
static void release(cs_stt_session *s)
{
    uv_close((uv_handle_t *)&s->step, on_timer_closed);
    uv_close((uv_handle_t *)&s->tick, on_timer_closed);
}

/* Ends the session: what is left of the utterance becomes final, then the socket and the
 * timers go. */
static void finish(cs_stt_session *s)
{
    if (s->state == DG_DONE) return;
    if (s->state != DG_FAILED) utt_flush(s);
    s->state = DG_DONE;
    if (s->ws.conn)
        cs_wsconn_abort(&s->ws, 0); /* on_ws_close releases */
    else
        release(s);
}

/* Deepgram has said nothing about DG_STALL_MS of audio for DG_STALL_MS: the stream is
 * stuck (its own NET-0000 timeout would have closed it by then). Both conditions, so
 * neither a burst resent after a reconnection nor a pause in the call's audio counts. */
static bool stalled(const cs_stt_session *s, uint64_t now)
{
    return s->unanswered >= (size_t)DG_STALL_MS * DG_BYTES_PER_MS &&
           now - s->awaiting_ms >= DG_STALL_MS;
}

static void on_tick(uv_timer_t *t)
{
    cs_stt_session *s = t->data;
    uint64_t now = now_ms(s);
    if (s->closing && now >= s->close_deadline_ms) {
        cs_warn("deepgram %s: the stream did not end within %llu ms of the call's end; closing it",
                s->label, (unsigned long long)(now - s->close_started_ms));
        s->e->st.close_timeouts++;
        finish(s);
    } else if (s->state == DG_OPEN && stalled(s, now)) {
        cs_warn("deepgram %s: no answer to %d s of audio", s->label, DG_STALL_MS / 1000);
        cs_wsconn_abort(&s->ws, -ETIMEDOUT);
    } else if (s->state == DG_OPEN && !s->close_stream_sent &&
               now - s->last_tx_ms >= DG_KEEPALIVE_MS) {
        send_control(s, DG_KEEPALIVE);
    }
}

/* ---- the engine ---- */

/* "phrase /1e-20/" → "phrase": the threshold has no Deepgram counterpart. */
static cs_str keyword_phrase(const char *line, size_t n)
{
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r')) n--;
    if (n && line[n - 1] == '/') {
        const char *slash = memrchr(line, '/', n - 1);
        if (slash) n = (size_t)(slash - line);
    }
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
    while (n && (*line == ' ' || *line == '\t')) line++, n--;
    return (cs_str){line, n};
}

/* Splits the next blank-separated word off *rest; false when none is left. */
static bool next_word(cs_str *rest, cs_str *word)
{
    while (rest->n && (*rest->p == ' ' || *rest->p == '\t')) rest->p++, rest->n--;
    size_t n = 0;
    while (n < rest->n && rest->p[n] != ' ' && rest->p[n] != '\t') n++;
    *word = (cs_str){rest->p, n};
    rest->p += n;
    rest->n -= n;
    return n > 0;
}

/* "&name=" and the words of `term`, joined by %20 (Deepgram: a keyterm phrase is one
 * parameter with its spaces as %20, docs/keyterm). */
static int put_term(cs_buf *b, const char *name, cs_str term)
{
    int rc = cs_buf_printf(b, "&%s=", name);
    cs_str word;
    for (bool first = true; rc == 0 && next_word(&term, &word); first = false) {
        if (!first) rc = cs_buf_puts(b, "%20");
        if (rc == 0) rc = cs_form_encode(b, word.p, word.n);
    }
    return rc;
}

/* The engine's URL plus the boosting parameters for the phrases of `list`, separated by
 * `sep`. Deepgram: Nova-3 takes keyterm, one per phrase; older models take keywords and
 * boost a phrase word by word, so each word is sent as its own keyword (docs/keyterm,
 * docs/keywords). At most DG_MAX_TERMS go out; *terms counts those in the list. CS_EPARSE
 * when they do not fit in a URL. Caller frees. */
static int session_url(const cs_stt *e, const char *list, char sep, char **out, size_t *terms)
{
    cs_buf b = CS_BUF_INIT(CS_URL_MAX - 1);
    int rc = cs_buf_puts(&b, e->url);
    const char seps[] = {sep, '\0'};
    *terms = 0;
    for (const char *p = list; rc == 0 && p && *p;) {
        size_t n = strcspn(p, seps);
        cs_str phrase = keyword_phrase(p, n), word;
        p += n + (p[n] == sep);
        if (e->keyterm) {
            if (phrase.n && (*terms)++ < DG_MAX_TERMS) rc = put_term(&b, "keyterm", phrase);
        } else {
            while (rc == 0 && next_word(&phrase, &word))
                if ((*terms)++ < DG_MAX_TERMS) rc = put_term(&b, "keywords", word);
        }
    }
    if (rc == 0) {
        *out = cs_buf_detach(&b, NULL);
        return 0;
    }
    cs_buf_free(&b);
    return rc == -EMSGSIZE ? CS_EPARSE : rc;
}

static const char *term_name(const cs_stt *e)
{
    return e->keyterm ? "keyterms" : "keywords (words, on this model)";
}

static int dg_open(cs_stt *e, const cs_stt_session_opts *o, cs_stt_session **out)
{
    *out = NULL;
    const char *label = o->label ? o->label : "";
    if (o->grammar) {
        cs_warn("deepgram %s: Deepgram takes no grammar (keywords instead)", label);
        return CS_EPARSE;
    }
    if (e->st.sessions_open >= e->max_sessions) {
        e->st.refused++;
        return CS_EFULL;
    }
    cs_stt_session *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    size_t terms;
    int rc = session_url(e, o->keywords, '\n', &s->url, &terms);
    if (rc == 0) rc = audio_init(&s->audio);
    if (rc < 0) {
        if (rc == CS_EPARSE) cs_warn("deepgram %s: too many keywords for one URL", label);
        free(s->audio.buf);
        free(s->url);
        free(s);
        return rc;
    }
    if (terms > DG_MAX_TERMS) {
        e->st.keywords_cut += terms - DG_MAX_TERMS;
        cs_warn("deepgram %s: Deepgram takes at most %d %s: only the first %d of %zu are sent",
                label, DG_MAX_TERMS, term_name(e), DG_MAX_TERMS, terms);
    }
    s->e = e;
    s->o = *o;
    snprintf(s->label, sizeof s->label, "%s", label);
    s->o.label = s->label;
    uv_timer_init(e->loop, &s->step);
    uv_timer_init(e->loop, &s->tick);
    s->step.data = s->tick.data = s;
    s->handles = 2;
    uv_timer_start(&s->tick, on_tick, DG_TICK_MS, DG_TICK_MS);
    e->st.sessions_open++;
    e->st.sessions_total++;
    s->state = DG_IDLE; /* the first audio connects */
    *out = s;
    return 0;
}

static void dg_feed(cs_stt_session *s, uint32_t pos_ms, const uint8_t *ulaw, size_t n)
{
    if (s->closing || s->state == DG_FAILED || !n) return;
    s->e->audio_bytes += n;
    s->e->dropped_bytes += audio_add(&s->audio, (uint64_t)pos_ms * DG_BYTES_PER_MS, ulaw, n);
    if (s->state == DG_IDLE && s->audio.len) {
        s->state = DG_WAITING; /* connect on the loop, never inside the caller's feed */
        uv_timer_start(&s->step, on_retry_timer, 0, 0);
    } else {
        pump(s);
    }
}

static void dg_close(cs_stt_session *s)
{
    if (s->closing) return;
    s->closing = true;
    s->close_started_ms = now_ms(s);
    if (s->state == DG_FAILED || s->state == DG_IDLE || (s->state == DG_WAITING && !s->audio.len)) {
        finish_soon(s); /* nothing left for Deepgram to finalize */
        return;
    }
    extend_close_deadline(s, s->state == DG_WAITING ? uv_timer_get_due_in(&s->step) : 0);
    pump(s); /* when connecting, on_ws_open does it */
}

static void dg_stats(cs_stt *e, cs_stt_stats *out)
{
    *out = e->st;
    out->audio_ms = e->audio_bytes / DG_BYTES_PER_MS;
    out->dropped_ms = e->dropped_bytes / DG_BYTES_PER_MS;
}

static void dg_destroy(cs_stt *e)
{
    if (!e) return;
    if (e->net) cs_net_free(e->net);
    free(e->url);
    free(e->auth);
    free(e);
}

/* DEEPGRAM_URL with the shared query parameters; CS_ECONFIG unless it is ws:// or wss://. */
static int base_url(cs_stt *e, const cs_config *cfg, cs_buf *err)
{
    const char *url = cfg->deepgram_url, *model = cfg->deepgram_model;
    cs_buf b = CS_BUF_INIT(CS_URL_MAX - 1);
    int rc = cs_buf_printf(&b, "%s%c" DG_QUERY, url, strchr(url, '?') ? '&' : '?', DG_SAMPLE_RATE,
                           DG_ENDPOINTING_MS, DG_UTTERANCE_END_MS);
    if (rc == 0 && model[0]) {
        rc = cs_buf_puts(&b, "&model=");
        if (rc == 0) rc = cs_form_encode(&b, model, strlen(model));
    }
    cs_url u;
    if (rc < 0 || cs_url_parse(&u, b.data) < 0 ||
        (strcmp(u.scheme, "ws") != 0 && strcmp(u.scheme, "wss") != 0)) {
        cs_buf_printf(err, "DEEPGRAM_URL must be a ws:// or wss:// URL, not \"%s\"", url);
        cs_buf_free(&b);
        return CS_ECONFIG;
    }
    e->url = cs_buf_detach(&b, NULL);
    e->keyterm = strncmp(model, "nova-3", 6) == 0;
    if (u.tls && cs_net_tls_client(e->net, NULL, true) < 0) {
        cs_buf_puts(err, "cannot load the system's CA certificates for DEEPGRAM_URL");
        return CS_ECONFIG;
    }
    return 0;
}

/* STT_KEYWORDS, the keywords of every call, within Deepgram's limit. */
static int check_keywords(const cs_stt *e, const char *list, cs_buf *err)
{
    char *url;
    size_t terms;
    int rc = session_url(e, list, ',', &url, &terms);
    if (rc == CS_EPARSE) {
        cs_buf_puts(err, "STT_KEYWORDS is too long for a Deepgram request");
        return CS_ECONFIG;
    }
    if (rc < 0) return rc;
    free(url);
    if (terms <= DG_MAX_TERMS) return 0;
    cs_buf_printf(err, "STT_KEYWORDS: Deepgram takes at most %d %s, not %zu", DG_MAX_TERMS,
                  term_name(e), terms);
    return CS_ECONFIG;
}

static int dg_create(cs_stt **out, const cs_config *cfg, uv_loop_t *loop, cs_mailbox *mb,
                     cs_buf *err)
{
    (void)mb; /* results are produced on the loop itself */
    *out = NULL;
    const char *key = cfg->deepgram_api_key;
    if (!key[0] || strpbrk(key, "\r\n")) {
        cs_buf_puts(err, key[0] ? "DEEPGRAM_API_KEY must be one line"
                                : "STT=deepgram needs DEEPGRAM_API_KEY");
        return CS_ECONFIG;
    }
    cs_stt *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->loop = loop;
    e->max_sessions = (uint64_t)cfg->stt_max_sessions;
    cs_buf auth = CS_BUF_INIT(strlen(key) + 64);
    int rc = cs_buf_printf(&auth, "Authorization: Token %s\r\n", key);
    e->auth = cs_buf_detach(&auth, NULL);
    if (rc == 0) rc = cs_net_new(&e->net, loop);
    if (rc == 0) rc = base_url(e, cfg, err);
    if (rc == 0) rc = check_keywords(e, cfg->stt_keywords, err);
    if (rc < 0) {
        dg_destroy(e);
        return rc;
    }
    *out = e;
    return 0;
}

const cs_stt_ops cs_stt_deepgram = {
    .name = "deepgram",
    .create = dg_create,
    .destroy = dg_destroy,
    .open = dg_open,
    .feed = dg_feed,
    .close = dg_close,
    .stats = dg_stats,
};
