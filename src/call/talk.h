/* Talking back. A two-way stream owns its agent: the call layer hands it the caller's
 * audio, speech onset and offset, transcripts, DTMF, mark echoes and a timer, and the
 * agent speaks through the stream's playout queue (call/playout.h), which sends 20 ms
 * frames paced in real time PLAYOUT_LEAD_MS ahead, with marks after sentences and
 * utterances. A clear is one operation: our queue is dropped, the provider's discarded,
 * the agent told what was heard of each utterance (to stop its producers and keep only
 * that), the recording's agent channel cut and observers told. Barge-in is a clear on
 * the caller's speech or key press. Agents are ops tables (agent/); the call never knows
 * which one runs. Everything here runs on the call's loop thread. */
#ifndef CS_TALK_H
#define CS_TALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call/call.h"
#include "core/buf.h"

struct cs_config; /* core/config.h */

/* A segment of the caller's live transcript. Views are valid during the callback. */
struct cs_transcript {
    uint64_t id;               /* the same for an utterance's interim versions and its final */
    uint32_t start_ms, end_ms; /* on the call's timeline */
    const char *text;
    bool final;
    float confidence; /* 0..1, or -1 */
};

/* A mark of ours came back. */
typedef struct cs_mark_echo {
    uint32_t utt, seq;
    enum cs_mark_kind kind;
    bool played;  /* or discarded by a clear */
    uint64_t pos; /* where its audio ended on the call's timeline, in frames */
} cs_mark_echo;

enum cs_clear_why {
    CS_CLEAR_SPEECH, /* barge-in: the caller spoke */
    CS_CLEAR_DTMF,   /* barge-in: the caller pressed a key */
    CS_CLEAR_AGENT,  /* the agent asked */
    CS_CLEAR_END,    /* the stream ended with audio in flight (nothing is sent) */
};
const char *cs_clear_label(enum cs_clear_why why);

struct cs_agent_ops {
    const char *name;
    const char *help;
    /* The settings that set the kind up on a gateway, for messages (NULL: none needed). */
    const char *needs;
    /* Its utterances carry their text, which becomes the agent's transcript (its audio
     * is then not recognised). */
    bool speaks_text;
    /* The caller may cut it short by speaking or pressing a key (BARGE_IN). */
    bool interruptible;
    /* What every instance says first, when a provider can say it before the stream
     * starts (a relay's greeting): NULL if nothing, or if it varies. May be NULL. */
    const char *(*welcome)(const struct cs_config *cfg);
    /* An instance for two-way stream `s`. 0 or a negative code. */
    int (*open)(cs_agent **out, cs_stream *s, const cs_agent_env *env);
    /* Every callback below may be NULL. */
    /* Set up on its stream (a->stream, a->calls are there): it may speak first. */
    void (*start)(cs_agent *a);
    /* Caller audio at frame `pos` of the call's timeline. */
    void (*audio)(cs_agent *a, uint64_t pos, const uint8_t *ulaw, size_t n);
    /* The caller started or stopped speaking at `pos` (voice activity detection). */
    void (*speech)(cs_agent *a, bool started, uint64_t pos);
    void (*transcript)(cs_agent *a, const cs_transcript *t);
    void (*dtmf)(cs_agent *a, char digit);
    void (*mark)(cs_agent *a, const cs_mark_echo *m);
    /* An utterance was heard to its end. */
    void (*played)(cs_agent *a, const cs_heard *h);
    /* An utterance was cut by a clear: stop producing it (its audio is refused from now
     * on); `h` says what the caller heard of it. Once per utterance in flight. */
    void (*cleared)(cs_agent *a, const cs_heard *h, enum cs_clear_why why);
    /* The timer set with cs_agent_timer ran out. */
    void (*timer)(cs_agent *a);
    /* Says `text` in its voice, after what it is saying (call control's "say"). 0 or a
     * negative code. */
    int (*say)(cs_agent *a, const char *text, size_t len);
    /* The stream ended: a->stream is NULL from now on. Cancel what is in flight; call
     * cs_agent_closed(a) once nothing will call back into the agent (inside close, or
     * later when a request or socket has finished), then free it. */
    void (*close)(cs_agent *a);

    /* ---- the kind as a whole (agent/agent.c runs these; each may be NULL) ---- */
    /* Once at start-up, before any call (it may block: files are read here, never in
     * open): loads and checks what the instances share into *state, which open finds
     * with cs_agent_state. 0, or CS_ECONFIG with a message in `err`. */
    int (*setup)(const cs_agent_env *env, void **state, cs_buf *err);
    /* The voice webhook is answering call `call_sid`, whose stream will get this kind:
     * start now what takes time (a connection), so the first turn does not wait for it;
     * `open` for that call adopts it. What no stream adopts in time is let go (the kind
     * bounds and counts it). */
    void (*prepare)(void *state, const cs_agent_env *env, const char *call_sid);
    /* Shutdown: let go of what prepare started and no stream adopted. */
    void (*stop)(void *state);
    /* After every instance has finished. */
    void (*cleanup)(void *state);
    /* Its counters for /metrics, in Prometheus text. */
    void (*metrics)(void *state, cs_buf *out);
};

/* Base of every instance; backends embed it first. */
struct cs_agent {
    const cs_agent_ops *ops;
    cs_stream *stream; /* NULL once closed */
    cs_calls *calls;
    uint64_t timer_due_ms; /* on calls->clock_ms, 0 = none */
    char call_sid[CS_SID_MAX + 1]; /* its call's, for events after close */
};

/* ---- speaking (two-way streams with an agent; CS_ESTATE otherwise) ---- */

/* A new utterance; its id in *utt. CS_ELIMIT with CS_PLAYOUT_UTTS_MAX in flight. */
int cs_stream_say_begin(cs_stream *s, uint32_t *utt);
/* Its audio, μ-law 8 kHz. CS_ECLOSED once it was cleared or ended, CS_EFULL past
 * PLAYOUT_MAX_S queued. */
int cs_stream_say_audio(cs_stream *s, uint32_t utt, const uint8_t *ulaw, size_t n);
/* The text of its audio pushed since the previous sentence (a mark follows it); `words`
 * place its words in that audio (may be NULL: the text heard is then proportional). */
int cs_stream_say_sentence(cs_stream *s, uint32_t utt, const char *text, size_t len,
                           const cs_word *words, size_t nwords);
/* No more audio for `utt`. */
int cs_stream_say_end(cs_stream *s, uint32_t utt);
/* The stream's agent says `text` (call control): CS_ESTATE when it has no agent that
 * speaks text. */
int cs_stream_agent_say(cs_stream *s, const char *text, size_t len);
/* Whether agent audio is playing, queued, or being produced (an utterance not ended). */
bool cs_stream_talking(const cs_stream *s);
/* The agent ends the call: now, or once everything it said has played. Done on the next
 * tick, never inside the caller's callback. */
int cs_stream_hangup(cs_stream *s, bool after_playout);
/* Drops what the agent said and was not heard yet (see the top). On a relay stream the
 * provider cannot be told: the utterance in flight is reported cut, with all its text. */
int cs_stream_clear(cs_stream *s, enum cs_clear_why why);

/* ---- relay streams: the agent's speech goes as text ----
 * The provider says the text and tells when the caller cut it (interrupt: what was heard
 * and for how long); it never says when it finished. So an utterance whose last token
 * went stays in flight, to be cut by an interrupt, until the caller's next words, a key,
 * the agent's next utterance or the stream's end: it was then heard whole. The caller's
 * words come as transcripts (interim, then final); no audio, VAD, playout or recording. */

/* Whether the stream carries text (relay or gather), not audio. */
bool cs_stream_relay(const cs_stream *s);
/* A piece of utterance `utt`'s text, sent at once as a token (relay; the audio functions
 * above answer CS_ESTATE there). CS_ECLOSED once it was cut or ended. cs_stream_say_end
 * sends its last token. */
int cs_stream_say_text(cs_stream *s, uint32_t utt, const char *text, size_t len);
/* The provider plays the audio at `url` (`loop` times, 0: once). CS_ESTATE on a media
 * stream. */
int cs_stream_play(cs_stream *s, const char *url, unsigned loop);
/* The provider sends DTMF `digits` (0-9 * # and w for a pause). CS_ESTATE on a media
 * stream; -EINVAL for other characters. */
int cs_stream_send_digits(cs_stream *s, const char *digits);
/* What the agent hands over when it hangs up (relay: `end`'s data, passed by the
 * provider to what the call does next); copied. */
int cs_stream_handoff(cs_stream *s, const char *data);
/* The utterance of the greeting the provider said for the agent (the agent kind's
 * `welcome`, given to the provider when the call was answered): 0 if none. It is in
 * flight like any other, cut or heard. */
uint32_t cs_stream_greeting(const cs_stream *s);

/* ---- what the agent hears (from the layers that produce it) ---- */

/* The caller's speech started or stopped at `pos` (frames on the call's timeline);
 * onset may barge in. */
void cs_stream_speech(cs_stream *s, bool started, uint64_t pos);
void cs_stream_transcript(cs_stream *s, const cs_transcript *t);

/* ---- turns ----
 * The caller speaks; their speech ends (the detector's offset) and the answer's stages
 * are timed from where the speech ended: the offset detected, the final
 * transcript, the agent's reply begun (e.g. a language model's first token; the agent
 * notes it), its first audio, its first frame sent — then a `turn` event says each, and
 * voice-to-voice (the first frame's place minus the speech's end) goes to /metrics.
 * Stages noted while the caller still speaks count (a final may come before the offset
 * is declared), and so does an answer begun then. Agents that speak text only. */
enum cs_turn_stage { CS_TURN_DETECTED, CS_TURN_FINAL, CS_TURN_REPLY, CS_TURN_AUDIO };
void cs_agent_note(cs_agent *a, enum cs_turn_stage stage);

/* ---- agent services ---- */

/* An `agent` event of the agent's call: `json` is its detail, a JSON object (what the
 * agent heard, said, did or failed at): of its stream, or once closed, of its call. */
void cs_agent_event(cs_agent *a, const char *json);
/* The caller's words as the agent's service heard them, for the call's transcript (its
 * stored caller lines and listeners), when the agent hears the caller itself. */
void cs_agent_heard(cs_agent *a, const cs_transcript *t);
/* Calls ops->timer in `ms` (about: the pacing tick's resolution); 0 cancels. */
void cs_agent_timer(cs_agent *a, uint32_t ms);
/* After close: the agent has finished (see close). */
void cs_agent_closed(cs_agent *a);

/* ---- call control for agents (call/control.h: the gateway's, when it has one) ----
 * One request per stream at a time, sent once what the agent said has played (its
 * goodbye, or "putting you through"). Each records a `control` event, by "agent:KIND",
 * whether the agent is still there or not. */

/* How an agent's transfer ended: 0, or a negative code with `message` saying why (the
 * provider's refusal, no answer, the gateway stopping). Never inside the function that
 * asked, and never after the agent's close. */
typedef void (*cs_agent_control_cb)(cs_agent *a, int err, const char *message);

/* Whether the agent's call can be transferred and hung up at the provider. */
bool cs_agent_can_control(const cs_agent *a);
/* Once what the agent said has played, its call is transferred to `number` (E.164:
 * <Dial>), which ends its stream. `reason` (may be NULL) goes in the event. CS_ESTATE
 * without call control or a stream, or with a request of the agent's waiting; -EINVAL
 * for a number that is not E.164. */
int cs_agent_transfer(cs_agent *a, const char *number, const char *reason, cs_agent_control_cb cb);
/* The agent ends its call once what it said has played: hung up at the provider when
 * there is call control (so nothing after the stream in the call's TwiML runs), else — or
 * when the provider refuses — our side of the stream closes (cs_stream_hangup). A relay
 * stream ends with its `end` message, which hands the agent's data on. */
int cs_agent_end_call(cs_agent *a, const char *reason);

/* ---- the calls' side ---- */

/* Paces every talking stream and runs agent timers: on the loop's timer, or by hand. */
void cs_calls_tick(cs_calls *calls);
/* Starts the pacing timer on `loop` (without it, cs_calls_tick is called by hand). */
int cs_calls_talk_start(cs_calls *calls, void *uv_loop);

/* Used by call.c. */
void cs_talk_open(cs_stream *s, const cs_agent_ops *ops);
void cs_talk_audio(cs_stream *s, uint64_t pos, const uint8_t *ulaw, size_t n);
void cs_talk_dtmf(cs_stream *s, char digit);
void cs_talk_mark(cs_stream *s, const cs_mark *m, bool played);
void cs_talk_close(cs_stream *s);
void cs_talk_relay_begin(cs_stream *s);
void cs_talk_prompt(cs_stream *s, const char *text, bool last);
void cs_talk_interrupt(cs_stream *s, const char *heard, uint64_t heard_ms);
void cs_talk_free(cs_calls *calls);

#endif
