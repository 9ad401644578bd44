/* espeak-ng as a TTS engine: fast (hundreds of times real time), robotic, many languages.
 * The library's state is global: each engine (one per event loop) has one worker thread,
 * and the workers take turns at the library under one lock, which also guards what the
 * library was last set to. espeak-ng
 * speaks at 22,050 Hz; tts.c converts to 8 kHz. Word timings come from its word events
 * (character positions in the sentence, ms into its audio).
 *
 * The library is initialized once per process and never terminated: espeak-ng 1.51
 * deadlocks in the second espeak_ng_Terminate after a re-initialization (its fifo thread
 * leaves my_command_is_running set), so engines come and go on one initialization. */
#include <espeak-ng/espeak_ng.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "tts/tts_int.h"

#define DEFAULT_VOICE "en-us"
#define CHUNK_MS      50 /* audio per callback: how soon a cancel stops a sentence */

typedef struct es_engine {
    cs_tts base;
    /* The worker's, while it holds the library */
    const tts_req *req; /* the sentence being spoken */
    tts_audio *out;
    int err;
} es_engine;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static espeak_ng_STATUS init_status;
static int sample_rate;
/* The library, under `lib_lock`: the engine speaking (the callback has no context of its
 * own) and the voice, rate and pitch it was last set to. */
static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
static es_engine *running;
static char voice_now[CS_TTS_VOICE_MAX]; /* "" when unknown */
static int rate_now = -1, pitch_now = -1;

static void init_library(void)
{
    espeak_ng_InitializePath(NULL);
    espeak_ng_ERROR_CONTEXT ctx = NULL;
    init_status = espeak_ng_Initialize(&ctx);
    espeak_ng_ClearErrorContext(&ctx);
    if (init_status == ENS_OK)
        init_status = espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, CHUNK_MS, NULL);
    if (init_status == ENS_OK) sample_rate = espeak_ng_GetSampleRate();
}

static void describe(espeak_ng_STATUS st, char *out, size_t cap, const char *what)
{
    char msg[128];
    espeak_ng_GetStatusCodeMessage(st, msg, sizeof msg);
    snprintf(out, cap, "espeak-ng: %s: %s", what, msg);
}

/* Byte offset of character `chars` (0-based) of UTF-8 text. */
static size_t byte_of(const char *text, size_t len, long chars)
{
    size_t i = 0;
    for (; i < len && chars > 0; chars--) {
        i++;
        while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

/* Audio and events as the library makes them; 1 stops the sentence. */
static int on_synth(short *wav, int n, espeak_EVENT *ev)
{
    es_engine *e = running;
    const tts_req *r = e->req;
    if (atomic_load(r->stop)) return 1;
    for (; ev && ev->type != espeakEVENT_LIST_TERMINATED; ev++) {
        if (ev->type != espeakEVENT_WORD || ev->text_position < 1) continue;
        /* text_position counts characters from 1; length is in characters too */
        size_t off = byte_of(r->text, r->len, ev->text_position - 1);
        size_t end = byte_of(r->text, r->len, ev->text_position - 1 + ev->length);
        int rc =
            tts_audio_word(e->out, r->text, r->len, off, end - off, (uint32_t)ev->audio_position);
        if (rc < 0) {
            e->err = rc;
            return 1;
        }
    }
    if (wav && n > 0) {
        int rc = tts_audio_add(e->out, wav, (size_t)n);
        if (rc == -ENOMEM) e->err = rc;
        if (rc < 0) return 1; /* or cut at CS_TTS_SENTENCE_MS */
    }
    return 0;
}

/* Sets the library's voice (lib_lock held): 0 or its status. */
static espeak_ng_STATUS set_voice(const char *voice)
{
    if (strcmp(voice_now, voice) == 0) return ENS_OK;
    voice_now[0] = '\0';
    espeak_ng_STATUS st = espeak_ng_SetVoiceByName(voice);
    if (st != ENS_OK) return st;
    snprintf(voice_now, sizeof voice_now, "%s", voice);
    rate_now = pitch_now = -1; /* a voice brings its own */
    return ENS_OK;
}

static int synth_locked(es_engine *e, const tts_req *r, tts_audio *a)
{
    espeak_ng_STATUS st;
    a->rate = (unsigned)sample_rate;
    if ((st = set_voice(r->voice)) != ENS_OK) {
        describe(st, a->why, sizeof a->why, r->voice);
        return CS_ECONFIG;
    }
    if (r->rate != rate_now && (st = espeak_ng_SetParameter(espeakRATE, r->rate, 0)) == ENS_OK)
        rate_now = r->rate;
    if (r->pitch != pitch_now && (st = espeak_ng_SetParameter(espeakPITCH, r->pitch, 0)) == ENS_OK)
        pitch_now = r->pitch;
    running = e;
    e->req = r;
    e->out = a;
    e->err = 0;
    /* Plain text: no SSML, no [[phonemes]], whatever a caller or a model wrote. */
    st = espeak_ng_Synthesize(r->text, r->len + 1, 0, POS_CHARACTER, 0,
                              espeakCHARS_UTF8 | espeakENDPAUSE, NULL, NULL);
    e->req = NULL;
    e->out = NULL;
    running = NULL;
    if (e->err < 0) return e->err;
    if (st != ENS_OK && st != ENS_SPEECH_STOPPED) {
        describe(st, a->why, sizeof a->why, "synthesis failed");
        return CS_EBACKEND;
    }
    return 0;
}

static int es_synth(cs_tts *base, const tts_req *r, tts_audio *a)
{
    pthread_mutex_lock(&lib_lock);
    int rc = synth_locked((es_engine *)base, r, a);
    pthread_mutex_unlock(&lib_lock);
    return rc;
}

static void es_release(cs_tts *base)
{
    (void)base;
}

static const tts_engine engine = {.name = "espeak", .synth = es_synth, .release = es_release};

static int es_create(cs_tts **out, const cs_tts_env *env, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    pthread_once(&init_once, init_library);
    if (init_status != ENS_OK) {
        char why[200];
        describe(init_status, why, sizeof why, "cannot start");
        cs_buf_printf(err, "%s (is espeak-ng-data installed?)", why);
        return CS_EBACKEND;
    }
    const char *voice = cfg->tts_voice[0] ? cfg->tts_voice : DEFAULT_VOICE;
    if (strlen(voice) >= CS_TTS_VOICE_MAX) {
        cs_buf_printf(err, "TTS_VOICE: longer than %d bytes", CS_TTS_VOICE_MAX - 1);
        return CS_ECONFIG;
    }
    pthread_mutex_lock(&lib_lock);
    espeak_ng_STATUS st = set_voice(voice);
    if (st == ENS_OK) espeak_SetSynthCallback(on_synth);
    pthread_mutex_unlock(&lib_lock);
    if (st != ENS_OK) {
        char why[200];
        describe(st, why, sizeof why, voice);
        cs_buf_printf(err,
                      "TTS_VOICE: %s (voices are files under espeak-ng-data/voices, "
                      "e.g. en-us, en, en-gb-scotland, with +f1…+f5 or +m1…+m7 for variants)",
                      why);
        return CS_ECONFIG;
    }
    es_engine *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    int rc = tts_start(&e->base, &engine, cfg, voice, 1, env->mb, err);
    if (rc < 0) {
        free(e);
        return rc;
    }
    cs_info("espeak-ng: voice %s, %d Hz, one worker thread", voice, sample_rate);
    *out = &e->base;
    return 0;
}

const cs_tts_ops cs_tts_espeak = {
    .name = "espeak",
    .create = es_create,
    .destroy = tts_destroy,
    .speak = tts_speak,
    .cancel = tts_cancel,
    .stats = tts_stats,
};
