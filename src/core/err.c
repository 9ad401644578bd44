#include "core/err.h"

#include <string.h>

static const char *const messages[CS_ERR_COUNT] = {
#define CS_ERR_MSG(name, msg) [CS_ERR_IDX_##name] = msg,
    CS_ERR_MAP(CS_ERR_MSG)
#undef CS_ERR_MSG
};

const char *cs_strerror(int err)
{
    if (err >= 0) return "success";
    if (err <= CS_ERR_BASE - 1 && err > CS_ERR_BASE - 1 - CS_ERR_COUNT)
        return messages[CS_ERR_BASE - 1 - err];
    /* libuv's codes on Linux are -errno, so strerror covers them too. */
    return strerror(-err);
}
