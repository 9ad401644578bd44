/* What every provider's REST half shares: the table of them, operation labels, and the
 * number format calls are placed to. */
#include "provider/rest.h"

#include <string.h>

static const cs_rest_ops *const all[] = {&cs_rest_twilio};

const cs_rest_ops *cs_rest_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof all / sizeof *all; i++)
        if (strcmp(name, all[i]->name) == 0) return all[i];
    return NULL;
}

const char *cs_rest_op_label(enum cs_rest_op op)
{
    static const char *const labels[] = {
#define CS_REST_OP_LABEL(name, label) label,
        CS_REST_OP_MAP(CS_REST_OP_LABEL)
#undef CS_REST_OP_LABEL
    };
    return (unsigned)op < CS_REST_OP_COUNT ? labels[op] : "?";
}

bool cs_e164_valid(const char *s)
{
    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++, n++)
        if (*p < '0' || *p > '9') return false;
    return n <= 15;
}
