/* pocketsphinx as the local STT engine. Decoders are loaded once, at start-up, into a
 * pool of STT_MAX_SESSIONS (≈ 90 MB and half a second each, so never per call); a session
 * borrows one for its lifetime and returns it reset. Decoding runs on worker threads: the
 * loop only appends audio to the session's backlog and posts the session's one job; the
 * worker decodes whatever is waiting and the job's `done` hands the segments back on the
 * loop. A session is pinned to one worker, so its audio is decoded in order.
 *
 * Only a 16 kHz model ships, and 8 kHz audio decoded as is fails almost entirely, so the
 * μ-law is decoded and resampled to 16 kHz first. Utterances are cut by the decoder's own
 * speech detection; the final result takes the forward pass only (STT_PASSES: no
 * flat-lexicon or lattice pass), so it comes a few ms after the end of speech, in time for
 * turn-taking.
 *
 * Refinement (STT_REFINE) wins back what the other passes are worth: each utterance's
 * audio, as the live decoder took it, goes with its fast final to a refining decoder of
 * its own (STT_REFINE_PASSES) on a low-priority thread, whose result is sent as a final
 * again, with the same id and `refined` set. Not on the live decoder's worker: decoding
 * an utterance again costs about as much as the first time, and the next utterance's
 * fast final would wait for it. Its queue and the audio kept per utterance are bounded;
 * a final past either bound stays as it is (counted). A session's decoder goes back to
 * the pool at once; its on_closed waits for its refinements. Grammars and keyword lists
 * are exact enough already: their sessions are not refined. */
#include <pocketsphinx.h>
#include <pthread.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <sphinxbase/jsgf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/g711.h"
#include "audio/resample.h"
#include "core/err.h"
#include "core/log.h"
#include "stt/stt.h"

/* sphinxbase's JSGF parser leaks what it had built when a grammar does not parse
 * (yyparse's error path): its allocations are kept out of LeakSanitizer's report. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LSAN_OFF() __lsan_disable()
#define LSAN_ON()  __lsan_enable()
#else
#define LSAN_OFF() ((void)0)
#define LSAN_ON()  ((void)0)
#endif

#define PS_RATE          16000 /* the model's rate */
#define IN_PER_MS        8     /* μ-law samples (bytes) per ms at 8 kHz */
#define FRAME_SAMPLES    80    /* one decoder frame (10 ms) at 8 kHz */
#define STEP_SAMPLES     160   /* audio decoded at a time (20 ms) */
#define GAP_FILL_MS      1000  /* a longer gap in positions is decoded as this much silence */
#define BACKLOG_MS       10000 /* audio waiting for the decoder; beyond it, new audio is dropped */
#define BACKLOG_BYTES    (2 * BACKLOG_MS * IN_PER_MS) /* the audio with its record headers */
#define INTERIM_EVERY_MS 300                          /* of speech between interim hypotheses */
#define UTTERANCE_MAX_MS 30000 /* speech without a pause is cut into finals this long */
#define SPEECH_LEAD_MS   300 /* speech is detected this far into it (vad_startspeech + a margin) */
#define CALL_SEARCH      "call" /* the search a session's grammar or keywords install */
#define REFINE_LEAD_MS   500    /* audio kept for refinement from before speech is detected */
#define REFINE_NICE      10     /* refining threads yield to the live decoders */
#define CMN_LEN          13     /* cepstra: the model's (checked at load) */

/* The decoder's settings. maxhmmpf and pl_window bound the search (real-time factor ≈ 0.1
 * here); 150 ms of silence ends an utterance (the default 500 ms made finals late for no
 * gain in accuracy over the corpus; 100 ms began to cut words). The passes come from
 * STT_PASSES (live) and STT_REFINE_PASSES (refining). */
#define PS_SETTINGS "-maxhmmpf", "3000", "-pl_window", "10", "-vad_postspeech", "15"

/* The passes after the forward one: "-fwdflat", "-bestpath" values. */
typedef struct passes {
    const char *name, *fwdflat, *bestpath;
} passes;

static const passes pass_table[] = {
    {"forward", "no", "no"},
    {"lattice", "no", "yes"},
    {"fwdflat", "yes", "yes"},
};

/* "-remove_silence": the live decoder's speech detection cuts the stream into utterances;
 * a refining decoder takes the whole utterance it is given, silence and all (corpus WER,
 * tuning part: 71.8 % with its own detection, 70.4 % without, lattice pass). */
#define LIVE_SILENCE   "yes"
#define REFINE_SILENCE "no"

/* Every session starts from this cepstral mean: the average of phone-band speech (8 kHz
 * μ-law, resampled), where the model's own wide-band one made the first seconds of each
 * call mostly wrong (corpus WER 87 % → 74 %) until the live estimate caught up. */
static const mfcc_t cmn_phone[CMN_LEN] = {42.90,  25.95, -38.94, 37.43, -25.76, -2.89, 12.97,
                                          -26.52, 18.27, -13.63, -2.82, 10.11,  -12.37};

/* A decoder of the pool. */
typedef struct decoder {
    ps_decoder_t *ps;
    char lm_search[32]; /* the language model's search, which calls return to */
    struct decoder *next_free;
} decoder;

/* An utterance's audio as the live decoder took it (16 kHz), for refinement. */
typedef struct utterance {
    int16_t *pcm;
    size_t n;
    uint64_t at;         /* call sample (8 kHz) where pcm[0] lies */
    mfcc_t cmn[CMN_LEN]; /* the live cepstral mean when speech began */
} utterance;

/* What a batch of decoding produced, handed to the loop in `done`. */
typedef struct result {
    uint64_t id;
    uint32_t start_ms, end_ms;
    bool final;
    bool too_long; /* a final whose utterance was over STT_REFINE_MAX_MS: not refined */
    char *text;
    utterance utt; /* a final's audio to refine (pcm NULL: none) */
} result;

/* One utterance being refined: posted on the loop, decoded on a refining worker, sent
 * back in `done`. */
typedef struct refine_job {
    cs_job job;
    cs_stt_session *s;
    decoder *d; /* the refining worker's own */
    uint64_t id;
    utterance utt;
    char *text; /* the result, or NULL when the decoder failed */
    uint32_t start_ms, end_ms;
} refine_job;

struct cs_stt {
    decoder *decoders;
    size_t ndecoders;
    decoder *free; /* loop only */
    cs_worker **workers;
    size_t nworkers;
    /* Refinement: decoder i belongs to worker i (none when STT_REFINE=0). */
    decoder *refiners;
    cs_worker **rworkers;
    size_t nrefiners;
    size_t refine_max;  /* bytes of 16 kHz audio kept per utterance */
    cs_stt_stats stats; /* loop only */
};

struct cs_stt_session {
    cs_stt *e;
    decoder *d;
    cs_worker *worker;
    cs_job job;
    cs_stt_session_opts o; /* strings below are owned copies */
    char label[64];
    char *grammar, *keywords;

    /* Loop only. */
    bool queued;     /* the job is on the worker or in the mailbox */
    bool closing;    /* close() was called */
    bool failed;     /* on_error was sent */
    size_t refining; /* its refine jobs not yet back */

    /* Loop → worker: audio waiting, as records {u32 pos_ms, u32 n, n bytes}. */
    pthread_mutex_t lock;
    cs_buf backlog;
    size_t backlog_bytes; /* audio bytes in it */
    bool close_asked;

    /* Worker → loop, read in `done`. */
    result *results;
    size_t nresults, cap_results;
    int error; /* < 0: the engine failed (reported once) */
    const char *why;
    bool finished; /* everything decoded and finalized; the decoder is reset */

    /* Worker only. */
    cs_buf batch;
    cs_resampler *rs;
    bool started, in_speech;
    uint64_t pos;       /* 8 kHz sample at the call's timeline of the next sample decoded */
    int64_t shift;      /* call sample − decoder sample: decoder frames count every sample
                           decoded since the stream started, while the call skips long gaps */
    uint64_t utt_start; /* call sample where speech was detected, less the lead-in */
    uint64_t last_interim;
    uint64_t utt_id;
    char *shown;      /* the interim text last reported */
    bool refine;      /* its utterances are kept for refinement (set at open) */
    cs_buf utt;       /* the utterance's 16 kHz audio so far, from REFINE_LEAD_MS before speech */
    uint64_t decoded; /* 16 kHz samples given to the decoder since the stream started */
    bool utt_over;    /* the utterance outgrew `utt`: it is not refined */
    mfcc_t utt_cmn[CMN_LEN];
};

/* ---- worker side ---- */

static void push_result(cs_stt_session *s, bool final, uint32_t start_ms, uint32_t end_ms,
                        const char *text)
{
    size_t n = strnlen(text, CS_STT_TEXT_MAX);
    while (n > 0 && (text[n] & 0xC0) == 0x80) n--; /* cut between characters */
    char *copy = strndup(text, n);
    if (!copy) return;
    /* A newer interim of the same utterance supersedes one not yet delivered. */
    result *last = s->nresults ? &s->results[s->nresults - 1] : NULL;
    if (last && !last->final && last->id == s->utt_id) {
        free(last->text);
        s->nresults--;
    }
    if (s->nresults == s->cap_results) {
        size_t cap = s->cap_results ? 2 * s->cap_results : 8;
        result *r = realloc(s->results, cap * sizeof *r);
        if (!r) {
            free(copy);
            return;
        }
        s->results = r;
        s->cap_results = cap;
    }
    s->results[s->nresults++] = (result){
        .id = s->utt_id, .start_ms = start_ms, .end_ms = end_ms, .final = final, .text = copy};
}

static void fail(cs_stt_session *s, int err, const char *why)
{
    if (s->error == 0) {
        s->error = err;
        s->why = why;
    }
}

static uint32_t ms_of(uint64_t sample)
{
    return (uint32_t)(sample / IN_PER_MS);
}

/* The utterance's words, without silences and fillers, from the search's segmentation:
 * the text and the call samples where the first word starts and the last one ends
 * (decoder frame f lies at call sample f * FRAME_SAMPLES + shift). */
static void words(ps_decoder_t *ps, int64_t shift, cs_buf *text, uint64_t *first, uint64_t *last)
{
    *first = *last = 0;
    bool any = false;
    for (ps_seg_t *g = ps_seg_iter(ps); g; g = ps_seg_next(g)) {
        /* "read(2)" is a pronunciation of "read"; fillers and silences are "<sil>",
         * "[NOISE]"; a grammar's empty arcs come out as "(NULL)"; a spotted keyword keeps
         * the spaces its list had before "/threshold/". */
        const char *w = ps_seg_word(g);
        size_t n = strcspn(w, "(");
        while (n > 0 && w[n - 1] == ' ') n--;
        if (n == 0 || w[0] == '<' || w[0] == '[') continue;
        int sf, ef;
        ps_seg_frames(g, &sf, &ef);
        if (any) cs_buf_putc(text, ' ');
        cs_buf_append(text, w, n);
        if (!any) *first = (uint64_t)((int64_t)sf * FRAME_SAMPLES + shift);
        *last = (uint64_t)((int64_t)(ef + 1) * FRAME_SAMPLES + shift);
        any = true;
    }
    cs_buf_putc(text, '\0');
}

/* Keeps the audio just given to the decoder for refinement: while there is no speech only
 * the last REFINE_LEAD_MS, so that an utterance starts a little before its detection. */
static void keep_audio(cs_stt_session *s, const int16_t *pcm, size_t n)
{
    s->decoded += n;
    if (!s->refine || s->utt_over) return;
    if (cs_buf_append(&s->utt, pcm, n * sizeof *pcm) < 0) {
        s->utt_over = true;
        cs_buf_free(&s->utt);
        return;
    }
    size_t lead = (size_t)REFINE_LEAD_MS * 2 * IN_PER_MS * sizeof *pcm;
    if (!s->in_speech && s->utt.len > 2 * lead) cs_buf_consume(&s->utt, s->utt.len - lead);
}

/* Speech began: the utterance keeps REFINE_LEAD_MS of audio from before, and the live
 * cepstral mean its refinement will start from. */
static void onset(cs_stt_session *s)
{
    size_t lead = (size_t)REFINE_LEAD_MS * 2 * IN_PER_MS * sizeof(int16_t);
    if (s->utt.len > lead) cs_buf_consume(&s->utt, s->utt.len - lead);
    memcpy(s->utt_cmn, ps_get_feat(s->d->ps)->cmn_struct->cmn_mean, sizeof s->utt_cmn);
}

/* Hands the utterance's audio over with its final (the last result), and starts anew. */
static void take_utterance(cs_stt_session *s)
{
    result *r = s->nresults ? &s->results[s->nresults - 1] : NULL;
    bool spoken = r && r->final && r->id == s->utt_id && r->text[0];
    if (spoken && s->utt_over) r->too_long = true;
    if (spoken && !s->utt_over && s->utt.len) {
        size_t bytes;
        size_t samples = s->utt.len / sizeof(int16_t);
        r->utt.at = (uint64_t)((int64_t)((s->decoded - samples) / 2) + s->shift);
        memcpy(r->utt.cmn, s->utt_cmn, sizeof r->utt.cmn);
        r->utt.pcm = (int16_t *)cs_buf_detach(&s->utt, &bytes);
        r->utt.n = samples;
    }
    cs_buf_reset(&s->utt);
    s->utt_over = false;
}

static void end_utterance(cs_stt_session *s)
{
    ps_decoder_t *ps = s->d->ps;
    if (ps_end_utt(ps) < 0) fail(s, CS_EBACKEND, "the decoder could not end an utterance");
    cs_buf text = CS_BUF_INIT(CS_STT_TEXT_MAX + 1);
    uint64_t first, last;
    words(ps, s->shift, &text, &first, &last);
    if (text.data && text.data[0]) {
        push_result(s, true, ms_of(first), ms_of(last), text.data);
    } else if (s->shown && s->shown[0]) {
        /* What was shown turned out to be nothing: say so, so listeners drop it. */
        push_result(s, true, ms_of(s->utt_start), ms_of(s->pos), "");
    }
    cs_buf_free(&text);
    if (s->refine) take_utterance(s);
    free(s->shown);
    s->shown = NULL;
    s->in_speech = false;
    s->utt_id++;
    if (ps_start_utt(ps) < 0) fail(s, CS_EBACKEND, "the decoder could not start an utterance");
}

static void interim(cs_stt_session *s)
{
    const char *hyp = ps_get_hyp(s->d->ps, NULL);
    if (!hyp) hyp = "";
    if (s->shown ? strcmp(s->shown, hyp) == 0 : hyp[0] == '\0') return;
    free(s->shown);
    s->shown = strdup(hyp);
    push_result(s, false, ms_of(s->utt_start), ms_of(s->pos), hyp);
}

/* Decodes `n` μ-law samples (≤ STEP_SAMPLES; NULL: silence) at s->pos. */
static void decode_step(cs_stt_session *s, const uint8_t *ulaw, size_t n)
{
    int16_t pcm[STEP_SAMPLES], up[2 * STEP_SAMPLES + 16];
    if (ulaw)
        cs_ulaw_decode(pcm, ulaw, n);
    else
        memset(pcm, 0, n * sizeof *pcm);
    size_t in_n = n, out_n = sizeof up / sizeof *up;
    if (cs_resampler_process(s->rs, pcm, &in_n, up, &out_n) < 0) {
        fail(s, CS_EBACKEND, "the resampler failed");
        return;
    }
    ps_decoder_t *ps = s->d->ps;
    if (ps_process_raw(ps, up, out_n, FALSE, FALSE) < 0) {
        fail(s, CS_EBACKEND, "the decoder refused audio");
        return;
    }
    keep_audio(s, up, out_n);
    s->pos += n;
    bool speech = ps_get_in_speech(ps);
    if (speech && !s->in_speech) {
        if (s->refine) onset(s);
        s->in_speech = true;
        uint64_t lead = (uint64_t)SPEECH_LEAD_MS * IN_PER_MS;
        s->utt_start = s->pos > lead ? s->pos - lead : 0;
        s->last_interim = s->pos;
    } else if (!speech && s->in_speech) {
        end_utterance(s);
    } else if (speech) {
        if (s->pos - s->utt_start >= (uint64_t)UTTERANCE_MAX_MS * IN_PER_MS) {
            end_utterance(s);
        } else if (s->pos - s->last_interim >= (uint64_t)INTERIM_EVERY_MS * IN_PER_MS) {
            s->last_interim = s->pos;
            interim(s);
        }
    }
}

static void decode(cs_stt_session *s, const uint8_t *ulaw, size_t n)
{
    for (size_t i = 0; i < n && s->error == 0; i += STEP_SAMPLES)
        decode_step(s, ulaw ? ulaw + i : NULL, n - i < STEP_SAMPLES ? n - i : STEP_SAMPLES);
}

/* Places audio on the timeline: short gaps are silence; a long one is decoded as
 * GAP_FILL_MS of silence (which ends any utterance) and then skipped. */
static void take(cs_stt_session *s, uint32_t pos_ms, const uint8_t *ulaw, size_t n)
{
    uint64_t at = (uint64_t)pos_ms * IN_PER_MS;
    if (!s->started) {
        s->started = true;
        s->pos = at;
        s->shift = (int64_t)at;
    }
    if (at > s->pos) {
        uint64_t gap = at - s->pos;
        if (gap <= (uint64_t)GAP_FILL_MS * IN_PER_MS) {
            decode(s, NULL, gap);
        } else {
            decode(s, NULL, (size_t)GAP_FILL_MS * IN_PER_MS);
            if (s->in_speech) end_utterance(s);
            s->shift += (int64_t)(at - s->pos);
            s->pos = at;
        }
    } else if (at < s->pos) { /* overlaps what was decoded: keep the new part */
        uint64_t skip = s->pos - at;
        if (skip >= n) return;
        ulaw += skip;
        n -= skip;
    }
    decode(s, ulaw, n);
}

/* ps_set_jsgf_string() as pocketsphinx 5prealpha has it, less its leak: it never frees
 * the parsed grammar (about 10 kB a call). */
static int set_jsgf(ps_decoder_t *ps, const char *name, const char *text)
{
    LSAN_OFF();
    jsgf_t *g = jsgf_parse_string(text, NULL);
    LSAN_ON();
    if (!g) return -1;
    jsgf_rule_t *rule = jsgf_get_public_rule(g);
    int rc = -1;
    if (rule) {
        float32 lw = (float32)cmd_ln_float_r(ps_get_config(ps), "-lw");
        fsg_model_t *fsg = jsgf_build_fsg(g, rule, ps_get_logmath(ps), lw);
        if (fsg) {
            rc = ps_set_fsg(ps, name, fsg);
            fsg_model_free(fsg);
        }
    }
    jsgf_grammar_free(g);
    return rc;
}

/* The call's search: its grammar or keyword list, or the language model. */
static void set_search(cs_stt_session *s)
{
    ps_decoder_t *ps = s->d->ps;
    if (s->grammar) {
        if (set_jsgf(ps, CALL_SEARCH, s->grammar) < 0)
            return fail(s, CS_EPARSE,
                        "the grammar was refused (JSGF syntax, or words not in "
                        "the dictionary)");
    } else if (s->keywords) {
        /* pocketsphinx reads a keyword list from a file only. */
        char path[] = "/tmp/callstream-kws-XXXXXX";
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        bool ok = f && fputs(s->keywords, f) >= 0;
        if (f)
            ok = fclose(f) == 0 && ok;
        else if (fd >= 0)
            close(fd);
        ok = ok && ps_set_kws(ps, CALL_SEARCH, path) == 0;
        if (fd >= 0) unlink(path);
        if (!ok) return fail(s, CS_EPARSE, "the keyword list was refused");
    } else {
        return;
    }
    if (ps_set_search(ps, CALL_SEARCH) < 0) fail(s, CS_EBACKEND, "cannot use the call's search");
}

static void start(cs_stt_session *s)
{
    decoder *d = s->d;
    /* Every call starts from the same cepstral mean: what one call's audio taught the
     * decoder must not shape the next call's transcript. */
    cmn_live_set(ps_get_feat(d->ps)->cmn_struct, cmn_phone);
    if (cs_resampler_new(&s->rs, 8000, PS_RATE, CS_RESAMPLE_QUALITY) < 0)
        return fail(s, CS_EBACKEND, "cannot create a resampler");
    set_search(s);
    if (s->error == 0 && (ps_start_stream(d->ps) < 0 || ps_start_utt(d->ps) < 0))
        fail(s, CS_EBACKEND, "the decoder could not start an utterance");
    s->utt_id = 1;
}

/* Flushes the resampler, finalizes what is left and gives the decoder back clean. */
static void finish(cs_stt_session *s)
{
    ps_decoder_t *ps = s->d->ps;
    if (s->error == 0 && s->rs) {
        size_t tail = cs_resampler_latency(s->rs);
        int16_t up[2 * STEP_SAMPLES + 16];
        while (tail > 0 && s->error == 0) {
            size_t in_n = tail < STEP_SAMPLES ? tail : STEP_SAMPLES;
            size_t out_n = sizeof up / sizeof *up;
            if (cs_resampler_process(s->rs, NULL, &in_n, up, &out_n) < 0 ||
                ps_process_raw(ps, up, out_n, FALSE, FALSE) < 0)
                fail(s, CS_EBACKEND, "the decoder refused audio");
            else
                keep_audio(s, up, out_n);
            tail -= in_n ? in_n : tail;
        }
    }
    if (s->error == 0) end_utterance(s);
    ps_end_utt(ps); /* the one end_utterance opened, or one a failure left open */
    ps_set_search(ps, s->d->lm_search); /* not ps_get_search(): it leaks an iterator */
    ps_unset_search(ps, CALL_SEARCH);
    cs_resampler_free(s->rs);
    s->rs = NULL;
    cs_buf_free(&s->utt);
    s->finished = true;
}

static void on_work(cs_job *job)
{
    cs_stt_session *s = (cs_stt_session *)((char *)job - offsetof(cs_stt_session, job));
    pthread_mutex_lock(&s->lock);
    cs_buf t = s->batch;
    s->batch = s->backlog;
    s->backlog = t;
    cs_buf_reset(&s->backlog);
    s->backlog_bytes = 0;
    bool closing = s->close_asked;
    pthread_mutex_unlock(&s->lock);

    if (!s->rs && !s->finished && s->error == 0) start(s);
    for (size_t i = 0; i + 8 <= s->batch.len && s->error == 0;) {
        uint32_t pos, n;
        memcpy(&pos, s->batch.data + i, 4);
        memcpy(&n, s->batch.data + i + 4, 4);
        take(s, pos, (const uint8_t *)s->batch.data + i + 8, n);
        i += 8 + n;
    }
    cs_buf_reset(&s->batch);
    if (closing && !s->finished) finish(s);
}

/* ---- refining worker ---- */

/* Decodes one utterance from scratch with the refining decoder's passes, from the live
 * decoder's cepstral mean at the time, so that only the passes differ. */
static void on_refine(cs_job *job)
{
    refine_job *r = (refine_job *)job;
    ps_decoder_t *ps = r->d->ps;
    cmn_live_set(ps_get_feat(ps)->cmn_struct, r->utt.cmn);
    if (ps_start_stream(ps) < 0 || ps_start_utt(ps) < 0) return;
    bool ok = ps_process_raw(ps, r->utt.pcm, r->utt.n, FALSE, FALSE) >= 0;
    ok = ps_end_utt(ps) >= 0 && ok;
    if (!ok) return;
    cs_buf text = CS_BUF_INIT(CS_STT_TEXT_MAX + 1);
    uint64_t first, last;
    words(ps, (int64_t)r->utt.at, &text, &first, &last);
    r->text = strdup(text.data ? text.data : ""); /* words() keeps whole words only */
    r->start_ms = ms_of(first);
    r->end_ms = ms_of(last);
    cs_buf_free(&text);
}

/* ---- loop side ---- */

static void post(cs_stt_session *s)
{
    if (s->queued) return;
    s->queued = true;
    cs_worker_post_force(s->worker, &s->job);
}

/* Frees the session and says so, once its decoder is back and no refinement is due. */
static void release(cs_stt_session *s)
{
    cs_stt *e = s->e;
    e->stats.sessions_open--;
    void (*closed)(void *) = s->o.on_closed;
    void *data = s->o.data;
    for (size_t i = 0; i < s->nresults; i++) {
        free(s->results[i].text);
        free(s->results[i].utt.pcm);
    }
    free(s->results);
    free(s->shown);
    free(s->grammar);
    free(s->keywords);
    cs_buf_free(&s->backlog);
    cs_buf_free(&s->batch);
    cs_buf_free(&s->utt);
    pthread_mutex_destroy(&s->lock);
    free(s);
    closed(data);
}

static void on_refined(cs_job *job)
{
    refine_job *r = (refine_job *)job;
    cs_stt_session *s = r->s;
    cs_stt *e = s->e;
    s->refining--;
    e->stats.refine_pending--;
    if (!r->text) cs_warn("transcription of %s: an utterance could not be refined", s->label);
    /* No words where the fast pass found some: the fast final stands. */
    if (r->text && r->text[0] && !s->failed) {
        cs_stt_segment seg = {.id = r->id,
                              .start_ms = r->start_ms,
                              .end_ms = r->end_ms,
                              .text = r->text,
                              .final = true,
                              .refined = true,
                              .confidence = -1};
        e->stats.refined++;
        s->o.on_segment(s->o.data, &seg);
    }
    free(r->text);
    free(r->utt.pcm);
    free(r);
    if (s->finished && s->refining == 0) release(s);
}

/* Queues a final's utterance for refinement (taking its audio), or counts why not. */
static void refine(cs_stt_session *s, result *res)
{
    cs_stt *e = s->e;
    if (res->too_long) e->stats.refine_too_long++;
    if (!res->utt.pcm) return;
    cs_worker *w = NULL;
    decoder *d = NULL;
    for (size_t i = 0; i < e->nrefiners; i++) {
        if (!w || cs_worker_depth(e->rworkers[i]) < cs_worker_depth(w)) {
            w = e->rworkers[i];
            d = &e->refiners[i];
        }
    }
    refine_job *r = calloc(1, sizeof *r);
    if (!r) {
        e->stats.refine_full++;
        return;
    }
    *r = (refine_job){.job = {.work = on_refine, .done = on_refined},
                      .s = s,
                      .d = d,
                      .id = res->id,
                      .utt = res->utt};
    if (cs_worker_post(w, &r->job) < 0) {
        e->stats.refine_full++;
        free(r);
        return;
    }
    res->utt.pcm = NULL; /* the job's now */
    s->refining++;
    e->stats.refine_pending++;
}

static void on_done(cs_job *job)
{
    cs_stt_session *s = (cs_stt_session *)((char *)job - offsetof(cs_stt_session, job));
    cs_stt *e = s->e;
    /* Still queued while its results are delivered: a callback that feeds or closes the
     * session must not send the worker back to them before they are all read. */
    for (size_t i = 0; i < s->nresults; i++) {
        result *r = &s->results[i];
        if (!s->failed) {
            cs_stt_segment seg = {.id = r->id,
                                  .start_ms = r->start_ms,
                                  .end_ms = r->end_ms,
                                  .text = r->text,
                                  .final = r->final,
                                  .confidence = -1};
            r->final ? e->stats.finals++ : e->stats.interims++;
            s->o.on_segment(s->o.data, &seg);
            if (r->final) refine(s, r);
        }
        free(r->text);
        free(r->utt.pcm);
        r->utt.pcm = NULL;
    }
    s->nresults = 0;
    if (s->error < 0 && !s->failed) {
        s->failed = true;
        e->stats.failures++;
        cs_warn("transcription of %s: %s", s->label, s->why);
        s->o.on_error(s->o.data, s->error, s->why);
    }
    s->queued = false;
    if (s->finished) {
        /* The decoder serves the next call at once; refinements still due keep only the
         * session. */
        s->d->next_free = e->free;
        e->free = s->d;
        if (s->refining == 0) release(s);
        return;
    }
    pthread_mutex_lock(&s->lock);
    bool more = s->backlog.len > 0 || s->close_asked;
    pthread_mutex_unlock(&s->lock);
    if (more) post(s);
}

static int ps_open(cs_stt *e, const cs_stt_session_opts *o, cs_stt_session **out)
{
    if (!e->free) {
        e->stats.refused++;
        return CS_EFULL;
    }
    cs_stt_session *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->grammar = o->grammar ? strdup(o->grammar) : NULL;
    s->keywords = o->keywords && !o->grammar ? strdup(o->keywords) : NULL;
    if ((o->grammar && !s->grammar) || (o->keywords && !o->grammar && !s->keywords) ||
        pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->grammar);
        free(s->keywords);
        free(s);
        return -ENOMEM;
    }
    s->e = e;
    s->o = *o;
    snprintf(s->label, sizeof s->label, "%s", o->label ? o->label : "session");
    s->o.label = s->label;
    s->o.grammar = s->o.keywords = NULL;
    s->d = e->free;
    e->free = s->d->next_free;
    s->worker = e->workers[(size_t)(s->d - e->decoders) % e->nworkers];
    s->job = (cs_job){.work = on_work, .done = on_done};
    cs_buf_init(&s->backlog, BACKLOG_BYTES);
    cs_buf_init(&s->batch, BACKLOG_BYTES);
    s->refine = e->nrefiners > 0 && !s->grammar && !s->keywords;
    cs_buf_init(&s->utt, e->refine_max);
    e->stats.sessions_open++;
    e->stats.sessions_total++;
    *out = s;
    post(s); /* loads the call's search and starts the utterance before audio comes */
    return 0;
}

static void ps_feed(cs_stt_session *s, uint32_t pos_ms, const uint8_t *ulaw, size_t n)
{
    cs_stt *e = s->e;
    if (s->closing || s->failed || n == 0) return;
    e->stats.audio_ms += n / IN_PER_MS;
    uint32_t hdr[2] = {pos_ms, (uint32_t)n};
    pthread_mutex_lock(&s->lock);
    bool fits = s->backlog_bytes + n <= (size_t)BACKLOG_MS * IN_PER_MS;
    if (fits && cs_buf_append(&s->backlog, hdr, sizeof hdr) == 0) {
        if (cs_buf_append(&s->backlog, ulaw, n) == 0)
            s->backlog_bytes += n;
        else
            cs_buf_truncate(&s->backlog, s->backlog.len - sizeof hdr);
    }
    pthread_mutex_unlock(&s->lock);
    if (!fits) e->stats.dropped_ms += n / IN_PER_MS;
    post(s);
}

static void ps_close(cs_stt_session *s)
{
    if (s->closing) return;
    s->closing = true;
    pthread_mutex_lock(&s->lock);
    s->close_asked = true;
    pthread_mutex_unlock(&s->lock);
    post(s);
}

static void ps_stats(cs_stt *e, cs_stt_stats *out)
{
    *out = e->stats;
}

static void stop_workers(cs_worker **w, size_t n)
{
    for (size_t i = 0; w && i < n; i++)
        if (w[i]) cs_worker_stop(w[i]);
    free(w);
}

static void free_decoders(decoder *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++)
        if (d[i].ps) ps_free(d[i].ps);
    free(d);
}

static void ps_destroy(cs_stt *e)
{
    if (!e) return;
    stop_workers(e->workers, e->nworkers);
    stop_workers(e->rworkers, e->nrefiners);
    free_decoders(e->decoders, e->ndecoders);
    free_decoders(e->refiners, e->nrefiners);
    free(e);
}

static const passes *find_passes(const char *name)
{
    for (size_t i = 0; i < sizeof pass_table / sizeof *pass_table; i++)
        if (strcmp(pass_table[i].name, name) == 0) return &pass_table[i];
    return NULL;
}

static int load_decoder(decoder *d, const char *dir, const passes *p, const char *silence,
                        cs_buf *err)
{
    char hmm[4200], lm[4200], dict[4200];
    snprintf(hmm, sizeof hmm, "%s/en-us", dir);
    snprintf(lm, sizeof lm, "%s/en-us.lm.bin", dir);
    snprintf(dict, sizeof dict, "%s/cmudict-en-us.dict", dir);
    struct stat st;
    if (stat(hmm, &st) != 0 || stat(lm, &st) != 0 || stat(dict, &st) != 0) {
        cs_buf_printf(err,
                      "STT_MODEL_DIR: %s has no en-us, en-us.lm.bin and cmudict-en-us.dict "
                      "(Debian package pocketsphinx-en-us)",
                      dir);
        return CS_ECONFIG;
    }
    cmd_ln_t *c = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict,
                              "-fwdflat", p->fwdflat, "-bestpath", p->bestpath, "-remove_silence",
                              silence, PS_SETTINGS, NULL);
    d->ps = c ? ps_init(c) : NULL;
    cmd_ln_free_r(c); /* the decoder keeps its own reference */
    if (!d->ps) {
        cs_buf_printf(err, "pocketsphinx could not load the model in %s", dir);
        return CS_EBACKEND;
    }
    if (ps_get_feat(d->ps)->cmn_struct->veclen != CMN_LEN) {
        cs_buf_printf(err, "STT_MODEL_DIR: %s is not a %d-cepstra model", dir, CMN_LEN);
        return CS_ECONFIG;
    }
    /* The language model's search (not ps_get_search(): it leaks an iterator). */
    for (ps_search_iter_t *it = ps_search_iter(d->ps); it; it = ps_search_iter_next(it)) {
        if (ps_get_lm(d->ps, ps_search_iter_val(it))) {
            snprintf(d->lm_search, sizeof d->lm_search, "%s", ps_search_iter_val(it));
            ps_search_iter_free(it);
            break;
        }
    }
    return 0;
}

/* `n` decoders with passes `p` and `silence` removal, and `nworkers` workers (named
 * prefix-i) started with `hooks`, their queues `max_jobs` long. */
static int start_pool(decoder **dec, size_t n, cs_worker ***workers, size_t nworkers,
                      const char *prefix, size_t max_jobs, const cs_worker_hooks *hooks,
                      const cs_config *cfg, const passes *p, const char *silence, cs_mailbox *mb,
                      cs_buf *err)
{
    *dec = calloc(n ? n : 1, sizeof **dec);
    *workers = calloc(nworkers, sizeof **workers);
    if (!*dec || !*workers) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = load_decoder(&(*dec)[i], cfg->stt_model_dir, p, silence, err);
        if (rc < 0) return rc;
    }
    for (size_t i = 0; i < nworkers; i++) {
        char name[16];
        snprintf(name, sizeof name, "%s-%u", prefix, (unsigned)(i % 1000));
        if (cs_worker_start(&(*workers)[i], name, max_jobs, mb, hooks) < 0) {
            cs_buf_printf(err, "cannot start STT worker threads");
            return -ENOMEM;
        }
    }
    return 0;
}

static int ps_create(cs_stt **out, const cs_config *cfg, uv_loop_t *loop, cs_mailbox *mb,
                     cs_buf *err)
{
    const char *live_name = cfg->stt_passes ? cfg->stt_passes : "forward";
    const char *refine_name = cfg->stt_refine_passes ? cfg->stt_refine_passes : "fwdflat";
    const passes *live = find_passes(live_name), *refined = find_passes(refine_name);
    if (!live || !refined) {
        cs_buf_printf(err, "%s: '%s' is not forward, lattice or fwdflat",
                      live ? "STT_REFINE_PASSES" : "STT_PASSES", live ? refine_name : live_name);
        return CS_ECONFIG;
    }
    err_set_logfp(NULL); /* pocketsphinx logs every utterance to stderr otherwise */
    cs_stt *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    (void)loop; /* results come back through the mailbox */
    e->ndecoders = (size_t)cfg->stt_max_sessions;
    size_t cpus = uv_available_parallelism();
    e->nworkers = e->ndecoders < cpus ? e->ndecoders : cpus;
    if (e->nworkers == 0) e->nworkers = 1;
    uint64_t t0 = uv_hrtime();
    int rc = start_pool(&e->decoders, e->ndecoders, &e->workers, e->nworkers, "stt",
                        e->ndecoders + 1, NULL, cfg, live, LIVE_SILENCE, mb, err);
    for (size_t i = 0; rc == 0 && i < e->ndecoders; i++) {
        e->decoders[i].next_free = e->free;
        e->free = &e->decoders[i];
    }
    if (rc == 0 && cfg->stt_refine && e->ndecoders) {
        e->nrefiners = cfg->stt_refine_decoders > 0 ? (size_t)cfg->stt_refine_decoders : 1;
        e->refine_max =
            ((size_t)cfg->stt_refine_max_ms + REFINE_LEAD_MS) * 2 * IN_PER_MS * sizeof(int16_t);
        cs_worker_hooks low = {.nice = REFINE_NICE};
        rc = start_pool(&e->refiners, e->nrefiners, &e->rworkers, e->nrefiners, "stt-refine",
                        cfg->stt_refine_queue > 0 ? (size_t)cfg->stt_refine_queue : 1, &low, cfg,
                        refined, REFINE_SILENCE, mb, err);
    }
    if (rc < 0) {
        ps_destroy(e);
        return rc;
    }
    cs_info("pocketsphinx: %zu decoders (%s) and %zu refining (%s) loaded in %.1f s, %zu "
            "worker threads",
            e->ndecoders, live->name, e->nrefiners, e->nrefiners ? refined->name : "off",
            (double)(uv_hrtime() - t0) / 1e9, e->nworkers + e->nrefiners);
    *out = e;
    return 0;
}

const cs_stt_ops cs_stt_pocketsphinx = {
    .name = "pocketsphinx",
    .grammars = true,
    .create = ps_create,
    .destroy = ps_destroy,
    .open = ps_open,
    .feed = ps_feed,
    .close = ps_close,
    .stats = ps_stats,
};
