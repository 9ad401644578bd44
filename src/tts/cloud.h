/* What the cloud TTS engines share (elevenlabs.c, openai.c): jobs live on the loop, each
 * one request to the service, its audio handed on as it streams in. A job's text is
 * spoken as one piece (the voice gives one sentence at a time): its audio as it comes,
 * then one on_sentence with the whole text, the words the engine could time, and the
 * length of the audio. A job that hears nothing for TTS_CLOUD_TIMEOUT_MS (from its
 * start, or its last audio) fails with -ETIMEDOUT. Every end, failures included, reaches
 * on_done through the mailbox, never from inside speak, cancel or destroy. Internal to
 * src/tts. */
#ifndef CS_TTS_CLOUD_H
#define CS_TTS_CLOUD_H

#include "tts/tts_int.h"

typedef struct tts_cloud tts_cloud;
typedef struct tts_cjob tts_cjob;

/* An engine's part. */
typedef struct tts_cloud_eng {
    const char *name;
    size_t job_size; /* the engine's job struct, which starts with a tts_cjob */
    /* Starts the request for j->text. < 0: nothing was started (j->why may say why); the
     * job ends with that error. */
    int (*start)(tts_cjob *j);
    /* Ends the request soon (cancel, a failure, destroy): the engine calls tts_cjob_end
     * once nothing of it refers to the job any more, from inside stop or later. */
    void (*stop)(tts_cjob *j);
    /* Frees what the engine holds, once its last job is gone after destroy. */
    void (*release)(tts_cloud *e);
} tts_cloud_eng;

/* The base of a cloud engine: an engine's struct starts with it. */
struct tts_cloud {
    cs_tts base; /* voice, rate, pitch, queue_max, stats, destroyed (no workers) */
    const tts_cloud_eng *ceng;
    const cs_config *cfg;
    uv_loop_t *loop;
    cs_mailbox *mb;
    uint32_t timeout_ms;
    uv_timer_t sweep; /* looks for jobs past their timeout */
    tts_cjob *jobs;   /* live */
};

struct tts_cjob {
    tts_cloud *e;
    tts_job_base b;
    uint64_t queued; /* hrtime of speak() */
    uint64_t last;   /* hrtime of the start or the last audio */
    uint64_t bytes;  /* μ-law delivered */
    tts_audio words; /* the words timed so far (pcm unused) */
    bool heard;      /* first audio delivered */
    bool over;       /* cancelled or done: no more callbacks */
    bool stopping;   /* stop() was called */
    bool ended;      /* the engine let go of it: its end is on the way */
    bool cut;        /* passed CS_TTS_SENTENCE_MS */
    int err;         /* the first failure */
    char why[200];
    cs_job end;
    tts_cjob *prev, *next;
};

/* Checks the API key of setting `setting` for TTS=`name`: 0, or CS_ECONFIG (missing, or
 * more than one line) with `err` saying so. */
int tts_cloud_key(const char *key, const char *setting, const char *name, cs_buf *err);
/* Fills the base: `voice` is the default voice. 0 or -ENOMEM. */
int tts_cloud_init(tts_cloud *e, const tts_cloud_eng *ceng, const cs_tts_env *env,
                   const char *voice);

/* Audio of the job, μ-law 8 kHz, as it arrives (cut at CS_TTS_SENTENCE_MS). */
void tts_cjob_audio(tts_cjob *j, const uint8_t *ulaw, size_t n);
/* The job failed: `err` and why (printf), kept if it is the first failure; the request
 * is stopped. */
void tts_cjob_fail(tts_cjob *j, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The engine's request is over and it holds nothing of the job: done (0), or ended with
 * `err` (why as for fail) unless an earlier failure says more. */
void tts_cjob_end(tts_cjob *j, int err, const char *why);
/* Whether the job still wants its audio (not cancelled, not failed). */
bool tts_cjob_live(const tts_cjob *j);

/* The ops every cloud engine shares. */
void tts_cloud_destroy(cs_tts *e);
int tts_cloud_speak(cs_tts *e, const cs_tts_opts *o, cs_tts_job **out);
void tts_cloud_cancel(cs_tts_job *j);

#endif
