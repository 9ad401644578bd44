/* The jobs of the cloud TTS engines, on the loop. A job is in the engine's list from
 * speak() until its end has been delivered; the engine is freed after its last job once
 * destroyed. */
#include "tts/cloud.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "tts/sentence.h"

#define SWEEP_MS 100 /* how often jobs are checked against TTS_CLOUD_TIMEOUT_MS */

static void on_sweep(uv_timer_t *t)
{
    tts_cloud *e = t->data;
    uint64_t now = uv_hrtime(), limit = (uint64_t)e->timeout_ms * 1000000;
    for (tts_cjob *j = e->jobs, *next; j; j = next) {
        next = j->next; /* failing may end it */
        if (!j->stopping && now - j->last > limit)
            tts_cjob_fail(j, -ETIMEDOUT, "%s: no audio for %u ms", e->ceng->name, e->timeout_ms);
    }
}

int tts_cloud_key(const char *key, const char *setting, const char *name, cs_buf *err)
{
    if (key[0] && !strpbrk(key, "\r\n")) return 0;
    if (key[0])
        cs_buf_printf(err, "%s must be one line", setting);
    else
        cs_buf_printf(err, "TTS=%s needs %s", name, setting);
    return CS_ECONFIG;
}

int tts_cloud_init(tts_cloud *e, const tts_cloud_eng *ceng, const cs_tts_env *env,
                   const char *voice)
{
    e->ceng = ceng;
    e->cfg = env->cfg;
    e->loop = env->loop;
    e->mb = env->mb;
    e->timeout_ms = (uint32_t)env->cfg->tts_cloud_timeout_ms;
    e->base.mb = env->mb;
    snprintf(e->base.voice, sizeof e->base.voice, "%s", voice);
    e->base.rate = (int)env->cfg->tts_rate;
    e->base.pitch = (int)env->cfg->tts_pitch;
    e->base.queue_max = (size_t)env->cfg->tts_queue_max;
    tts_stats_init(&e->base.stats);
    int rc = uv_timer_init(env->loop, &e->sweep);
    if (rc < 0) return rc;
    e->sweep.data = e;
    uv_timer_start(&e->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&e->sweep);
    return 0;
}

static void sweep_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The engine goes once destroyed and its last job is gone. */
static void maybe_free(tts_cloud *e)
{
    if (!e->base.destroyed || e->base.stats.jobs_live) return;
    e->ceng->release(e);
    uv_close((uv_handle_t *)&e->sweep, sweep_closed);
}

static void set_why(tts_cjob *j, int err, const char *fmt, va_list ap)
{
    if (j->err < 0 || err >= 0) return;
    j->err = err;
    vsnprintf(j->why, sizeof j->why, fmt, ap);
}

bool tts_cjob_live(const tts_cjob *j)
{
    return !j->over && !j->stopping;
}

void tts_cjob_audio(tts_cjob *j, const uint8_t *ulaw, size_t n)
{
    tts_cloud *e = j->e;
    if (!tts_cjob_live(j) || n == 0) return;
    j->last = uv_hrtime();
    uint64_t max = (uint64_t)CS_TTS_RATE * CS_TTS_SENTENCE_MS / 1000;
    if (j->bytes + n > max) {
        n = (size_t)(max - j->bytes);
        j->cut = true;
        if (n == 0) return;
    }
    j->bytes += n;
    if (!j->heard) {
        j->heard = true;
        cs_hist_observe(&e->base.stats.first_audio, (double)(j->last - j->queued) / 1e9);
    }
    if (j->b.o.on_audio) j->b.o.on_audio(j->b.o.data, ulaw, n);
}

void tts_cjob_fail(tts_cjob *j, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_why(j, err, fmt, ap);
    va_end(ap);
    if (j->stopping || j->ended) return;
    j->stopping = true;
    j->e->ceng->stop(j);
}

static void job_free(tts_cjob *j)
{
    free(j->b.text);
    free(j->words.pcm);
    free(j->words.words);
    free(j);
}

/* Its end, on the loop through the mailbox. */
static void deliver(cs_job *job)
{
    tts_cjob *j = (tts_cjob *)((char *)job - offsetof(tts_cjob, end));
    tts_cloud *e = j->e;
    if (!j->over && j->err == 0 && j->bytes) {
        uint32_t ms = (uint32_t)(j->bytes * 1000 / CS_TTS_RATE);
        e->base.stats.sentences++;
        e->base.stats.sentences_cut += j->cut;
        e->base.stats.audio_ms += ms;
        for (size_t w = 0; w < j->words.nwords; w++)
            if (j->words.words[w].start_ms > ms) j->words.words[w].start_ms = ms;
        if (j->b.o.on_sentence)
            j->b.o.on_sentence(j->b.o.data, j->b.text, j->b.len, j->words.words, j->words.nwords,
                               ms);
    }
    if (!j->over) { /* on_sentence may have cancelled it */
        j->over = true;
        if (j->err < 0) {
            e->base.stats.failures++;
            cs_warn("speech (%s): %s", e->ceng->name, j->why[0] ? j->why : cs_strerror(j->err));
            if (j->b.o.on_error)
                j->b.o.on_error(j->b.o.data, j->why[0] ? j->why : cs_strerror(j->err));
        }
        j->b.o.on_done(j->b.o.data, j->err); /* may destroy the engine: counted live till after */
    }
    if (j->prev)
        j->prev->next = j->next;
    else
        e->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    job_free(j);
    e->base.stats.jobs_live--;
    maybe_free(e);
}

void tts_cjob_end(tts_cjob *j, int err, const char *why)
{
    if (j->ended) return;
    if (err < 0 && j->err == 0) {
        j->err = err;
        if (why != j->why) snprintf(j->why, sizeof j->why, "%s", why ? why : "");
    }
    j->ended = true;
    j->stopping = true;
    cs_mailbox_post(j->e->mb, &j->end);
}

int tts_cloud_speak(cs_tts *base, const cs_tts_opts *o, cs_tts_job **out)
{
    tts_cloud *e = (tts_cloud *)base;
    if (base->destroyed) return CS_ECLOSED;
    int rate = base->rate, pitch = base->pitch;
    const char *voice = base->voice;
    int rc = tts_check(o, &rate, &pitch, &voice);
    if (rc < 0) return rc;
    if (base->stats.jobs_live >= base->queue_max) {
        base->stats.refused++;
        return CS_EFULL;
    }
    tts_cjob *j = calloc(1, e->ceng->job_size);
    if (!j || tts_job_base_init(&j->b, o, voice, rate, pitch) < 0) {
        free(j);
        return -ENOMEM;
    }
    j->e = e;
    j->queued = j->last = uv_hrtime();
    j->end = (cs_job){.done = deliver};
    j->next = e->jobs;
    if (e->jobs) e->jobs->prev = j;
    e->jobs = j;
    base->stats.jobs++;
    base->stats.jobs_live++;
    /* Nothing to say (spaces only): done, but never from in here. */
    size_t at = 0;
    while (at < j->b.len && cs_sentence_space((unsigned char)j->b.text[at])) at++;
    if (at == j->b.len) {
        tts_cjob_end(j, 0, NULL);
    } else if ((rc = e->ceng->start(j)) < 0) {
        tts_cjob_end(j, rc, j->why[0] ? j->why : cs_strerror(rc));
    }
    *out = (cs_tts_job *)j;
    return 0;
}

void tts_cloud_cancel(cs_tts_job *job)
{
    tts_cjob *j = (tts_cjob *)job;
    if (!j || j->over) return;
    j->over = true;
    j->e->base.stats.cancels++;
    if (!j->stopping && !j->ended) {
        j->stopping = true;
        j->e->ceng->stop(j);
    }
}

void tts_cloud_destroy(cs_tts *base)
{
    tts_cloud *e = (tts_cloud *)base;
    if (!e || base->destroyed) return;
    base->destroyed = true;
    for (tts_cjob *j = e->jobs; j; j = j->next)
        tts_cjob_fail(j, CS_ECLOSED, "%s: the speech engine stopped", e->ceng->name);
    maybe_free(e);
}
