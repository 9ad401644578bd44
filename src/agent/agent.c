#include "agent/agent.h"

#include <string.h>

#include "core/err.h"

static const cs_agent_ops *const agents[] = {&cs_agent_echo};

int cs_agent_find(const char *name, const cs_agent_ops **out)
{
    *out = NULL;
    if (strcmp(name, "none") == 0 || name[0] == '\0') return 0;
    for (size_t i = 0; i < sizeof agents / sizeof *agents; i++) {
        if (strcmp(agents[i]->name, name) == 0) {
            *out = agents[i];
            return 0;
        }
    }
    return CS_ECONFIG;
}

const char *cs_agent_names(void)
{
    return "none, echo";
}
