/* Provider registry and the parts of the provider contract shared by every backend:
 * labels for refused messages and the per-thread parse scratch. */
#include "provider/provider.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "provider/twilio.h"

static const char *const bad_labels[CS_BAD_COUNT] = {
#define CS_BAD_LABEL(name, label) [CS_BAD_##name] = label,
    CS_BAD_MAP(CS_BAD_LABEL)
#undef CS_BAD_LABEL
};

const char *cs_bad_label(enum cs_bad kind)
{
    return (unsigned)kind < CS_BAD_COUNT ? bad_labels[kind] : "unknown";
}

static const cs_provider_ops *const providers[] = {&cs_provider_twilio, &cs_provider_binary};

const cs_provider_ops *cs_provider_find(const char *name)
{
    for (size_t i = 0; i < sizeof providers / sizeof *providers; i++)
        if (strcmp(providers[i]->name, name) == 0) return providers[i];
    return NULL;
}

bool cs_call_sid_valid(cs_str sid)
{
    return cs_twilio_sid_valid(sid, "CA") || cs_twilio_sid_valid(sid, CS_BINARY_SID_PREFIX);
}

void cs_pscratch_init(cs_pscratch *s)
{
    s->tree = NULL;
}

void cs_pscratch_free(cs_pscratch *s)
{
    cJSON_Delete(s->tree);
    s->tree = NULL;
}
