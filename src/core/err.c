#include "core/err.h"

#include <string.h>
#include <uv.h>

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
    const char *known = strerrordesc_np(-err);
    if (known) return known;
    /* libuv's codes are -errno on Linux, except a few of its own (UV_EOF, UV_EAI_*). */
    switch (err) {
#define CS_UV_MSG(name, msg)                                                                       \
    case UV_##name:                                                                                \
        return msg;
        UV_ERRNO_MAP(CS_UV_MSG)
#undef CS_UV_MSG
    }
    return strerror(-err);
}
