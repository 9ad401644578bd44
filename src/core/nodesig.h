/* Requests between the nodes of a cluster, signed with the secret they share
 * (CLUSTER_SECRET): one header naming the node, the time, and an HMAC-SHA256 over the
 * method, path, time and node, so that a node's route (a recording it holds) cannot be
 * reached around the API's credentials, nor a signed request replayed later or elsewhere. */
#ifndef CS_NODESIG_H
#define CS_NODESIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define CS_NODESIG_HEADER   "X-Callstream-Node"
#define CS_NODESIG_SKEW_S   30 /* a signature this far from the receiver's clock is refused */
#define CS_NODESIG_NODE_MAX 63 /* a node id: [A-Za-z0-9._-] */
/* "<node> <unix s> <64 hex>" */
#define CS_NODESIG_VALUE_MAX (CS_NODESIG_NODE_MAX + 1 + 20 + 1 + 64)

/* The header's value for `method` `path` sent by `node` at `unix_s`, into `out` (at least
 * CS_NODESIG_VALUE_MAX + 1 bytes): 0, or CS_EPARSE for a node id that is not one. */
int cs_nodesig_sign(char *out, size_t cap, const char *secret, const char *method, cs_str path,
                    const char *node, int64_t unix_s);

/* Checks the header's `value` on a request `method` `path` received at `now_s`:
 * 0 and the sender in `node`; CS_EPARSE (not a signature: 401), -ETIMEDOUT (its time is
 * more than CS_NODESIG_SKEW_S away: 401), CS_EFORBIDDEN (signed with another secret, or
 * for another request: 403). The MAC is compared in constant time. */
int cs_nodesig_check(cs_str value, const char *secret, const char *method, cs_str path,
                     int64_t now_s, char node[CS_NODESIG_NODE_MAX + 1]);

#endif
