/* Absolute URLs: scheme://[userinfo@]host[:port][/path][?query][#fragment] for the
 * schemes we speak (http, https, ws, wss). */
#ifndef CS_URL_H
#define CS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_URL_MAX_HOST 255
#define CS_URL_MAX      4096

typedef struct cs_url {
    char scheme[8];                 /* lowercased: "http", "https", "ws", "wss" */
    char host[CS_URL_MAX_HOST + 1]; /* lowercased; IPv6 without brackets */
    uint16_t port;                  /* explicit port, or the scheme's default */
    bool port_explicit;
    bool tls;               /* https or wss */
    char path[CS_URL_MAX];  /* "/" when empty; percent-encoding kept */
    char query[CS_URL_MAX]; /* without '?'; "" if none */
} cs_url;

/* Returns 0 or CS_EPARSE (unknown scheme, empty host, bad port, too long, spaces). */
int cs_url_parse(cs_url *u, const char *s);
/* "host" or "host:port" (brackets for IPv6) as it belongs in a Host header: the port is
 * included only when explicit and not the default. `out` holds CS_URL_MAX_HOST + 9. */
void cs_url_host_header(const cs_url *u, char *out, size_t cap);

#endif
