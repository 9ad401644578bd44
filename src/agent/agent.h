/* Agents talk back into a two-way stream. The call layer owns each instance and drives
 * it through the ops table of call/talk.h; this folder holds the backends, chosen by
 * AGENT, and what they are given to work with. */
#ifndef CS_AGENT_H
#define CS_AGENT_H

#include <uv.h>

#include "call/talk.h"
#include "core/config.h"
#include "core/worker.h"
#include "net/fetch.h"
#include "stt/stt.h"
#include "tts/tts.h"

/* What agents work with, shared by all of them (the gateway's). */
struct cs_agent_env {
    const cs_config *cfg;
    uv_loop_t *loop;
    cs_mailbox *mb;
    const cs_tts_ops *tts_ops; /* NULL: TTS=none */
    cs_tts *tts;
    const cs_stt_ops *stt_ops; /* NULL: STT=none */
    cs_stt *stt;
    cs_fetch *fetch;           /* outbound HTTP */
    struct cs_llm *llm;        /* AGENT=llm's settings, tools and counters (agent/llm.h) */
};

extern const cs_agent_ops cs_agent_echo;
extern const cs_agent_ops cs_agent_llm;

/* By AGENT name; "none" gives NULL with 0 (listen only), an unknown name CS_ECONFIG. */
int cs_agent_find(const char *name, const cs_agent_ops **out);
/* "none, echo, llm" for messages. */
const char *cs_agent_names(void);
/* Every agent's setup (talk.h), before any call: 0, or the first error with its message in
 * `err`. cs_agents_teardown undoes it, once no instance is left. */
int cs_agents_setup(cs_agent_env *env, cs_buf *err);
void cs_agents_teardown(cs_agent_env *env);

#endif
