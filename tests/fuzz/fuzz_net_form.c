/* libFuzzer target for application/x-www-form-urlencoded bodies (net/form.c). The input
 * is a body: the parser must accept exactly what a plain reference decoder accepts, with
 * the same pairs; the pairs written back by cs_form_write must parse to the same pairs;
 * and percent-decoding with and without '+' as space must differ only there. */
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "net/form.h"

/* The reference: one byte at a time, no cleverness. Decodes s[0..n) into out (room for
 * n + 1); -1 on a bad escape or a decoded NUL. */
static long ref_decode(char *out, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || cs_url_hex(s[i + 1]) < 0 || cs_url_hex(s[i + 2]) < 0) return -1;
            c = cs_url_hex(s[i + 1]) * 16 + cs_url_hex(s[i + 2]);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0) return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Checks `f` against the reference pairs of `body`; returns whether the reference
 * accepts the body. */
static bool ref_agrees(const cs_form *f, const char *body, size_t len, size_t *npairs)
{
    char *name = fuzz_copy(NULL, 0, len + 1), *value = fuzz_copy(NULL, 0, len + 1);
    size_t k = 0;
    bool ok = true;
    for (size_t i = 0; i <= len && ok;) {
        size_t e = i;
        while (e < len && body[e] != '&') e++;
        if (e > i) {
            size_t eq = i;
            while (eq < e && body[eq] != '=') eq++;
            ok = ref_decode(name, body + i, eq - i) >= 0 &&
                 ref_decode(value, eq < e ? body + eq + 1 : "", eq < e ? e - eq - 1 : 0) >= 0;
            if (ok && f) {
                fuzz_check(k < f->n && strcmp(f->pairs[k].name, name) == 0 &&
                           strcmp(f->pairs[k].value, value) == 0);
            }
            k++;
        }
        i = e + 1;
    }
    free(name);
    free(value);
    *npairs = k;
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fuzz_copy(data, size, 0);
    cs_form f;
    int rc = cs_form_parse(&f, body, size);
    fuzz_check(rc == 0 || rc == CS_EPARSE || rc == CS_ELIMIT);
    size_t npairs = 0;
    bool ref_ok = ref_agrees(rc == 0 ? &f : NULL, body, size, &npairs);
    if (npairs > CS_FORM_MAX_PAIRS) {
        fuzz_check(rc == CS_ELIMIT);
    } else {
        fuzz_check((rc == 0) == ref_ok);
        if (rc == 0) fuzz_check(f.n == npairs);
    }

    if (rc == 0) { /* written back, read back the same */
        const char **names = calloc(f.n + 1, sizeof *names),
                   **values = calloc(f.n + 1, sizeof *values);
        for (size_t i = 0; i < f.n; i++) {
            names[i] = f.pairs[i].name;
            values[i] = f.pairs[i].value;
            size_t first = 0; /* a repeated name finds its first value */
            while (strcmp(f.pairs[first].name, names[i])) first++;
            fuzz_check(cs_form_get(&f, names[i]) == f.pairs[first].value);
        }
        cs_buf out = CS_BUF_INIT(1u << 20);
        fuzz_check(cs_form_write(&out, names, values, f.n) == 0);
        cs_form g;
        fuzz_check(cs_form_parse(&g, out.data ? out.data : "", out.len) == 0 && g.n == f.n);
        for (size_t i = 0; i < f.n; i++)
            fuzz_check(!strcmp(g.pairs[i].name, names[i]) && !strcmp(g.pairs[i].value, values[i]));
        cs_form_free(&g);
        cs_buf_free(&out);
        free(names);
        free(values);
        cs_form_free(&f);
    }

    /* '+' is the only difference between the two decodings */
    char *plus = fuzz_copy(NULL, 0, size + 1), *raw = fuzz_copy(NULL, 0, size + 1);
    int a = cs_url_decode(plus, body, size, true), b = cs_url_decode(raw, body, size, false);
    fuzz_check(a == b && (a == CS_EPARSE || (a >= 0 && (size_t)a <= size)));
    for (int i = 0; i < a; i++) fuzz_check(plus[i] == raw[i] || (plus[i] == ' ' && raw[i] == '+'));
    free(plus);
    free(raw);
    free(body);
    return 0;
}
