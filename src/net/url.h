/* Absolute URLs: scheme://[userinfo@]host[:port][/path][?query][#fragment] for the
 * schemes we speak (http, https, ws, wss, redis). */
#ifndef CS_URL_H
#define CS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_URL_MAX_HOST     255
#define CS_URL_MAX_USERINFO 511
#define CS_URL_MAX      4096

typedef struct cs_url {
    char scheme[8];                 /* lowercased: "http", "https", "ws", "wss", "redis" */
    char userinfo[CS_URL_MAX_USERINFO + 1]; /* as written (percent-encoded); "" if none */
    char host[CS_URL_MAX_HOST + 1]; /* lowercased; IPv6 without brackets */
    uint16_t port;                  /* explicit port, or the scheme's default */
    bool port_explicit;
    bool tls;               /* https or wss */
    char path[CS_URL_MAX];  /* "/" when empty; percent-encoding kept */
    char query[CS_URL_MAX]; /* without '?'; "" if none */
} cs_url;

/* Returns 0 or CS_EPARSE (unknown scheme, empty host, bad port, too long, spaces). */
int cs_url_parse(cs_url *u, const char *s);
/* The user and the password of `u`'s userinfo ("user[:password]"), percent-decoded (RFC
 * 3986 §3.2.1) into `user` and `pass`, `cap` bytes each. 0; CS_EPARSE: a malformed escape,
 * or one that decodes to NUL; CS_ELIMIT: longer than `cap` - 1. */
int cs_url_credentials(const cs_url *u, char *user, char *pass, size_t cap);
/* "host" or "host:port" (brackets for IPv6) as it belongs in a Host header: the port is
 * included only when explicit and not the default. `out` holds CS_URL_MAX_HOST + 9. */
void cs_url_host_header(const cs_url *u, char *out, size_t cap);

#endif
