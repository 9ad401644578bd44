/* Speech to text. An engine transcribes sessions — one speaker of one call each — and
 * reports segments (interim versions of an utterance, then its final text) on the loop
 * thread. Heavy work (decoding) runs on the engine's worker threads, never on the loop;
 * network engines keep their sockets on the loop. Engines are ops tables chosen by STT;
 * the rest of the gateway never knows which one runs. */
#ifndef CS_STT_H
#define CS_STT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/worker.h"

#define CS_STT_TEXT_MAX 4096 /* longest segment text kept */

/* One segment. Views are valid during the callback only. */
typedef struct cs_stt_segment {
    uint64_t id;       /* the same for every interim version of an utterance and its final;
                          unique within the session */
    uint32_t start_ms; /* on the call's timeline (positions given to feed) */
    uint32_t end_ms;
    const char *text;  /* UTF-8, trimmed; may be empty for an interim */
    bool final;
    bool refined;      /* a final again, re-decoded more thoroughly after the fast one: it
                          replaces the final of the same id (the engine may send none) */
    float confidence;  /* 0..1, or -1 when the engine gives none */
} cs_stt_segment;

typedef struct cs_stt cs_stt;                 /* an engine, with its models and workers */
typedef struct cs_stt_session cs_stt_session; /* one speaker of one call */

typedef struct cs_stt_session_opts {
    const char *label;    /* for logs, e.g. "CA…/caller" */
    const char *grammar;  /* a JSGF grammar restricting what is recognised, or NULL */
    const char *keywords; /* keyword spotting: one phrase per line (pocketsphinx syntax
                             "phrase /1e-20/"), or NULL; at most one of grammar/keywords */
    /* Results, on the loop. `data` is the caller's; it must stay valid until on_closed,
     * which comes after the refined finals still due (an engine that refines finishes the
     * utterances queued for it before closing). */
    void (*on_segment)(void *data, const cs_stt_segment *seg);
    /* The engine failed for this session (it will send nothing more until closed); the
     * call goes on without a transcript. `err` < 0, `why` for logs and events. */
    void (*on_error)(void *data, int err, const char *why);
    /* After cs_stt_close: every segment is out; the session is gone. Never called from
     * inside cs_stt_close itself. */
    void (*on_closed)(void *data);
    void *data;
} cs_stt_session_opts;

typedef struct cs_stt_stats {
    uint64_t sessions_open;   /* now */
    uint64_t sessions_total;
    uint64_t refused;         /* opens refused for lack of a free decoder */
    uint64_t failures;        /* sessions the engine failed */
    uint64_t finals, interims;
    uint64_t audio_ms;        /* audio taken */
    uint64_t dropped_ms;      /* audio dropped because the engine fell behind */
    uint64_t reconnects;      /* connections tried again after a failure (network engines) */
    uint64_t close_timeouts;  /* sessions ended by their close deadline, results still due */
    uint64_t keywords_cut;    /* keywords past the engine's limit, not sent */
    uint64_t refined;         /* refined finals sent */
    uint64_t refine_full;     /* finals left unrefined: the refinement queue was full */
    uint64_t refine_too_long; /* finals left unrefined: the utterance was over the cap */
    uint64_t refine_pending;  /* utterances waiting for or in refinement (now) */
} cs_stt_stats;

typedef struct cs_stt_ops {
    const char *name;
    bool grammars; /* a session's grammar restricts what it recognises (else it is ignored) */
    /* Loads models and starts workers; may block (start-up only). Results and completions
     * come back through `mb`. 0 or a negative code with a message in `err`. */
    int (*create)(cs_stt **out, const cs_config *cfg, uv_loop_t *loop, cs_mailbox *mb,
                  cs_buf *err);
    /* Stops everything; sessions must be closed first (their on_closed run). Blocking. */
    void (*destroy)(cs_stt *e);
    /* A session. CS_EFULL when no decoder is free (the call is served without a
     * transcript), CS_EPARSE for a grammar the engine refuses, -ENOMEM. */
    int (*open)(cs_stt *e, const cs_stt_session_opts *o, cs_stt_session **out);
    /* μ-law 8 kHz audio placed at `pos_ms` on the call's timeline. Positions only grow;
     * a gap is silence. Never blocks: when the engine is behind, audio is dropped (counted
     * in dropped_ms) rather than delay the loop. */
    void (*feed)(cs_stt_session *s, uint32_t pos_ms, const uint8_t *ulaw, size_t n);
    /* No more audio: what is left is finalized, then on_closed. */
    void (*close)(cs_stt_session *s);
    void (*stats)(cs_stt *e, cs_stt_stats *out);
} cs_stt_ops;

extern const cs_stt_ops cs_stt_pocketsphinx;
extern const cs_stt_ops cs_stt_deepgram;

/* By STT name; "none" gives NULL with 0; an unknown name CS_ECONFIG. */
int cs_stt_find(const char *name, const cs_stt_ops **out);

#endif
