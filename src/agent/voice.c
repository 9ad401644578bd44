#include "agent/voice.h"

#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#define QUEUE_MAX (256u << 10) /* text waiting for the engine */

/* What waits for the engine: a sentence of an utterance, or its end. */
typedef struct entry {
    uint32_t utt;
    uint32_t len; /* of the text that follows; 0 with `end` */
    bool end;
} entry;

void cs_voice_init(cs_voice *v, cs_agent *a, const cs_tts_ops *ops, cs_tts *tts)
{
    memset(v, 0, sizeof *v);
    v->agent = a;
    v->ops = ops;
    v->tts = tts;
    cs_splitter_init(&v->split);
    cs_buf_init(&v->queue, QUEUE_MAX);
    cs_buf_init(&v->sentence, CS_SENTENCE_MAX + 1);
}

static int push(cs_voice *v, uint32_t utt, const char *text, size_t len, bool end)
{
    entry e = {utt, (uint32_t)len, end};
    size_t keep = v->queue.len;
    if (cs_buf_append(&v->queue, &e, sizeof e) < 0 || cs_buf_append(&v->queue, text, len) < 0) {
        cs_buf_truncate(&v->queue, keep);
        return CS_EFULL;
    }
    return 0;
}

static void kick(cs_voice *v);

/* ---- the engine's results ---- */

static void on_audio(void *data, const uint8_t *ulaw, size_t n)
{
    cs_voice *v = data;
    cs_stream *s = v->agent->stream;
    int rc = s ? cs_stream_say_audio(s, v->making, ulaw, n) : CS_ECLOSED;
    if (rc == CS_ECLOSED) {
        /* Cleared (or the stream ended): nothing more of this utterance is wanted. */
        cs_voice_stop(v);
    } else if (rc < 0) {
        cs_warn("voice: audio refused: %s", cs_strerror(rc));
    }
}

static void on_sentence(void *data, const char *text, size_t len, const cs_tts_word *words,
                        size_t nwords, uint32_t audio_ms)
{
    (void)audio_ms;
    cs_voice *v = data;
    cs_stream *s = v->agent->stream;
    if (!s) return;
    cs_word w[256];
    size_t n = nwords <= sizeof w / sizeof *w ? nwords : 0; /* more: heard in proportion */
    for (size_t i = 0; i < n; i++) w[i] = (cs_word){words[i].off, words[i].len, words[i].start_ms};
    int rc = cs_stream_say_sentence(s, v->making, text, len, n ? w : NULL, n);
    if (rc < 0 && rc != CS_ECLOSED) cs_warn("voice: sentence refused: %s", cs_strerror(rc));
}

static void on_error(void *data, const char *why)
{
    cs_voice *v = data;
    snprintf(v->why, sizeof v->why, "%s", why);
}

static int speak(cs_voice *v, const cs_tts_ops *ops, cs_tts *tts, const char *text, size_t len);

/* The cloud engine failed the sentence being made: the fallback says it again, and the
 * rest of its utterance. Whether it took over. */
static bool fall_back(cs_voice *v, int err)
{
    cs_tts_fallback *fb = v->fallback;
    if (!fb || !v->job_ops->cloud || !v->agent->stream || v->fell_back == v->making) return false;
    v->fell_back = v->making;
    fb->utterances++;
    cs_buf b = CS_BUF_INIT(1024);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "state", "tts_fallback");
    cs_json_kstr(&j, "engine", v->job_ops->name);
    cs_json_kstr(&j, "error", v->why[0] ? v->why : cs_strerror(err));
    cs_json_kstr(&j, "fallback", fb->ops->name);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) cs_agent_event(v->agent, b.data);
    cs_buf_free(&b);
    cs_warn("voice: %s failed (%s); %s speaks the rest of the utterance", v->job_ops->name,
            v->why[0] ? v->why : cs_strerror(err), fb->ops->name);
    return speak(v, fb->ops, fb->tts, v->sentence.data, v->sentence.len) == 0;
}

static void on_done(void *data, int err)
{
    cs_voice *v = data;
    v->job = NULL;
    if (err < 0 && fall_back(v, err)) return;
    v->why[0] = '\0';
    if (err < 0) {
        cs_warn("voice: the engine failed on a sentence: %s", cs_strerror(err));
        if (v->failed) v->failed(v->agent, err);
    }
    kick(v);
}

/* Starts on what waits, in order: an utterance's end, or its next sentence. */
static void kick(cs_voice *v)
{
    while (!v->job && v->queue_head < v->queue.len) {
        entry e;
        memcpy(&e, v->queue.data + v->queue_head, sizeof e);
        const char *text = v->queue.data + v->queue_head + sizeof e;
        v->queue_head += sizeof e + e.len;
        if (v->queue_head == v->queue.len) {
            cs_buf_reset(&v->queue);
            v->queue_head = 0;
        }
        cs_stream *s = v->agent->stream;
        if (!s) continue;
        if (e.end) {
            cs_stream_say_end(s, e.utt);
            continue;
        }
        v->making = e.utt;
        bool fb = v->fallback && v->fell_back == e.utt;
        int rc =
            speak(v, fb ? v->fallback->ops : v->ops, fb ? v->fallback->tts : v->tts, text, e.len);
        if (rc < 0) {
            cs_warn("voice: cannot speak a sentence: %s", cs_strerror(rc));
            if (v->failed) v->failed(v->agent, rc);
        }
    }
}

/* Starts `text` (a sentence of v->making) on an engine. */
static int speak(cs_voice *v, const cs_tts_ops *ops, cs_tts *tts, const char *text, size_t len)
{
    if (text != v->sentence.data) {
        cs_buf_reset(&v->sentence);
        if (cs_buf_append(&v->sentence, text, len) < 0) cs_buf_reset(&v->sentence);
    }
    bool cloud_voice = ops == v->ops; /* its own engine: the voice's name and manner */
    cs_tts_opts o = {
        .text = text,
        .len = len,
        .voice = cloud_voice ? v->name : NULL,
        .rate = v->rate,
        .pitch = v->pitch,
        .on_audio = on_audio,
        .on_sentence = on_sentence,
        .on_done = on_done,
        .on_error = on_error,
        .data = v,
    };
    v->job_ops = ops;
    int rc = ops->speak(tts, &o, &v->job);
    if (rc < 0) v->job = NULL;
    return rc;
}

/* ---- what the agent says ---- */

/* The utterance text is fed to: the open one, or a new one. */
static int open_utt(cs_voice *v, uint32_t *utt)
{
    if (v->utt && !v->ending) {
        *utt = v->utt;
        return 0;
    }
    if (!v->agent->stream) return CS_ECLOSED;
    int rc = cs_stream_say_begin(v->agent->stream, utt);
    if (rc < 0) return rc;
    v->utt = *utt;
    v->ending = false;
    return 0;
}

/* Queues the complete sentences the splitter holds (all of it with `flush`). */
static int take_sentences(cs_voice *v, uint32_t utt, bool flush)
{
    const char *text;
    size_t len;
    int rc = 0;
    while (rc == 0 && cs_splitter_next(&v->split, flush, &text, &len))
        rc = push(v, utt, text, len, false);
    return rc;
}

/* A stream that carries text: the provider speaks, each piece goes as it comes. */
static bool relay(const cs_voice *v)
{
    return v->agent->stream && cs_stream_relay(v->agent->stream);
}

int cs_voice_feed(cs_voice *v, const char *text, size_t len)
{
    uint32_t utt;
    int rc = open_utt(v, &utt);
    if (rc < 0) return rc;
    if (relay(v)) {
        rc = cs_stream_say_text(v->agent->stream, utt, text, len);
        if (rc == CS_ECLOSED) cs_voice_stop(v); /* cut: nothing more of it is wanted */
        return rc;
    }
    if ((rc = cs_splitter_feed(&v->split, text, len)) < 0) return rc;
    if ((rc = take_sentences(v, utt, false)) < 0) return rc;
    kick(v);
    return 0;
}

int cs_voice_end(cs_voice *v)
{
    if (!v->utt || v->ending) return 0;
    if (relay(v)) {
        v->ending = true;
        int rc = cs_stream_say_end(v->agent->stream, v->utt);
        return rc == CS_ECLOSED ? 0 : rc;
    }
    int rc = take_sentences(v, v->utt, true);
    if (rc == 0) rc = push(v, v->utt, "", 0, true);
    v->ending = true;
    kick(v);
    return rc;
}

int cs_voice_abandon(cs_voice *v)
{
    cs_splitter_free(&v->split);
    return cs_voice_end(v);
}

int cs_voice_say(cs_voice *v, const char *text, size_t len)
{
    int rc = cs_voice_end(v);
    if (rc == 0) rc = cs_voice_feed(v, text, len);
    if (rc == 0) rc = cs_voice_end(v);
    return rc;
}

void cs_voice_stop(cs_voice *v)
{
    if (v->job) {
        v->job_ops->cancel(v->job);
        v->job = NULL;
    }
    cs_stream *s = v->agent->stream;
    /* Utterances not cleared still end, so what follows them may play. */
    for (size_t at = v->queue_head; s && at < v->queue.len;) {
        entry e;
        memcpy(&e, v->queue.data + at, sizeof e);
        if (e.end) cs_stream_say_end(s, e.utt);
        at += sizeof e + e.len;
    }
    if (s && v->utt && !v->ending) cs_stream_say_end(s, v->utt);
    cs_buf_reset(&v->queue);
    v->queue_head = 0;
    cs_splitter_free(&v->split);
    v->utt = 0;
    v->ending = false;
}

bool cs_voice_busy(const cs_voice *v)
{
    return v->job || v->queue_head < v->queue.len || (v->utt && !v->ending);
}

void cs_voice_free(cs_voice *v)
{
    cs_voice_stop(v);
    cs_buf_free(&v->queue);
    cs_buf_free(&v->sentence);
}
