/* Error codes. 0 is success, negative values are errors: -errno where one fits
 * (-EAGAIN, -EMSGSIZE, -EPROTO, ...), project codes from CS_ERR_MAP otherwise.
 * Incremental parsers return bytes consumed, 0 for "need more", < 0 for malformed. */
#ifndef CS_ERR_H
#define CS_ERR_H

#include <errno.h>

/* X(name, message): project codes CS_E<name>, numbered downward from CS_ERR_BASE - 1,
 * well below any -errno value. */
#define CS_ERR_MAP(X)                                                                              \
    X(PARSE, "malformed input")                                                                    \
    X(LIMIT, "limit exceeded")                                                                     \
    X(AUTH, "authentication failed")                                                               \
    X(FORBIDDEN, "forbidden")                                                                      \
    X(NOTFOUND, "not found")                                                                       \
    X(STATE, "invalid state")                                                                      \
    X(BACKEND, "backend failure")                                                                  \
    X(CLOSED, "closed")                                                                            \
    X(FULL, "queue full")                                                                          \
    X(TLS, "TLS failure")                                                                          \
    X(CONFIG, "bad configuration")

#define CS_ERR_BASE (-4000)

enum {
#define CS_ERR_IDX(name, msg) CS_ERR_IDX_##name,
    CS_ERR_MAP(CS_ERR_IDX)
#undef CS_ERR_IDX
        CS_ERR_COUNT
};

enum {
#define CS_ERR_ENUM(name, msg) CS_E##name = CS_ERR_BASE - 1 - CS_ERR_IDX_##name,
    CS_ERR_MAP(CS_ERR_ENUM)
#undef CS_ERR_ENUM
};

/* Message for any error code: project codes, -errno values and libuv codes. */
const char *cs_strerror(int err);

#endif
