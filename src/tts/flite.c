/* flite as a TTS engine: CMU's small synthesizer, English only. Voices: kal (diphone,
 * natively 8 kHz, fast and robotic) and slt, rms, awb (clustergen, 16 kHz, more natural,
 * about ten times slower). They are loaded once per process and shared read-only by
 * TTS_THREADS workers: flite keeps everything about a sentence in its utterance and links
 * the voice's features into it without copying or changing them (utt_init), so workers
 * speak different sentences at once. Rate and pitch are set on each utterance
 * (duration_stretch, int_f0_target_mean), never on the shared voice.
 *
 * Word timings: each Token (a word as written, "3.5") is found in the sentence and starts
 * where the first segment of its first spoken word starts. A cancel takes effect after
 * the sentence being made: flite cannot stop an utterance midway. */
#include <flite/cst_cg.h>
#include <flite/flite.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "tts/tts_int.h"

#define DEFAULT_VOICE "slt"
#define NATURAL_WPM                                                                                \
    175.0f /* what the voices speak at unstretched (measured: like espeak-ng's                     \
              175 on the same text) */

/* The voice libraries' entry points (flite ships no header for them). */
cst_voice *register_cmu_us_kal(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);

typedef struct fl_voice {
    const char *name;
    cst_voice *(*load)(const char *voxdir);
    cst_voice *v;  /* after loading */
    float stretch; /* the voice's own duration_stretch */
    float f0;      /* its own mean pitch, Hz */
} fl_voice;

/* Loaded once for the process (flite's voices are process-wide singletons). */
static fl_voice voices[] = {
    {"kal", register_cmu_us_kal, NULL, 1, 100},
    {"slt", register_cmu_us_slt, NULL, 1, 100},
    {"rms", register_cmu_us_rms, NULL, 1, 100},
    {"awb", register_cmu_us_awb, NULL, 1, 100},
};
#define NVOICES (sizeof voices / sizeof *voices)
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load_voices(void)
{
    flite_init();
    for (size_t i = 0; i < NVOICES; i++) {
        fl_voice *fv = &voices[i];
        if (!(fv->v = fv->load(NULL))) continue;
        fv->stretch = get_param_float(fv->v->features, "duration_stretch", 1);
        /* Diphone voices carry their mean pitch as a feature; clustergen ones in their
         * model. */
        fv->f0 = get_param_float(fv->v->features, "int_f0_target_mean", -1);
        const cst_val *db = feat_val(fv->v->features, "cg_db");
        if (fv->f0 < 0 && db) fv->f0 = val_cg_db(db)->f0_mean;
        if (fv->f0 <= 0) fv->f0 = 100;
    }
}

static const fl_voice *find_voice(const char *name)
{
    for (size_t i = 0; i < NVOICES; i++)
        if (strcmp(voices[i].name, name) == 0) return voices[i].v ? &voices[i] : NULL;
    return NULL;
}

static int fl_voice_ok(cs_tts *e, const char *name)
{
    (void)e;
    return find_voice(name) ? 0 : CS_ECONFIG;
}

/* `name` in text[from, len) as a word of its own (not inside a longer one). */
static const char *find_word(const char *text, size_t from, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (n == 0) return NULL;
    for (const char *p = text + from; (p = strstr(p, name)) && (size_t)(p - text) + n <= len; p++)
        if (p == text || !isalnum((unsigned char)p[-1])) return p;
    return NULL;
}

/* Where each token's first spoken segment starts. */
static int word_times(cst_utterance *u, const tts_req *r, tts_audio *a)
{
    size_t at = 0;
    for (cst_item *t = relation_head(utt_relation(u, "Token")); t; t = item_next(t)) {
        float start = -1;
        for (cst_item *w = item_daughter(t); w && start < 0; w = item_next(w)) {
            cst_item *seg = item_daughter(item_daughter(item_as(w, "SylStructure")));
            cst_item *in_seq = item_as(seg, "Segment");
            if (!in_seq) continue; /* a word with no sound ("—") */
            cst_item *prev = item_prev(in_seq);
            start = prev ? item_feat_float(prev, "end") : 0;
        }
        const char *name = item_feat_string(t, "name");
        const char *hit = find_word(r->text, at, r->len, name);
        if (!hit || start < 0) continue;
        size_t off = (size_t)(hit - r->text), n = strlen(name);
        at = off + n;
        int rc = tts_audio_word(a, r->text, r->len, off, n, (uint32_t)lroundf(start * 1000));
        if (rc < 0) return rc;
    }
    return 0;
}

static int fl_synth(cs_tts *e, const tts_req *r, tts_audio *a)
{
    (void)e;
    const fl_voice *fv = find_voice(r->voice);
    if (!fv) {
        snprintf(a->why, sizeof a->why, "flite: no voice '%s'", r->voice);
        return CS_ECONFIG;
    }
    cst_utterance *u = new_utterance();
    utt_set_input_text(u, r->text);
    utt_init(u, fv->v);
    feat_set_float(u->features, "duration_stretch", fv->stretch * NATURAL_WPM / (float)r->rate);
    /* pitch 0..100 spans an octave around the voice's own (50) */
    feat_set_float(u->features, "int_f0_target_mean", fv->f0 * exp2f((float)(r->pitch - 50) / 100));
    int rc = 0;
    cst_wave *w = utt_synth(u) ? utt_wave(u) : NULL;
    if (!w) {
        snprintf(a->why, sizeof a->why, "flite: synthesis failed");
        rc = CS_EBACKEND;
    } else {
        a->rate = (unsigned)w->sample_rate;
        rc = tts_audio_add(a, w->samples, (size_t)w->num_samples);
        if (rc == CS_ELIMIT) rc = 0; /* cut: `a` says so */
        if (rc == 0) rc = word_times(u, r, a);
    }
    delete_utterance(u);
    return rc;
}

static void fl_release(cs_tts *e)
{
    (void)e; /* the voices stay loaded for the process */
}

static const tts_engine engine = {
    .name = "flite", .synth = fl_synth, .voice_ok = fl_voice_ok, .release = fl_release};

static int fl_create(cs_tts **out, const cs_tts_env *env, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    pthread_once(&load_once, load_voices);
    const char *voice = cfg->tts_voice[0] ? cfg->tts_voice : DEFAULT_VOICE;
    if (!find_voice(voice)) {
        cs_buf_printf(err, "TTS_VOICE: flite has no voice '%s' (kal, slt, rms or awb)", voice);
        return CS_ECONFIG;
    }
    cs_tts *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    int rc = tts_start(e, &engine, cfg, voice, (size_t)cfg->tts_threads, env->mb, err);
    if (rc < 0) {
        free(e);
        return rc;
    }
    cs_info("flite: voice %s, %lld worker threads", voice, (long long)cfg->tts_threads);
    *out = e;
    return 0;
}

const cs_tts_ops cs_tts_flite = {
    .name = "flite",
    .create = fl_create,
    .destroy = tts_destroy,
    .speak = tts_speak,
    .cancel = tts_cancel,
    .stats = tts_stats,
};
