/* The jobs of every TTS engine. A job's text is split into sentences when it is queued;
 * jobs waiting for their next sentence stand in one list, and a worker takes the one due
 * first (tts_int.h: when its call would run out of audio), makes one sentence, hands it
 * to the loop and puts the job back with its new due time, so calls take turns sentence
 * by sentence. Each sentence goes back as one piece through the mailbox (converted to
 * 8 kHz μ-law on the worker), and a job's end as a last piece: the loop frees the job
 * only then, when no worker or mailbox holds it any more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/resample.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "tts/sentence.h"
#include "tts/tts_int.h"

#define RATE_MIN 80 /* words per minute, espeak-ng's range */
#define RATE_MAX 450

/* speak() → first audio, seconds. */
static const double first_audio_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10};

/* One sentence made, on its way to the loop. */
typedef struct piece {
    cs_job job;
    cs_tts_job *j;
    cs_span sentence; /* in the job's text */
    uint32_t audio_ms;
    uint64_t synth_ns;
    bool cut;
    cs_tts_word *words;
    size_t nwords;
    size_t n; /* μ-law bytes */
    uint8_t ulaw[];
} piece;

struct cs_tts_job {
    cs_tts *e;
    tts_job_base b;
    cs_span *sentences;
    size_t nsentences;

    /* Under e->lock. */
    size_t next;      /* the next sentence to make */
    tts_turn turn;    /* in e->waiting while no worker has it */
    uint64_t made_ms; /* audio made so far */

    atomic_bool stop; /* cancelled: workers stop making it */

    /* Worker → loop, read when `end` arrives. */
    int err;
    char why[160];
    uint64_t began; /* hrtime its first sentence began */
    cs_job end;     /* posted once, when no worker will touch the job again */

    /* Loop only. */
    uint64_t queued; /* hrtime of speak() */
    bool heard;      /* first audio delivered */
    bool over;       /* on_done delivered, or cancelled: no more callbacks */
};

void tts_stats_init(cs_tts_stats *st)
{
    cs_hist_init(&st->first_audio, first_audio_bounds,
                 sizeof first_audio_bounds / sizeof *first_audio_bounds);
}

int tts_check(const cs_tts_opts *o, int *rate, int *pitch, const char **voice)
{
    if (!o->on_done || (o->len && !o->text)) return -EINVAL;
    if (o->len > CS_TTS_TEXT_MAX) return -EMSGSIZE;
    if ((o->len && memchr(o->text, '\0', o->len)) || !cs_utf8_valid(o->text, o->len))
        return -EILSEQ;
    if (o->rate) *rate = o->rate;
    if (o->pitch) *pitch = o->pitch;
    if (*rate < RATE_MIN || *rate > RATE_MAX || *pitch < 0 || *pitch > 100) return -EINVAL;
    if (o->voice && o->voice[0]) *voice = o->voice;
    return strlen(*voice) >= CS_TTS_VOICE_MAX ? -EINVAL : 0;
}

int tts_job_base_init(tts_job_base *b, const cs_tts_opts *o, const char *voice, int rate, int pitch)
{
    if (!(b->text = malloc(o->len + 1))) return -ENOMEM;
    if (o->len) memcpy(b->text, o->text, o->len);
    b->text[o->len] = '\0';
    b->len = o->len;
    b->o = *o;
    b->o.text = b->text;
    snprintf(b->voice, sizeof b->voice, "%s", voice);
    b->o.voice = b->voice;
    b->rate = rate;
    b->pitch = pitch;
    return 0;
}

/* ---- what engines fill ---- */

int tts_audio_add(tts_audio *a, const int16_t *pcm, size_t n)
{
    size_t max = (size_t)a->rate * CS_TTS_SENTENCE_MS / 1000;
    if (a->n + n > max) {
        n = max - a->n;
        a->cut = true;
    }
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->n + n) cap *= 2;
        if (cap > max) cap = max;
        int16_t *p = realloc(a->pcm, cap * sizeof *p);
        if (!p) return -ENOMEM;
        a->pcm = p;
        a->cap = cap;
    }
    if (n) memcpy(a->pcm + a->n, pcm, n * sizeof *pcm);
    a->n += n;
    return a->cut ? CS_ELIMIT : 0;
}

int tts_audio_word(tts_audio *a, const char *text, size_t len, size_t off, size_t n, uint32_t ms)
{
    if (off > len) off = len;
    if (n > len - off) n = len - off;
    /* A word has no spaces: engines' spans sometimes take the next one's start. */
    while (n > 0 && cs_sentence_space((unsigned char)text[off])) off++, n--;
    for (size_t i = 0; i < n; i++)
        if (cs_sentence_space((unsigned char)text[off + i])) n = i;
    if (n == 0) return 0;
    if (a->nwords) {
        cs_tts_word *w = &a->words[a->nwords - 1];
        if (off < w->off + w->len || ms < w->start_ms) {
            size_t end = off + n > w->off + w->len ? off + n : w->off + w->len;
            w->len = (uint32_t)(end - w->off);
            return 0;
        }
    }
    if (a->nwords == a->cap_words) {
        size_t cap = a->cap_words ? 2 * a->cap_words : 32;
        cs_tts_word *p = realloc(a->words, cap * sizeof *p);
        if (!p) return -ENOMEM;
        a->words = p;
        a->cap_words = cap;
    }
    a->words[a->nwords++] = (cs_tts_word){(uint32_t)off, (uint32_t)n, ms};
    return 0;
}

/* ---- whose sentence is next (under e->lock) ---- */

void tts_turns_push(tts_turns *q, tts_turn *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

/* Unlinks `t`, which follows `prev` (NULL: the head). */
static void unlink_turn(tts_turns *q, tts_turn *prev, tts_turn *t)
{
    if (prev)
        prev->next = t->next;
    else
        q->head = t->next;
    if (q->tail == t) q->tail = prev;
    t->next = NULL;
}

tts_turn *tts_turns_take(tts_turns *q)
{
    tts_turn *best = NULL, *best_prev = NULL;
    for (tts_turn *t = q->head, *prev = NULL; t; prev = t, t = t->next) {
        if (!best || t->due < best->due) {
            best = t;
            best_prev = prev;
        }
    }
    if (best) unlink_turn(q, best_prev, best);
    return best;
}

bool tts_turns_remove(tts_turns *q, tts_turn *t)
{
    for (tts_turn *u = q->head, *prev = NULL; u; prev = u, u = u->next) {
        if (u == t) {
            unlink_turn(q, prev, t);
            return true;
        }
    }
    return false;
}

/* ---- workers ---- */

static void piece_done(cs_job *job);

/* Makes sentence `i` of `j` and posts it to the loop, with its length in *ms. 0 or a
 * negative code (j->why set). */
static int make_sentence(cs_tts *e, cs_tts_job *j, size_t i, tts_audio *a, uint32_t *ms)
{
    cs_span s = j->sentences[i];
    char text[CS_SENTENCE_MAX + 1];
    memcpy(text, j->b.text + s.off, s.len);
    text[s.len] = '\0';
    a->n = a->nwords = 0;
    a->rate = 0;
    a->cut = false;
    a->why[0] = '\0';
    tts_req r = {.text = text,
                 .len = s.len,
                 .voice = j->b.voice,
                 .rate = j->b.rate,
                 .pitch = j->b.pitch,
                 .stop = &j->stop};
    uint64_t t0 = uv_hrtime();
    int rc = e->eng->synth(e, &r, a);
    if (rc < 0) {
        snprintf(j->why, sizeof j->why, "%s", a->why[0] ? a->why : cs_strerror(rc));
        return rc;
    }
    if (atomic_load(&j->stop)) return 0;

    int16_t *pcm = a->pcm, *converted = NULL;
    size_t n = a->n;
    if (n && a->rate != CS_TTS_RATE) {
        if ((rc = cs_resample_all(a->pcm, a->n, a->rate, CS_TTS_RATE, &converted, &n)) < 0) {
            snprintf(j->why, sizeof j->why, "cannot convert %u Hz audio to 8 kHz", a->rate);
            return rc;
        }
        pcm = converted;
    }
    piece *p = malloc(sizeof *p + n);
    cs_tts_word *words = a->nwords ? malloc(a->nwords * sizeof *words) : NULL;
    if (!p || (a->nwords && !words)) {
        free(p);
        free(words);
        free(converted);
        snprintf(j->why, sizeof j->why, "out of memory");
        return -ENOMEM;
    }
    cs_ulaw_encode(p->ulaw, pcm, n);
    free(converted);
    uint32_t audio_ms = (uint32_t)(n * 1000 / CS_TTS_RATE);
    *ms = audio_ms;
    for (size_t w = 0; w < a->nwords; w++) {
        words[w] = a->words[w];
        if (words[w].start_ms > audio_ms) words[w].start_ms = audio_ms;
    }
    *p = (piece){.job = {.done = piece_done},
                 .j = j,
                 .sentence = s,
                 .audio_ms = audio_ms,
                 .synth_ns = uv_hrtime() - t0,
                 .cut = a->cut,
                 .words = words,
                 .nwords = a->nwords,
                 .n = n};
    cs_mailbox_post(e->mb, &p->job);
    return 0;
}

static void *worker_main(void *arg)
{
    cs_tts *e = arg;
    char name[16];
    snprintf(name, sizeof name, "tts-%s", e->eng->name);
    pthread_setname_np(pthread_self(), name);
    tts_audio a = {0};
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!e->waiting.head && !e->stopping) pthread_cond_wait(&e->cond, &e->lock);
        tts_turn *turn = tts_turns_take(&e->waiting);
        if (!turn) break; /* stopping, and nothing waits */
        cs_tts_job *j = (cs_tts_job *)((char *)turn - offsetof(cs_tts_job, turn));
        if (e->stopping || atomic_load(&j->stop)) {
            if (e->stopping) {
                j->err = CS_ECLOSED;
                snprintf(j->why, sizeof j->why, "the speech engine stopped");
            }
            cs_mailbox_post(e->mb, &j->end);
            continue;
        }
        size_t i = j->next++;
        pthread_mutex_unlock(&e->lock);
        if (i == 0) j->began = uv_hrtime();
        uint32_t ms = 0;
        int rc = make_sentence(e, j, i, &a, &ms);
        pthread_mutex_lock(&e->lock);
        if (rc < 0) j->err = rc;
        if (rc < 0 || atomic_load(&j->stop) || j->next == j->nsentences) {
            cs_mailbox_post(e->mb, &j->end);
        } else {
            if (j->made_ms == 0) j->turn.due = uv_hrtime(); /* its audio starts playing */
            j->turn.due += (uint64_t)ms * 1000000;
            j->made_ms += ms;
            tts_turns_push(&e->waiting, &j->turn);
        }
    }
    pthread_mutex_unlock(&e->lock);
    free(a.pcm);
    free(a.words);
    return NULL;
}

/* ---- the loop side ---- */

static void job_free(cs_tts_job *j)
{
    free(j->b.text);
    free(j->sentences);
    free(j);
}

static void piece_done(cs_job *job)
{
    piece *p = (piece *)job;
    cs_tts_job *j = p->j;
    cs_tts *e = j->e;
    if (!j->over) {
        e->stats.sentences++;
        e->stats.sentences_cut += p->cut;
        e->stats.audio_ms += p->audio_ms;
        e->stats.synth_us += p->synth_ns / 1000;
        if (p->n && !j->heard) {
            j->heard = true;
            cs_hist_observe(&e->stats.first_audio, (double)(uv_hrtime() - j->queued) / 1e9);
        }
        if (p->n && j->b.o.on_audio) j->b.o.on_audio(j->b.o.data, p->ulaw, p->n);
        if (!j->over && j->b.o.on_sentence)
            j->b.o.on_sentence(j->b.o.data, j->b.text + p->sentence.off, p->sentence.len, p->words,
                               p->nwords, p->audio_ms);
    }
    free(p->words);
    free(p);
}

static void end_done(cs_job *job)
{
    cs_tts_job *j = (cs_tts_job *)((char *)job - offsetof(cs_tts_job, end));
    cs_tts *e = j->e;
    if (j->began) e->stats.wait_us += (j->began - j->queued) / 1000;
    if (!j->over) {
        j->over = true;
        if (j->err < 0) {
            e->stats.failures++;
            cs_warn("speech (%s): %s", e->eng->name, j->why[0] ? j->why : cs_strerror(j->err));
            if (j->b.o.on_error)
                j->b.o.on_error(j->b.o.data, j->why[0] ? j->why : cs_strerror(j->err));
        }
        j->b.o.on_done(j->b.o.data, j->err); /* may destroy the engine: counted live till after */
    }
    job_free(j);
    e->stats.jobs_live--;
    if (e->destroyed && e->stats.jobs_live == 0) free(e);
}

int tts_speak(cs_tts *e, const cs_tts_opts *o, cs_tts_job **out)
{
    if (e->destroyed) return CS_ECLOSED;
    int rate = e->rate, pitch = e->pitch;
    const char *voice = e->voice;
    int rc = tts_check(o, &rate, &pitch, &voice);
    if (rc < 0) return rc;
    if (e->eng->voice_ok && (rc = e->eng->voice_ok(e, voice)) < 0) return rc;
    if (e->stats.jobs_live >= e->queue_max) {
        e->stats.refused++;
        return CS_EFULL;
    }

    size_t count = 0;
    cs_span s;
    for (size_t at = 0, used; at < o->len; at += used) {
        used = cs_sentence_next(o->text + at, o->len - at, true, &s);
        count += s.len > 0;
    }
    cs_tts_job *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->sentences = calloc(count ? count : 1, sizeof *j->sentences);
    if (!j->sentences || tts_job_base_init(&j->b, o, voice, rate, pitch) < 0) {
        job_free(j);
        return -ENOMEM;
    }
    for (size_t at = 0, used; at < o->len; at += used) {
        used = cs_sentence_next(j->b.text + at, o->len - at, true, &s);
        if (s.len) j->sentences[j->nsentences++] = (cs_span){at + s.off, s.len};
    }
    j->e = e;
    atomic_init(&j->stop, false);
    j->end = (cs_job){.done = end_done};
    j->queued = uv_hrtime();
    e->stats.jobs++;
    e->stats.jobs_live++;
    if (j->nsentences == 0) {
        cs_mailbox_post(e->mb, &j->end); /* nothing to say: done, but never from in here */
    } else {
        j->turn.due = j->queued;
        pthread_mutex_lock(&e->lock);
        tts_turns_push(&e->waiting, &j->turn);
        pthread_cond_signal(&e->cond);
        pthread_mutex_unlock(&e->lock);
    }
    *out = j;
    return 0;
}

void tts_cancel(cs_tts_job *j)
{
    if (!j || j->over) return;
    cs_tts *e = j->e;
    j->over = true;
    e->stats.cancels++;
    atomic_store(&j->stop, true);
    if (e->destroyed) return; /* the workers are gone; its end is in the mailbox */
    pthread_mutex_lock(&e->lock);
    /* Waiting, no worker has it: end it here (its pieces are ahead of it in the mailbox). */
    if (tts_turns_remove(&e->waiting, &j->turn)) cs_mailbox_post(e->mb, &j->end);
    pthread_mutex_unlock(&e->lock);
}

void tts_stats(cs_tts *e, cs_tts_stats *out)
{
    *out = e->stats;
}

/* Ends what waits (CS_ECLOSED), joins the workers and frees what they shared. */
static void stop_workers(cs_tts *e)
{
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < e->nthreads; i++) pthread_join(e->threads[i], NULL);
    free(e->threads);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
}

int tts_start(cs_tts *e, const tts_engine *eng, const cs_config *cfg, const char *voice,
              size_t threads, cs_mailbox *mb, cs_buf *err)
{
    e->eng = eng;
    e->mb = mb;
    snprintf(e->voice, sizeof e->voice, "%s", voice);
    e->rate = (int)cfg->tts_rate;
    e->pitch = (int)cfg->tts_pitch;
    e->queue_max = (size_t)cfg->tts_queue_max;
    tts_stats_init(&e->stats);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    e->threads = calloc(threads, sizeof *e->threads);
    int rc = e->threads ? 0 : -ENOMEM;
    for (; rc == 0 && e->nthreads < threads; e->nthreads++) {
        rc = -pthread_create(&e->threads[e->nthreads], NULL, worker_main, e);
        if (rc < 0) cs_buf_printf(err, "cannot start speech threads: %s", cs_strerror(rc));
    }
    if (rc < 0) stop_workers(e);
    return rc;
}

void tts_destroy(cs_tts *e)
{
    if (!e || e->destroyed) return;
    stop_workers(e);
    e->eng->release(e);
    e->destroyed = true;
    if (e->stats.jobs_live == 0) free(e);
}

static const cs_tts_ops *const engines[] = {&cs_tts_espeak, &cs_tts_flite, &cs_tts_elevenlabs,
                                            &cs_tts_openai};

const char *cs_tts_names(void)
{
    return "espeak, flite, elevenlabs, openai or none";
}

int cs_tts_find(const char *name, const cs_tts_ops **out)
{
    *out = NULL;
    if (strcmp(name, "none") == 0 || name[0] == '\0') return 0;
    for (size_t i = 0; i < sizeof engines / sizeof *engines; i++) {
        if (strcmp(engines[i]->name, name) == 0) {
            *out = engines[i];
            return 0;
        }
    }
    return CS_ECONFIG;
}
