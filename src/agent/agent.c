#include "agent/agent.h"

#include <string.h>

#include "core/err.h"

static const cs_agent_ops *const agents[] = {&cs_agent_echo, &cs_agent_llm};
#define NAGENTS (sizeof agents / sizeof *agents)

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

const char *cs_agent_names(void)
{
    return "none, echo, llm";
}

int cs_agents_setup(cs_agent_env *env, cs_buf *err)
{
    int rc = 0;
    for (size_t i = 0; i < NAGENTS && rc == 0; i++)
        if (agents[i]->setup) rc = agents[i]->setup(env, err);
    return rc;
}

void cs_agents_teardown(cs_agent_env *env)
{
    for (size_t i = 0; i < NAGENTS; i++)
        if (agents[i]->teardown) agents[i]->teardown(env);
}
