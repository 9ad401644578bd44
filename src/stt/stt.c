#include "stt/stt.h"

#include <string.h>

#include "core/err.h"

static const cs_stt_ops *const engines[] = {&cs_stt_pocketsphinx, &cs_stt_deepgram};

int cs_stt_find(const char *name, const cs_stt_ops **out)
{
    *out = NULL;
    if (strcmp(name, "none") == 0 || name[0] == '\0') return 0;
    for (size_t i = 0; i < sizeof engines / sizeof *engines; i++) {
        if (strcmp(engines[i]->name, name) == 0) {
            *out = engines[i];
            return 0;
        }
    }
    return CS_ECONFIG;
}
