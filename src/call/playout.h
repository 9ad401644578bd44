/* The playout queue of a two-way stream: what the agent says, in utterances, until the
 * caller has heard it. Producers push μ-law audio with the text it carries (sentence by
 * sentence, with word timings when the engine gives them); the stream takes it out in
 * frames, paced in real time, and places a mark after every sentence and at the end of
 * each utterance. For each utterance the queue knows which audio is still ours, which
 * was sent (queued at the provider) and, from the playout position, how much of it and
 * which words were heard — what a clear reports, and what transcripts and LLM history
 * keep. Pure bookkeeping: no I/O, no clock of its own. */
#ifndef CS_PLAYOUT_H
#define CS_PLAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CS_PLAYOUT_UTTS_MAX  16          /* utterances in flight per stream */
#define CS_PLAYOUT_TEXT_MAX  (64u << 10) /* text of one utterance */
#define CS_PLAYOUT_SPANS_MAX 8192        /* words (or word-less sentences) per utterance */
#define CS_PLAYOUT_FRAME     160         /* bytes sent at once: 20 ms at 8 kHz */

/* A word of a sentence's text, and where its audio starts in the sentence's audio. */
typedef struct cs_word {
    uint32_t off, len; /* bytes into the sentence's text */
    uint32_t start_ms;
} cs_word;

/* Where a mark goes: after the audio of a sentence, or at the end of an utterance. */
enum cs_mark_kind { CS_MARK_SENTENCE = 1, CS_MARK_END = 2 };

typedef struct cs_playout_mark {
    uint32_t utt;
    uint32_t seq; /* sentence number within the utterance (the end mark: its count) */
    enum cs_mark_kind kind;
} cs_playout_mark;

/* What the caller heard of an utterance (at its end, or when it was cut). */
typedef struct cs_heard {
    uint32_t utt;
    uint64_t start_pos; /* timeline position of its first frame sent (0 if none was) */
    uint64_t heard_ms;  /* of its audio, heard */
    uint64_t total_ms;  /* of its audio, pushed */
    const char *text;   /* the text heard (words whose audio started); NUL-terminated */
    size_t text_len;
    const char *full; /* all the text it carries */
    size_t full_len;
    bool cut;   /* cut short by a clear or the stream's end */
    bool words; /* text heard was measured by word timings, not proportionally */
} cs_heard;

typedef struct cs_utt cs_utt;

typedef struct cs_playout {
    cs_utt *utts[CS_PLAYOUT_UTTS_MAX]; /* in flight, oldest first */
    size_t nutts;
    uint32_t next_id;  /* last id handed out */
    uint32_t cut_upto; /* ids up to this were cleared: their audio is refused */
    uint64_t pending;  /* bytes pushed, not yet taken, all utterances */
    uint64_t max_pending;
    cs_buf heard_text; /* scratch for cs_heard.text */
} cs_playout;

void cs_playout_init(cs_playout *p, uint64_t max_pending_bytes);
void cs_playout_free(cs_playout *p);

/* ---- producers ---- */

/* A new utterance; its id (> 0) in *id. CS_ELIMIT with CS_PLAYOUT_UTTS_MAX in flight. */
int cs_playout_begin(cs_playout *p, uint32_t *id);
/* Audio of utterance `id`, after what it pushed before. CS_ECLOSED for an utterance that
 * was cleared, ended or is unknown; CS_EFULL past max_pending (nothing taken). */
int cs_playout_push(cs_playout *p, uint32_t id, const uint8_t *ulaw, size_t n);
/* The text of the audio pushed since the previous sentence: a sentence ends here and a
 * mark follows its audio. `words` (may be NULL) place its words in that audio. */
int cs_playout_sentence(cs_playout *p, uint32_t id, const char *text, size_t len,
                        const cs_word *words, size_t nwords);
/* No more audio for `id`: a mark follows its last audio. */
int cs_playout_end(cs_playout *p, uint32_t id);

/* ---- the stream's side ---- */

/* The next bytes to send (at most `max`, never across a mark): a pointer into the queue
 * and its length, 0 when nothing is ready (the utterance playing waits for audio). */
size_t cs_playout_peek(cs_playout *p, const uint8_t **data, size_t max);
/* `n` bytes of what peek gave were sent, to play at timeline position `pos`. */
void cs_playout_taken(cs_playout *p, size_t n, uint64_t pos);
/* A mark due now (after the audio sent so far); true and *m if one is. Once sent,
 * cs_playout_mark_sent; marks come in order. */
bool cs_playout_mark_due(const cs_playout *p, cs_playout_mark *m);
void cs_playout_mark_sent(cs_playout *p);
/* Bytes pushed and not yet sent. */
static inline uint64_t cs_playout_pending(const cs_playout *p)
{
    return p->pending;
}
/* Whether anything is in flight (pending, or sent and not known to be played). */
static inline bool cs_playout_busy(const cs_playout *p)
{
    return p->nutts > 0;
}
/* Where the audio of the utterances in flight was sent to, and how far it played: the
 * end of what was sent, on the timeline (0 if nothing). */
uint64_t cs_playout_sent_end(const cs_playout *p);

/* An utterance's end mark came back played, or `now` passed its end with every byte
 * sent and `grace` frames more (its echo lost): report it whole, then it is gone.
 * `report` is called once per finished utterance, oldest first. */
void cs_playout_finish(cs_playout *p, uint32_t id, void (*report)(void *, const cs_heard *),
                       void *data);
/* Finishes, as above, the utterances whose audio ended more than `grace` frames before
 * `now`; returns how many. */
size_t cs_playout_expire(cs_playout *p, uint64_t now, uint64_t grace,
                         void (*report)(void *, const cs_heard *), void *data);
/* A mark came back played at `pos`: its audio was heard up to there. */
void cs_playout_played(cs_playout *p, uint32_t id, uint64_t pos);

/* Everything in flight is dropped: what played by timeline position `now` was heard, the
 * rest never will be. Each utterance is reported (cut), oldest first; further audio for
 * them is refused. Returns the frames sent beyond `now` (queued at the provider). */
uint64_t cs_playout_cut(cs_playout *p, uint64_t now, void (*report)(void *, const cs_heard *),
                        void *data);

#endif
