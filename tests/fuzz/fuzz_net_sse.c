/* libFuzzer target for the Server-Sent Events parser (net/sse.c). The first byte sets the
 * bound on one event (8 to 263 bytes), the second seeds where the stream is cut; the rest
 * is the stream. What must hold: the events and the result equal those of a plain
 * reference reader written from the spec (lines first, then fields, the same bound rule);
 * fed whole or in pieces, the same; each event within its bound, without CR in its data
 * nor line ends in its type and id; and the events, written back as a stream, read back
 * the same. */
#include "core/buf.h"
#include "core/err.h"
#include "fuzz.h"
#include "net/sse.h"

#define MAX_EVENTS 512

typedef struct ev {
    char *type, *data, *id;
    size_t type_len, data_len, id_len;
} ev;

typedef struct evs {
    ev e[MAX_EVENTS];
    size_t n;
    size_t max; /* the parser's bound, for the invariants */
} evs;

static char *copy_of(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void add(evs *out, const char *type, size_t tn, const char *data, size_t dn,
                const char *id, size_t in)
{
    if (out->n == MAX_EVENTS) return;
    out->e[out->n++] = (ev){copy_of(type, tn), copy_of(data, dn), copy_of(id, in), tn, dn, in};
}

static void clear(evs *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->e[i].type);
        free(v->e[i].data);
        free(v->e[i].id);
    }
    v->n = 0;
}

static bool same(const evs *a, const evs *b)
{
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++) {
        const ev *x = &a->e[i], *y = &b->e[i];
        if (x->type_len != y->type_len || x->data_len != y->data_len || x->id_len != y->id_len ||
            memcmp(x->type, y->type, x->type_len) || memcmp(x->data, y->data, x->data_len) ||
            memcmp(x->id, y->id, x->id_len))
            return false;
    }
    return true;
}

static int collect(void *data, const cs_sse_event *e)
{
    evs *out = data;
    fuzz_check(e->data[e->data_len] == '\0');
    fuzz_check(e->data_len <= out->max && e->type_len <= out->max && e->id_len <= out->max);
    fuzz_check(!memchr(e->data, '\r', e->data_len));
    fuzz_check(e->type_len > 0 && !memchr(e->type, '\r', e->type_len) &&
               !memchr(e->type, '\n', e->type_len));
    fuzz_check(!memchr(e->id, '\r', e->id_len) && !memchr(e->id, '\n', e->id_len) &&
               !memchr(e->id, '\0', e->id_len));
    add(out, e->type, e->type_len, e->data, e->data_len, e->id, e->id_len);
    return 0;
}

/* ---- the reference: the spec's steps, one line at a time, nothing incremental ---- */

typedef struct ref {
    char *data, *type, *id;
    size_t dn, tn, in;
} ref;

static void set(char **b, size_t *n, const char *v, size_t vn)
{
    free(*b);
    *b = copy_of(v, vn);
    *n = vn;
}

static void ref_line(ref *r, const char *s, size_t n, evs *out)
{
    if (n == 0) {
        if (r->dn) add(out, r->tn ? r->type : "message", r->tn ? r->tn : 7, r->data, r->dn - 1,
                       r->id ? r->id : "", r->in);
        set(&r->data, &r->dn, "", 0);
        set(&r->type, &r->tn, "", 0);
        return;
    }
    if (s[0] == ':') return;
    size_t k = 0;
    while (k < n && s[k] != ':') k++;
    const char *v = k < n ? s + k + 1 : s + n;
    size_t vn = k < n ? n - k - 1 : 0;
    if (vn && v[0] == ' ') v++, vn--;
    if (k == 4 && !memcmp(s, "data", 4)) {
        char *d = malloc(r->dn + vn + 2);
        if (!d) abort();
        if (r->dn) memcpy(d, r->data, r->dn);
        if (vn) memcpy(d + r->dn, v, vn);
        d[r->dn + vn] = '\n';
        free(r->data);
        r->data = d;
        r->dn += vn + 1;
    } else if (k == 5 && !memcmp(s, "event", 5)) {
        set(&r->type, &r->tn, v, vn);
    } else if (k == 2 && !memcmp(s, "id", 2) && !memchr(v, '\0', vn)) {
        set(&r->id, &r->in, v, vn);
    }
}

/* The events of the stream; CS_ELIMIT where a line would bring what one event holds (its
 * data, type and id, plus the line) over `max`. */
static int ref_parse(const char *s, size_t n, size_t max, evs *out)
{
    ref r = {0};
    int rc = 0;
    size_t i = 0;
    if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) i = 3;
    size_t bom = i;
    while (rc == 0) {
        size_t j = i;
        while (j < n && s[j] != '\r' && s[j] != '\n') j++;
        size_t raw = j - i + (i == bom ? bom : 0); /* the BOM is part of the first line */
        if (r.dn + r.tn + r.in + raw > max) rc = CS_ELIMIT;
        if (rc || j == n) break; /* an unfinished last line is not read */
        ref_line(&r, s + i, j - i, out);
        i = j + 1 + (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n');
    }
    free(r.data);
    free(r.type);
    free(r.id);
    return rc;
}

/* ---- the parser, whole or in pieces ---- */

static int parse(const char *s, size_t n, size_t max, uint32_t seed, evs *out)
{
    cs_sse p;
    cs_sse_init(&p, max);
    out->max = max;
    ssize_t rc = 0;
    size_t at = 0;
    while (at < n && rc >= 0) {
        size_t k = n - at;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            k = (seed >> 16) % 9; /* 0 to 8 bytes: empty feeds too */
            if (k > n - at) k = n - at;
        }
        rc = cs_sse_feed(&p, s + at, k, collect, out);
        fuzz_check(rc < 0 || (size_t)rc == k);
        at += k;
    }
    cs_sse_free(&p);
    fuzz_check(rc >= 0 || rc == CS_ELIMIT);
    return rc < 0 ? (int)rc : 0;
}

/* The events as a stream of their own. */
static void write_back(const evs *v, cs_buf *out)
{
    for (size_t i = 0; i < v->n; i++) {
        const ev *e = &v->e[i];
        cs_buf_puts(out, "event: ");
        cs_buf_append(out, e->type, e->type_len);
        cs_buf_puts(out, "\nid: ");
        cs_buf_append(out, e->id, e->id_len);
        cs_buf_puts(out, "\ndata: ");
        for (size_t k = 0; k < e->data_len; k++) {
            if (e->data[k] == '\n')
                cs_buf_puts(out, "\ndata: ");
            else
                cs_buf_putc(out, e->data[k]);
        }
        cs_buf_puts(out, "\n\n");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static evs want, whole, pieces, again;
    if (size < 2) return 0;
    size_t max = 8 + data[0];
    uint32_t seed = data[1] | 1u;
    char *s = fuzz_copy(data + 2, size - 2, 0);
    size_t n = size - 2;

    int rc_ref = ref_parse(s, n, max, &want);
    int rc = parse(s, n, max, 0, &whole);
    fuzz_check(rc == rc_ref && same(&whole, &want));
    rc = parse(s, n, max, seed, &pieces);
    fuzz_check(rc == rc_ref && same(&pieces, &want));

    if (rc_ref == 0 && want.n < MAX_EVENTS) {
        cs_buf out = CS_BUF_INIT(1u << 24);
        write_back(&want, &out);
        fuzz_check(parse(out.data ? out.data : "", out.len, 1u << 24, 0, &again) == 0);
        fuzz_check(same(&again, &want));
        cs_buf_free(&out);
    }
    clear(&want);
    clear(&whole);
    clear(&pieces);
    clear(&again);
    free(s);
    return 0;
}
