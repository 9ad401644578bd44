/* Absolute URLs for the endpoints we connect to or advertise (PUBLIC_URL, cloud APIs,
 * Stream URLs in TwiML, REDIS_URL). Not a general URI library: four schemes, no relative
 * references, no normalisation of the path beyond an empty one becoming "/". */
#include "net/url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/str.h"
#include "net/form.h"

static const struct {
    const char *name;
    uint16_t port;
    bool tls;
} schemes[] = {
    {"http", 80, false},
    {"https", 443, true},
    {"ws", 80, false},
    {"wss", 443, true},
    {"redis", 6379, false},
};

/* RFC 3986 reg-name without pct-encoded: unreserved / sub-delims. */
static bool reg_name_char(char c)
{
    return isalnum((unsigned char)c) || strchr("-._~!$&'()*+,;=", c);
}

static bool ipv6_char(char c)
{
    return c == ':' || c == '.' || isxdigit((unsigned char)c);
}

static uint16_t default_port(const char *scheme)
{
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (strcmp(scheme, schemes[i].name) == 0) return schemes[i].port;
    return 0;
}

static int parse_scheme(cs_url *u, cs_str s)
{
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++) {
        if (!cs_str_ieq(s, schemes[i].name)) continue;
        strcpy(u->scheme, schemes[i].name);
        u->port = schemes[i].port;
        u->tls = schemes[i].tls;
        return 0;
    }
    return CS_EPARSE;
}

/* host [":" port] from the authority, userinfo already removed. */
static int parse_host_port(cs_url *u, const char *a, size_t n)
{
    const char *host = a, *rest;
    size_t host_len;
    if (n && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close) return CS_EPARSE;
        host = a + 1;
        host_len = (size_t)(close - host);
        if (!memchr(host, ':', host_len)) return CS_EPARSE;
        for (size_t i = 0; i < host_len; i++)
            if (!ipv6_char(host[i])) return CS_EPARSE;
        rest = close + 1;
    } else {
        const char *colon = memchr(a, ':', n);
        host_len = colon ? (size_t)(colon - a) : n;
        for (size_t i = 0; i < host_len; i++)
            if (!reg_name_char(host[i])) return CS_EPARSE;
        rest = a + host_len;
    }
    if (host_len == 0 || host_len > CS_URL_MAX_HOST) return CS_EPARSE;
    for (size_t i = 0; i < host_len; i++) u->host[i] = (char)tolower((unsigned char)host[i]);
    u->host[host_len] = '\0';

    size_t rest_len = n - (size_t)(rest - a);
    if (rest_len == 0) return 0;
    if (rest[0] != ':') return CS_EPARSE;
    /* RFC 3986 §3.2.3: an empty port means the default */
    if (rest_len == 1) return 0;
    uint64_t port;
    if (cs_str_to_u64((cs_str){rest + 1, rest_len - 1}, 65535, &port) != 0 || port == 0)
        return CS_EPARSE;
    u->port = (uint16_t)port;
    u->port_explicit = true;
    return 0;
}

int cs_url_parse(cs_url *u, const char *s)
{
    memset(u, 0, sizeof *u);
    size_t n = strnlen(s, CS_URL_MAX);
    if (n == CS_URL_MAX) return CS_EPARSE;
    for (size_t i = 0; i < n; i++) /* visible ASCII only */
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) return CS_EPARSE;

    const char *sep = strstr(s, "://");
    if (!sep || parse_scheme(u, (cs_str){s, (size_t)(sep - s)}) != 0) return CS_EPARSE;

    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    const char *at = memrchr(a, '@', alen);
    if (at) { /* for Redis's AUTH; HTTP's credentials travel in headers */
        size_t ulen = (size_t)(at - a);
        if (ulen > CS_URL_MAX_USERINFO) return CS_EPARSE;
        memcpy(u->userinfo, a, ulen);
        alen -= ulen + 1;
        a = at + 1;
    }
    if (parse_host_port(u, a, alen) != 0) return CS_EPARSE;

    const char *p = a + alen;
    size_t plen = strcspn(p, "?#");
    if (plen == 0)
        strcpy(u->path, "/");
    else
        memcpy(u->path, p, plen);
    if (p[plen] == '?') {
        const char *q = p + plen + 1;
        memcpy(u->query, q, strcspn(q, "#"));
    }
    return 0;
}

/* s[0..n) percent-decoded into out (`cap` bytes). */
static int decode_part(char *out, size_t cap, const char *s, size_t n)
{
    char plain[CS_URL_MAX_USERINFO + 1]; /* n is at most CS_URL_MAX_USERINFO */
    int m = cs_url_decode(plain, s, n, false);
    if (m < 0 || memchr(plain, '\0', (size_t)m)) return CS_EPARSE;
    if ((size_t)m >= cap) return CS_ELIMIT;
    memcpy(out, plain, (size_t)m + 1);
    return 0;
}

int cs_url_credentials(const cs_url *u, char *user, char *pass, size_t cap)
{
    if (cap == 0) return CS_ELIMIT;
    const char *colon = strchr(u->userinfo, ':');
    size_t n = colon ? (size_t)(colon - u->userinfo) : strlen(u->userinfo);
    int rc = decode_part(user, cap, u->userinfo, n);
    if (rc == 0) rc = decode_part(pass, cap, colon ? colon + 1 : "", colon ? strlen(colon + 1) : 0);
    if (rc < 0) user[0] = pass[0] = '\0';
    return rc;
}

void cs_url_host_header(const cs_url *u, char *out, size_t cap)
{
    bool v6 = strchr(u->host, ':') != NULL;
    if (u->port_explicit && u->port != default_port(u->scheme))
        snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", u->host, (unsigned)u->port);
    else
        snprintf(out, cap, v6 ? "[%s]" : "%s", u->host);
}
