#include "agent/agent.h"

#include <string.h>

#include "core/err.h"

static const cs_agent_ops *const agents[] = {&cs_agent_echo, &cs_agent_ivr, &cs_agent_llm,
                                              &cs_agent_realtime};
#define NAGENTS (sizeof agents / sizeof *agents)
_Static_assert(NAGENTS <= CS_AGENTS_MAX, "CS_AGENTS_MAX is too small");

int cs_agent_find(const char *name, const cs_agent_ops **out)
{
    *out = NULL;
    if (strcmp(name, "none") == 0 || name[0] == '\0') return 0;
    for (size_t i = 0; i < NAGENTS; i++) {
        if (strcmp(agents[i]->name, name) == 0) {
            *out = agents[i];
            return 0;
        }
    }
    return CS_ECONFIG;
}

bool cs_agents_text_mode(const cs_config *cfg)
{
    return strcmp(cfg->stream_mode, "relay") == 0 || strcmp(cfg->stream_mode, "gather") == 0;
}

const char *cs_agent_names(void)
{
    return "none, echo, ivr, llm, openai-realtime";
}

int cs_agents_setup(cs_agent_env *env, cs_buf *err)
{
    for (size_t i = 0; i < NAGENTS; i++) {
        int rc = agents[i]->setup ? agents[i]->setup(env, &env->state[i], err) : 0;
        if (rc < 0) return rc;
    }
    return 0;
}

void cs_agents_prepare(const cs_agent_env *env, const cs_agent_ops *ops, const char *call_sid)
{
    void *state = ops ? cs_agent_state(env, ops) : NULL;
    if (state && ops->prepare) ops->prepare(state, env, call_sid);
}

void cs_agents_stop(cs_agent_env *env)
{
    for (size_t i = 0; i < NAGENTS; i++)
        if (agents[i]->stop && env->state[i]) agents[i]->stop(env->state[i]);
}

void cs_agents_cleanup(cs_agent_env *env)
{
    for (size_t i = 0; i < NAGENTS; i++) {
        if (agents[i]->cleanup && env->state[i]) agents[i]->cleanup(env->state[i]);
        env->state[i] = NULL;
    }
}

void cs_agents_metrics(const cs_agent_env *env, cs_buf *out)
{
    for (size_t i = 0; i < NAGENTS; i++)
        if (agents[i]->metrics) agents[i]->metrics(env->state[i], out);
}

void cs_agent_event_text(cs_json *j, const char *key, const char *s, size_t n)
{
    if (n > CS_AGENT_EVENT_TEXT_MAX) {
        n = CS_AGENT_EVENT_TEXT_MAX;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80) n--; /* not inside a character */
    }
    cs_json_key(j, key);
    cs_json_strn(j, s, n);
}

const char *cs_agent_unready(const cs_agent_env *env, const cs_agent_ops *ops)
{
    if (!ops || !ops->setup || cs_agent_state(env, ops)) return NULL;
    return ops->needs ? ops->needs : "its settings";
}

void *cs_agent_state(const cs_agent_env *env, const cs_agent_ops *ops)
{
    for (size_t i = 0; i < NAGENTS; i++)
        if (agents[i] == ops) return env->state[i];
    return NULL;
}
