/* Reads what the simulator needs from TwiML: the first <Stream>'s url and track, its
 * <Parameter>s, and whether it sits in <Connect> or <Start>; without a stream, the
 * <Gather>, <Hangup>, <Redirect> or <Dial> the call goes on with. A tolerant scanner, not a
 * general XML parser: it knows elements, attributes and the five entities (plus &#N; and
 * &#xH; for ASCII). It reads only xml[0..n): what follows the body is not its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "net/form.h"
#include "sim/sim_int.h"

/* Whether [p, end) starts with `lit`. */
static bool starts(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

/* The value of the character reference "&#N;" or "&#xH;" (ASCII only) at v[i..n), with
 * *last set to its ';'; 0 if there is none. */
static int char_ref(const char *v, size_t i, size_t n, size_t *last)
{
    if (i + 1 >= n || v[i + 1] != '#') return 0;
    size_t j = i + 2;
    bool hex = j < n && v[j] == 'x';
    j += hex;
    int code = 0;
    size_t first = j;
    for (; j < n && code < 128; j++) {
        int d = hex ? cs_url_hex(v[j]) : v[j] >= '0' && v[j] <= '9' ? v[j] - '0' : -1;
        if (d < 0) break;
        code = code * (hex ? 16 : 10) + d;
    }
    if (j == first || j == n || v[j] != ';' || code <= 0 || code >= 128) return 0;
    *last = j;
    return code;
}

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
            size_t last;
            int code = k == sizeof ents / sizeof *ents ? char_ref(v, i, n, &last) : 0;
            if (code > 0) {
                c = (char)code;
                i = last;
            }
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Finds attribute `name` in the tag text [tag, end) ("Stream url=\"…\" …"). Attributes
 * are walked in order, so text inside a value is never taken for an attribute. */
static bool attr(const char *tag, const char *end, const char *name, const char **v, size_t *n)
{
    size_t len = strlen(name);
    const char *p = tag;
    while (p < end && !is_space(*p)) p++; /* the element's name */
    for (;;) {
        while (p < end && is_space(*p)) p++;
        const char *an = p;
        while (p < end && *p != '=' && !is_space(*p)) p++;
        size_t an_len = (size_t)(p - an);
        while (p < end && is_space(*p)) p++;
        if (p == end || *p != '=') return false;
        p++;
        while (p < end && is_space(*p)) p++;
        if (p == end || (*p != '"' && *p != '\'')) return false;
        const char *s = p + 1;
        const char *e = memchr(s, *p, (size_t)(end - s));
        if (!e) return false;
        if (an_len == len && memcmp(an, name, len) == 0) {
            *v = s;
            *n = (size_t)(e - s);
            return true;
        }
        p = e + 1;
    }
}

/* Whether p starts element `name` ("<Name" then a space, '>' or '/'). */
static bool element(const char *p, const char *end, const char *name)
{
    size_t n = strlen(name);
    return (size_t)(end - p) > n + 1 && p[0] == '<' && memcmp(p + 1, name, n) == 0 &&
           (p[n + 1] == ' ' || p[n + 1] == '>' || p[n + 1] == '/');
}

/* The text of the element whose start tag ends at tag_end, up to the next tag. */
static int element_text(char *out, size_t cap, const char *tag_end, const char *end)
{
    if (tag_end[-1] == '/') return unescape(out, cap, "", 0);
    const char *s = tag_end + 1;
    const char *e = memchr(s, '<', (size_t)(end - s));
    return unescape(out, cap, s, (size_t)((e ? e : end) - s));
}

/* Without a stream: the <Gather> (its action) and what comes after it. */
static int read_then(sim_twiml *t, const char *p, const char *end, sim_then then)
{
    const char *tag_end = memchr(p, '>', (size_t)(end - p));
    if (!tag_end) return CS_EPARSE;
    t->then = then;
    if (then == SIM_THEN_HANGUP) return 0;
    int len = element_text(t->then_text, sizeof t->then_text, tag_end, end);
    return len > 0 ? 0 : CS_EPARSE; /* a Redirect or Dial says where */
}

int sim_twiml_parse(const char *xml, size_t n, sim_twiml *t)
{
    memset(t, 0, sizeof *t);
    const char *end = xml + n;
    const char *stream = NULL;
    for (const char *p = xml; p < end && !stream; p++) {
        if (*p != '<') continue;
        if (starts(p, end, "<Connect")) t->connect = true;
        if (element(p, end, "Stream")) stream = p;
        if (element(p, end, "Gather") && !t->gather) {
            const char *tag_end = memchr(p, '>', (size_t)(end - p));
            const char *v;
            size_t vn;
            if (!tag_end) return CS_EPARSE;
            t->gather = true;
            if (attr(p + 1, tag_end, "action", &v, &vn) &&
                unescape(t->gather_action, sizeof t->gather_action, v, vn) < 0)
                return CS_EPARSE;
        }
        if (element(p, end, "Hangup")) return read_then(t, p, end, SIM_THEN_HANGUP);
        if (element(p, end, "Redirect")) return read_then(t, p, end, SIM_THEN_REDIRECT);
        if (element(p, end, "Dial")) return read_then(t, p, end, SIM_THEN_DIAL);
    }
    /* A document that ends after a <Gather> hangs up. */
    if (!stream && t->gather) t->then = SIM_THEN_HANGUP;
    if (!stream) return t->gather ? 0 : CS_EPARSE;
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
    const char *close = memmem(p, (size_t)(end - p), "</Stream>", 9);
    const char *stop = tag_end[-1] == '/' ? tag_end : close ? close : end;
    while ((p = memmem(p, (size_t)(end - p), "<Parameter", 10)) && p < stop &&
           t->nparams < SIM_MAX_PARAMS) {
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

void sim_twiml_report(const sim_twiml *t, const char *call_sid, FILE *out)
{
    static const char *const then[] = {"the document ends", "<Hangup>", "<Redirect>", "<Dial>"};
    if (t->gather)
        fprintf(out, "sim: %s: <Gather action=\"%s\">, which hears nothing\n", call_sid,
                t->gather_action);
    fprintf(out, "sim: %s: no stream; then %s%s%s\n", call_sid, then[t->then],
            t->then_text[0] ? " " : "", t->then_text);
}
