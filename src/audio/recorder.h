/* Call recordings: one WAV per call, 8 kHz 16-bit; channel 0 is the caller, channel 1
 * (stereo files) what we sent. The loop appends μ-law frames with their place on the
 * call's timeline to a small per-call chunk; a writer thread decodes them, lays them
 * out (gaps become silence, a `cut` erases a channel from a point on, as a `clear`
 * discards audio not yet played), rewrites the header every few seconds so a crash
 * leaves a playable file, and syncs the file when the call ends.
 * A file that cannot be created or written (a full disk, no descriptors left) keeps what
 * it holds and is tried again with backoff; the audio meanwhile is lost, counted, and
 * left as silence, so what follows stays in its place on the timeline. */
#ifndef CS_RECORDER_H
#define CS_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/worker.h"

#define CS_REC_RATE        8000
#define CS_REC_CHUNK_BYTES 4096 /* loop-side batch: ≈ 0.25–0.5 s of one call */
#define CS_REC_BACKLOG_MAX                                                                         \
    (64u << 20)            /* chunk bytes waiting for the disk; beyond, chunks                     \
                             are dropped (counted and logged), as audio is while                   \
                             a file cannot be written */
#define CS_REC_WINDOW 8192 /* frames the writer lays out per write */
#define CS_REC_TAIL                                                                                \
    320                           /* frames of each file the writer keeps: most read-modify-writes \
                                       start in them and need no read */
#define CS_REC_LINGER_MS     100  /* chunks gather this long per wake-up of the writer */
#define CS_REC_RETRY_MIN_MS  250  /* a failing file is tried again after this, doubling… */
#define CS_REC_RETRY_MAX_MS  5000 /* …up to this (jittered, core/backoff) */
#define CS_REC_DISK_CHECK_MS 2000 /* free space of the recordings' filesystem, read this often */

typedef struct cs_recorders cs_recorders;
typedef struct cs_recording cs_recording;

typedef struct cs_recorders_stats {
    uint64_t opened;
    uint64_t closed;
    uint64_t chunks;         /* posted to the writer */
    uint64_t dropped_chunks; /* over the backlog limit */
    uint64_t backlog_bytes;  /* waiting now */
    uint64_t errors;         /* times a file stopped being writable (each then retried) */
    uint64_t retries;        /* attempts on a failing file */
    uint64_t failing;        /* recordings that cannot write now */
    uint64_t lost_frames;    /* audio lost to file errors (silence in the files) */
    uint64_t refused;        /* runs placed past what a WAV can hold, skipped */
    /* the recordings' filesystem, once watched (cs_recorders_watch_disk) and read */
    bool disk_known;
    bool disk_low;      /* free space under the threshold */
    uint64_t disk_free; /* bytes available to us */
    uint64_t disk_total;
    uint64_t disk_low_bytes; /* the threshold */
} cs_recorders_stats;

/* What happens to a recording while it is written. X(name, label) */
#define CS_REC_NEWS_MAP(X)                                                                         \
    X(FAILED, "failed")   /* the file cannot be written (`err`); audio from `from` on is lost */   \
    X(RESUMED, "resumed") /* it is written again; frames [from, to) were lost: silence */        \
    X(CREATED, "created") /* the file is made: cs_recording_path says where */

enum cs_recording_news {
#define CS_REC_NEWS_ENUM(name, label) CS_REC_##name,
    CS_REC_NEWS_MAP(CS_REC_NEWS_ENUM)
#undef CS_REC_NEWS_ENUM
};
const char *cs_recording_news_label(enum cs_recording_news what);

/* Loop thread. Positions are frames of the call's timeline. */
typedef void (*cs_recording_news_fn)(void *data, enum cs_recording_news what, int err,
                                     uint64_t from, uint64_t to);

typedef struct cs_recording_result {
    const char *path;     /* the file, or NULL if none could be created */
    uint64_t frames;      /* its length at 8 kHz */
    uint64_t lost_frames; /* lost to file errors, silence in the file */
    int err;              /* 0, or the error the file still failed with at the end */
} cs_recording_result;

/* Finished (loop thread); `res` is valid during the call. */
typedef void (*cs_recording_done_fn)(void *data, const cs_recording_result *res);

/* Starts the writer thread; files go to `dir` (created if missing). Results come back
 * through `mb`. Unfinished files from a crash are repaired first, on the writer. */
int cs_recorders_new(cs_recorders **out, cs_mailbox *mb, const char *dir,
                     unsigned header_interval_s);
/* Writes everything queued, finalizes open files and stops the thread. Recordings not
 * closed yet are closed without a done callback (their handles are gone); done callbacks
 * already due run from the mailbox, possibly after this returns. */
void cs_recorders_free(cs_recorders *r);
void cs_recorders_stats_get(cs_recorders *r, cs_recorders_stats *out);
/* The folder of the files. */
const char *cs_recorders_dir(const cs_recorders *r);
/* Runs `job` on the writer, after the start-up repair and what is queued; its `done`
 * comes back on the loop. For work on the files that must not race the writer. */
void cs_recorders_run(cs_recorders *r, cs_job *job);
/* Reads the free space of `dir`'s filesystem now and every CS_REC_DISK_CHECK_MS, on
 * libuv's thread pool (never on the loop); under `low_bytes` it is flagged in the stats,
 * and logged as a warning if `say` (false for all but one of the loops sharing the disk).
 * Loop thread; runs until cs_recorders_free. */
int cs_recorders_watch_disk(cs_recorders *r, uv_loop_t *loop, uint64_t low_bytes, bool say);

/* Opens <dir>/<name>.wav (<name>-2.wav, … if taken). `name` is a CallSid: letters and
 * digits only, else -EINVAL. */
int cs_recording_open(cs_recorders *r, const char *name, unsigned channels, cs_recording **out);
/* Tells `fn` (or nobody: NULL) what happens to the file until it is closed. */
void cs_recording_on_news(cs_recording *rec, cs_recording_news_fn fn, void *data);
/* Path of the file once created, else NULL (valid until the done callback returns). */
const char *cs_recording_path(const cs_recording *rec);
/* `n` μ-law bytes for `channel` starting at frame `pos` of the call's timeline. A run
 * past what a WAV can hold is skipped and counted (`refused`); the file goes on. */
void cs_recording_audio(cs_recording *rec, unsigned channel, uint64_t pos, const uint8_t *ulaw,
                        size_t n);
/* Silences `channel` from frame `pos` to the end of what was written. */
void cs_recording_cut(cs_recording *rec, unsigned channel, uint64_t pos);
/* Sends what is batched to the writer now. */
void cs_recording_flush(cs_recording *rec);
/* Finishes the file; `done` (may be NULL) runs on the loop once it is synced and
 * closed, after which `rec` is gone. */
void cs_recording_close(cs_recording *rec, cs_recording_done_fn done, void *data);

#endif
