/* Reads what the simulator needs from TwiML: the first <Stream>'s url and track, its
 * <Parameter>s, and whether it sits in <Connect> or <Start>. A tolerant scanner, not a
 * general XML parser: it knows elements, attributes and the five entities (plus &#N;). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sim/sim_int.h"

/* Unescapes v[0..n) into out; returns its length or -1 if it does not fit. */
static int unescape(char *out, size_t cap, const char *v, size_t n)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '&') {
            size_t k = 0;
            for (; k < sizeof ents / sizeof *ents; k++) {
                size_t m = strlen(ents[k].name);
                if (i + 1 + m <= n && memcmp(v + i + 1, ents[k].name, m) == 0) {
                    c = ents[k].c;
                    i += m;
                    break;
                }
            }
            if (k == sizeof ents / sizeof *ents && i + 2 < n && v[i + 1] == '#') {
                char *end;
                long code = strtol(v + i + 2, &end, v[i + 2] == 'x' ? 0 : 10);
                if (*end == ';' && code > 0 && code < 128) {
                    c = (char)code;
                    i = (size_t)(end - v);
                }
            }
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

/* Finds attribute `name` inside the tag text [tag, end). */
static bool attr(const char *tag, const char *end, const char *name, const char **v, size_t *n)
{
    size_t len = strlen(name);
    for (const char *p = tag; p + len + 2 < end; p++) {
        if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') && memcmp(p, name, len) == 0 &&
            p[len] == '=' && (p[len + 1] == '"' || p[len + 1] == '\'')) {
            char q = p[len + 1];
            const char *s = p + len + 2;
            const char *e = memchr(s, q, (size_t)(end - s));
            if (!e) return false;
            *v = s;
            *n = (size_t)(e - s);
            return true;
        }
    }
    return false;
}

int sim_twiml_parse(const char *xml, size_t n, sim_twiml *t)
{
    memset(t, 0, sizeof *t);
    const char *end = xml + n;
    const char *stream = NULL;
    for (const char *p = xml; p < end; p++) {
        if (*p != '<') continue;
        if (strncmp(p, "<Connect", 8) == 0) t->connect = true;
        if (strncmp(p, "<Stream", 7) == 0 && (p[7] == ' ' || p[7] == '>' || p[7] == '/')) {
            stream = p;
            break;
        }
    }
    if (!stream) return CS_EPARSE;
    const char *tag_end = memchr(stream, '>', (size_t)(end - stream));
    if (!tag_end) return CS_EPARSE;
    const char *v;
    size_t vn;
    if (!attr(stream + 1, tag_end, "url", &v, &vn) ||
        unescape(t->stream_url, sizeof t->stream_url, v, vn) < 0)
        return CS_EPARSE;
    if (attr(stream + 1, tag_end, "track", &v, &vn))
        t->both_tracks = vn == 11 && !memcmp(v, "both_tracks", 11);

    size_t used = 0;
    const char *p = tag_end;
    const char *close = strstr(p, "</Stream>");
    const char *stop = close ? close : (tag_end[-1] == '/' ? tag_end : end);
    while ((p = strstr(p, "<Parameter")) && p < stop && t->nparams < SIM_MAX_PARAMS) {
        const char *pe = memchr(p, '>', (size_t)(end - p));
        if (!pe) return CS_EPARSE;
        const char *nv, *vv;
        size_t nn, vl;
        if (attr(p + 1, pe, "name", &nv, &nn) && attr(p + 1, pe, "value", &vv, &vl)) {
            char *name = t->storage + used;
            int a = unescape(name, sizeof t->storage - used, nv, nn);
            if (a < 0) return CS_EPARSE;
            used += (size_t)a + 1;
            char *value = t->storage + used;
            int b = unescape(value, sizeof t->storage - used, vv, vl);
            if (b < 0) return CS_EPARSE;
            used += (size_t)b + 1;
            t->params[t->nparams++] = (cs_kv){{name, (size_t)a}, {value, (size_t)b}};
        }
        p = pe;
    }
    return 0;
}
