/* Agents talk back into a two-way stream. The call layer owns each instance and drives
 * it through the ops table of call/talk.h; this folder holds the backends, chosen by
 * AGENT, and what they are given to work with. */
#ifndef CS_AGENT_H
#define CS_AGENT_H

#include <uv.h>

#include "call/talk.h"
#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "core/worker.h"
#include "net/fetch.h"
#include "stt/stt.h"
#include "tts/tts.h"

#define CS_AGENTS_MAX           8    /* kinds in the registry */
#define CS_AGENT_EVENT_TEXT_MAX 2048 /* bytes of a text quoted in an agent event */

/* TTS_FALLBACK: the local engine that speaks what a cloud voice failed to (the rest of
 * that utterance), and how often it did. */
typedef struct cs_tts_fallback {
    const cs_tts_ops *ops;
    cs_tts *tts;
    uint64_t utterances; /* utterances it took over */
} cs_tts_fallback;

/* What agents work with, shared by all of them (the gateway's). */
struct cs_agent_env {
    const cs_config *cfg;
    uv_loop_t *loop;
    cs_mailbox *mb;
    const cs_tts_ops *tts_ops; /* NULL: TTS=none */
    cs_tts *tts;
    cs_tts_fallback *tts_fallback; /* NULL: none (a local TTS, or TTS_FALLBACK=none) */
    const cs_stt_ops *stt_ops; /* NULL: STT=none */
    cs_stt *stt;
    cs_fetch *fetch;           /* outbound HTTP */
    bool control;              /* call control is on: cs_agent_transfer and cs_agent_end_call
                                  reach the provider */
    void *state[CS_AGENTS_MAX]; /* each kind's, from its setup (cs_agent_state) */
};

extern const cs_agent_ops cs_agent_echo;
extern const cs_agent_ops cs_agent_ivr;
extern const cs_agent_ops cs_agent_llm;
extern const cs_agent_ops cs_agent_realtime;

/* By AGENT name; "none" gives NULL with 0 (listen only), an unknown name CS_ECONFIG. */
int cs_agent_find(const char *name, const cs_agent_ops **out);
/* NULL when calls can get `ops` on this gateway (its setup kept what they need); else
 * the settings it needs (ops->needs), for messages. */
const char *cs_agent_unready(const cs_agent_env *env, const cs_agent_ops *ops);
/* "none, echo, ivr, llm, openai-realtime" for messages. */
const char *cs_agent_names(void);
/* Whether STREAM_MODE has the provider say the agents' text (relay, gather): their
 * streams carry text, and TTS may be none. */
bool cs_agents_text_mode(const cs_config *cfg);
/* ---- what the agents share ---- */

/* Logs with an agent's call context `ctx` (its call and stream SIDs). */
#define CS_AGENT_LOG(ctx, level, ...)                                                              \
    do {                                                                                           \
        const cs_log_ctx *prev_ = cs_log_set_ctx(ctx);                                             \
        cs_log(level, __VA_ARGS__);                                                                \
        cs_log_set_ctx(prev_);                                                                     \
    } while (0)
/* `key`: `s` (n bytes) in an event's detail, cut at CS_AGENT_EVENT_TEXT_MAX bytes, between
 * characters. */
void cs_agent_event_text(cs_json *j, const char *key, const char *s, size_t n);

/* ---- the kinds' shared state ---- */

/* Runs every kind's setup (start-up; may block). 0, or its error with `err` saying why. */
int cs_agents_setup(cs_agent_env *env, cs_buf *err);
/* A call is being answered and its stream will get `ops` (may be NULL): see
 * cs_agent_ops.prepare. */
void cs_agents_prepare(const cs_agent_env *env, const cs_agent_ops *ops, const char *call_sid);
/* Shutdown: every kind lets go of what it prepared. */
void cs_agents_stop(cs_agent_env *env);
/* Every kind's cleanup, once no instance is left. Idempotent. */
void cs_agents_cleanup(cs_agent_env *env);
/* Every kind's counters for /metrics. */
void cs_agents_metrics(const cs_agent_env *env, cs_buf *out);
/* What the setup of `ops` kept (NULL if none). */
void *cs_agent_state(const cs_agent_env *env, const cs_agent_ops *ops);

#endif
