/* Reads a TwiML document into a flat list of elements for the simulator to follow
 * (flow.c). A small XML reader, not a general one: elements, attributes, text, comments,
 * the XML declaration, the five entities (plus &#N; and &#xH; for ASCII); it checks that
 * tags nest and reads only xml[0..n): what follows the body is not its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "net/form.h"
#include "provider/twiml.h"
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

static bool is_name(char c)
{
    return c && !is_space(c) && !strchr("<>/=\"'!?", c);
}

/* Stores v[0..n) unescaped (and trimmed with `trim`) in the document's storage. */
static const char *keep(sim_doc *d, const char *v, size_t n, bool trim)
{
    while (trim && n && is_space(*v)) v++, n--;
    while (trim && n && is_space(v[n - 1])) n--;
    char *out = d->text + d->used;
    int len = unescape(out, d->cap - d->used, v, n);
    if (len < 0) return NULL;
    d->used += (size_t)len + 1;
    return out;
}

static int fail(sim_doc *d, const char *why)
{
    d->error = why;
    return CS_EPARSE;
}

/* The end of the tag starting at p ('>' outside quotes), or NULL. */
static const char *tag_end(const char *p, const char *end)
{
    char quote = 0;
    for (; p < end; p++) {
        if (quote) {
            if (*p == quote) quote = 0;
        } else if (*p == '"' || *p == '\'') {
            quote = *p;
        } else if (*p == '>') {
            return p;
        }
    }
    return NULL;
}

/* The attributes of a start tag, [p, e). */
static int read_attrs(sim_doc *d, sim_node *node, const char *p, const char *e)
{
    node->attr = d->nattrs;
    for (;;) {
        while (p < e && is_space(*p)) p++;
        if (p == e) return 0;
        const char *an = p;
        while (p < e && is_name(*p)) p++;
        size_t an_len = (size_t)(p - an);
        while (p < e && is_space(*p)) p++;
        if (!an_len || p == e || *p != '=') return fail(d, "an attribute without a value");
        p++;
        while (p < e && is_space(*p)) p++;
        if (p == e || (*p != '"' && *p != '\'')) return fail(d, "an attribute value not quoted");
        const char *v = p + 1;
        const char *ve = memchr(v, *p, (size_t)(e - v));
        if (!ve) return fail(d, "an attribute value not closed");
        if (d->nattrs == SIM_ATTRS_MAX) return fail(d, "too many attributes");
        const char *name = keep(d, an, an_len, false), *value = keep(d, v, (size_t)(ve - v), false);
        if (!name || !value) return fail(d, "no room for the text");
        d->attrs[d->nattrs++] = (cs_kv){cs_str_of(name), cs_str_of(value)};
        node->nattrs++;
        p = ve + 1;
    }
}

void sim_doc_free(sim_doc *d)
{
    free(d->text);
    d->text = NULL;
    d->n = d->nattrs = d->used = d->cap = 0;
}

int sim_doc_parse(sim_doc *d, const char *xml, size_t n)
{
    sim_doc_free(d);
    d->error = NULL;
    if (n > CS_TWIML_MAX_BYTES) {
        d->error = "over 64 KB";
        return -EMSGSIZE;
    }
    d->cap = n + 1;
    d->text = malloc(d->cap);
    if (!d->text) return -ENOMEM;
    const char *end = xml + n;
    int open[SIM_DEPTH_MAX];
    unsigned depth = 0;
    bool root = false;
    for (const char *p = xml; p < end;) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt) break; /* text outside the root, or after a child: not read */
        if (starts(lt, end, "<!--")) {
            const char *c = memmem(lt + 4, (size_t)(end - lt - 4), "-->", 3);
            if (!c) return fail(d, "a comment not closed");
            p = c + 3;
            continue;
        }
        const char *gt = tag_end(lt, end);
        if (!gt) return fail(d, "a tag not closed");
        p = gt + 1;
        if (lt[1] == '?' || lt[1] == '!') continue; /* the declaration, a DOCTYPE */
        if (lt[1] == '/') {
            const char *name = lt + 2, *ne = name;
            while (ne < gt && is_name(*ne)) ne++;
            if (!depth) return fail(d, "a closing tag without its element");
            const char *want = d->nodes[open[depth - 1]].name;
            if (strlen(want) != (size_t)(ne - name) || memcmp(want, name, (size_t)(ne - name)))
                return fail(d, "a closing tag that does not match its element");
            depth--;
            continue;
        }
        const char *name = lt + 1, *ne = name;
        while (ne < gt && is_name(*ne)) ne++;
        if (ne == name) return fail(d, "a tag without a name");
        bool empty = gt[-1] == '/' && gt - 1 >= ne;
        if (!depth && root) return fail(d, "more than one root element");
        if (d->n == SIM_NODES_MAX) return fail(d, "more elements than the simulator reads");
        if (depth == SIM_DEPTH_MAX) return fail(d, "elements nested too deep");
        sim_node *node = &d->nodes[d->n];
        *node = (sim_node){.parent = depth ? open[depth - 1] : -1, .depth = depth};
        if (!(node->name = keep(d, name, (size_t)(ne - name), false))) return fail(d, "no room");
        if (!depth && strcmp(node->name, "Response") != 0)
            return fail(d, "the root is not <Response>");
        root = true;
        int rc = read_attrs(d, node, ne, empty ? gt - 1 : gt);
        if (rc < 0) return rc;
        const char *te = empty ? p : memchr(p, '<', (size_t)(end - p));
        if (!(node->text = keep(d, p, (size_t)((te ? te : end) - p), true)))
            return fail(d, "no room");
        if (!empty) open[depth++] = (int)d->n;
        d->n++;
    }
    if (depth) return fail(d, "an element not closed");
    if (!root) return fail(d, "no <Response>");
    return 0;
}

const char *sim_doc_attr(const sim_doc *d, size_t i, const char *name)
{
    const sim_node *node = &d->nodes[i];
    for (size_t k = 0; k < node->nattrs; k++)
        if (cs_str_eqz(d->attrs[node->attr + k].name, name))
            return d->attrs[node->attr + k].value.p;
    return NULL;
}

int sim_doc_child(const sim_doc *d, size_t parent, size_t after)
{
    for (size_t i = after + 1; i < d->n && d->nodes[i].depth > d->nodes[parent].depth; i++)
        if (d->nodes[i].parent == (int)parent) return (int)i;
    return -1;
}
