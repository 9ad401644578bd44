/* One-shot HTTP/1.1 requests from the loop, over a cs_conn (plain or TLS, names resolved
 * off the loop): webhooks we send, the simulator's calls. The answer is read to its
 * Content-Length, its chunked end or the connection's end, and handed over once. */
#ifndef CS_CLIENT_H
#define CS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"

#define CS_CLIENT_MAX_ANSWER (1u << 20) /* larger answer bodies fail the request */

/* The answer: `status` (0 on failure, with `err` < 0: no connection, TLS, timeout,
 * malformed answer), its body. On the loop; once per request. */
typedef void (*cs_client_fn)(void *data, int status, const char *body, size_t len, int err);

/* Sends `method` to an http:// or https:// `url` with `headers` (preformatted lines, or
 * NULL) and `body` (may be NULL). `timeout_ms` bounds the wait for each read. On an
 * immediate failure returns < 0 and `cb` is not called; otherwise 0, and `cb` will be. */
int cs_client_request(cs_net *net, const char *method, const char *url, const char *headers,
                      const void *body, size_t len, uint32_t timeout_ms, cs_client_fn cb,
                      void *data);

#endif
