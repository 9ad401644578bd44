/* Call recordings: one WAV per call, 8 kHz 16-bit; channel 0 is the caller, channel 1
 * (stereo files) what we sent. The loop appends μ-law frames with their place on the
 * call's timeline to a small per-call chunk; a writer thread decodes them, lays them
 * out (gaps become silence, a `cut` erases a channel from a point on, as a `clear`
 * discards audio not yet played), rewrites the header every few seconds so a crash
 * leaves a playable file, and syncs the file when the call ends. */
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
                             are dropped (counted and logged): the one point                       \
                             where a recording can lose audio */
#define CS_REC_WINDOW 8192 /* frames the writer lays out per write */
#define CS_REC_TAIL                                                                                \
    320                      /* frames of each file the writer keeps: most read-modify-writes      \
                                  start in them and need no read */
#define CS_REC_LINGER_MS 100 /* chunks gather this long per wake-up of the writer */

typedef struct cs_recorders cs_recorders;
typedef struct cs_recording cs_recording;

typedef struct cs_recorders_stats {
    uint64_t opened;
    uint64_t closed;
    uint64_t chunks;         /* posted to the writer */
    uint64_t dropped_chunks; /* over the backlog limit */
    uint64_t backlog_bytes;  /* waiting now */
    uint64_t errors;         /* file errors met by the writer */
} cs_recorders_stats;

/* Finished: `frames` written (at 8 kHz), `err` 0 or the first file error. Loop thread. */
typedef void (*cs_recording_done_fn)(void *data, const char *path, uint64_t frames, int err);

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

/* Opens <dir>/<name>.wav (<name>-2.wav, … if taken). `name` is a CallSid: letters and
 * digits only, else -EINVAL. */
int cs_recording_open(cs_recorders *r, const char *name, unsigned channels, cs_recording **out);
/* Path of the file (valid until the done callback returns). */
const char *cs_recording_path(const cs_recording *rec);
/* `n` μ-law bytes for `channel` starting at frame `pos` of the call's timeline. */
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
