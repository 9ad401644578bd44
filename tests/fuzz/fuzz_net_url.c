/* libFuzzer target for absolute URLs (net/url.c). The input, up to its first NUL, is a
 * URL: an accepted one must have its parts in range (a known scheme and its TLS flag, a
 * lowercase host without brackets, a port, a path starting with '/'), its Host header
 * must fit, and the URL rebuilt from its parts must parse to the same parts. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "net/url.h"

static bool same(const cs_url *a, const cs_url *b)
{
    return !strcmp(a->scheme, b->scheme) && !strcmp(a->host, b->host) && a->port == b->port &&
           a->tls == b->tls && !strcmp(a->path, b->path) && !strcmp(a->query, b->query);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cs_url u, v;
    char *s = fuzz_copy(data, size, 1);
    int rc = cs_url_parse(&u, s);
    fuzz_check(rc == 0 || rc == CS_EPARSE);
    if (rc == 0) {
        bool tls = !strcmp(u.scheme, "https") || !strcmp(u.scheme, "wss");
        fuzz_check(tls || !strcmp(u.scheme, "http") || !strcmp(u.scheme, "ws"));
        fuzz_check(u.tls == tls && u.port != 0);
        fuzz_check(u.port_explicit || u.port == (tls ? 443 : 80));
        size_t hn = strnlen(u.host, sizeof u.host);
        fuzz_check(hn > 0 && hn <= CS_URL_MAX_HOST && !strpbrk(u.host, "[]/?#@ "));
        for (size_t i = 0; i < hn; i++) fuzz_check(!isupper((unsigned char)u.host[i]));
        fuzz_check(u.path[0] == '/' && strnlen(u.path, sizeof u.path) < sizeof u.path);
        fuzz_check(strnlen(u.query, sizeof u.query) < sizeof u.query && !strchr(u.query, '#'));
        fuzz_check(!strpbrk(u.path, "?#"));

        char host[CS_URL_MAX_HOST + 9];
        cs_url_host_header(&u, host, sizeof host);
        fuzz_check(strlen(host) + 1 < sizeof host && strstr(host, u.host));

        /* rebuilt with an explicit port, it reads back the same */
        char again[3 * CS_URL_MAX];
        bool v6 = strchr(u.host, ':') != NULL;
        snprintf(again, sizeof again, v6 ? "%s://[%s]:%u%s%s%s" : "%s://%s:%u%s%s%s", u.scheme,
                 u.host, (unsigned)u.port, u.path, u.query[0] ? "?" : "", u.query);
        if (strlen(again) < CS_URL_MAX) {
            int rc2 = cs_url_parse(&v, again);
            if (rc2) fprintf(stderr, "rebuilt \"%s\" refused\n", again);
            fuzz_check(rc2 == 0 && same(&u, &v) && v.port_explicit);
        }
    }
    free(s);
    return 0;
}
