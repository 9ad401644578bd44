/* Agents talk back into a two-way stream. The call layer owns each instance and drives
 * it through the ops table of call/talk.h; this folder holds the backends, chosen by
 * AGENT, and what they are given to work with. */
#ifndef CS_AGENT_H
#define CS_AGENT_H

#include "call/talk.h"
#include "core/config.h"

/* What agents work with: settings now; engines and clients as agents need them. */
struct cs_agent_env {
    const cs_config *cfg;
};

extern const cs_agent_ops cs_agent_echo;

/* By AGENT name; "none" gives NULL with 0 (listen only), an unknown name CS_ECONFIG. */
int cs_agent_find(const char *name, const cs_agent_ops **out);
/* "none, echo" for messages. */
const char *cs_agent_names(void);

#endif
