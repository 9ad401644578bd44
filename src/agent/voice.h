/* An agent's voice: what it says, as utterances of its stream, made by a TTS engine (on
 * a relay stream, which carries text, each piece of text goes to the provider as it
 * comes, and the provider speaks it: no engine is used).
 * Text comes whole (cs_voice_say) or in pieces as a language model writes it
 * (cs_voice_feed, then cs_voice_end); it is cut into sentences, and sentences are made
 * one after another, so the first is heard while the next is made. Each sentence's audio
 * goes into the playout queue with its text and word timings. A clear (barge-in) refuses
 * the rest of the utterance: the voice stops making it at once. When a cloud engine fails
 * a sentence (unreachable, refused, cut off, silent too long), the fallback engine
 * speaks that sentence again and the rest of its utterance, and an `agent` event says
 * which engine failed, why, and who spoke instead. All on the loop. */
#ifndef CS_VOICE_H
#define CS_VOICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"
#include "call/talk.h"
#include "core/buf.h"
#include "tts/sentence.h"
#include "tts/tts.h"

typedef struct cs_voice {
    cs_agent *agent;
    const cs_tts_ops *ops;
    cs_tts *tts;
    const char *name; /* TTS voice; NULL: the engine's */
    int rate, pitch;  /* 0: the settings' */
    cs_splitter split;
    cs_buf queue;              /* sentences waiting for the engine, each NUL-terminated */
    size_t queue_head;         /* where the next one starts */
    uint32_t utt;              /* the utterance text is fed to; 0: none */
    uint32_t making;           /* the utterance of the sentence being made (an earlier one while
                                  text is fed to the next) */
    bool ending;               /* its text is complete */
    cs_tts_job *job;           /* the sentence being made */
    const cs_tts_ops *job_ops; /* by this engine */
    cs_buf sentence;           /* its text, to say again with the fallback */
    cs_tts_fallback *fallback; /* NULL: none */
    uint32_t fell_back;        /* the utterance the fallback speaks; 0: none */
    char why[200];             /* why the engine failed the sentence (on_error) */
    /* The engine failed on a sentence (`err`); the rest of the utterance still comes.
     * May be NULL. */
    void (*failed)(cs_agent *a, int err);
} cs_voice;

void cs_voice_init(cs_voice *v, cs_agent *a, const cs_tts_ops *ops, cs_tts *tts);
/* Cancels what is being made; the voice can be used again. */
void cs_voice_free(cs_voice *v);

/* Says `text` as one utterance (after the one being spoken). */
int cs_voice_say(cs_voice *v, const char *text, size_t len);
/* A piece of the utterance's text (one is begun when none is open). */
int cs_voice_feed(cs_voice *v, const char *text, size_t len);
/* The utterance's text is complete. */
int cs_voice_end(cs_voice *v);
/* The utterance's text broke off (a reply cut short): its unfinished sentence is dropped,
 * its complete ones are still said, and it ends. */
int cs_voice_abandon(cs_voice *v);
/* Stops making the current utterance: its waiting text is dropped and the sentence being
 * made is cancelled; what was queued for playout stays, unless a clear dropped it. */
void cs_voice_stop(cs_voice *v);
/* Whether it is still making audio (a sentence being made or waiting). */
bool cs_voice_busy(const cs_voice *v);

#endif
