/* libFuzzer target for the JSON writer (core/json.c). The input is a program for the
 * writer: each byte an operation (open or close an object or array, a key, a string, an
 * integer, a double, a literal), strings and numbers taken from the bytes that follow.
 * A model of JSON's grammar says whether the program is valid: cs_json_end must agree
 * (0 exactly for valid programs, unless the output buffer's limit was hit), and what it
 * wrote must parse with cJSON to the same values in the same order, every string's bytes
 * escaped and unescaped back (up to a NUL, where cJSON's strings end), but for bytes that
 * are not UTF-8: each of those becomes U+FFFD (JSON is Unicode text). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/json.h"
#include "fuzz.h"

#define MAX_VALUES 512

enum op {
    OP_OBJ,
    OP_OBJ_END,
    OP_ARR,
    OP_ARR_END,
    OP_KEY,
    OP_STR,
    OP_INT,
    OP_UINT,
    OP_DOUBLE,
    OP_BOOL,
    OP_NULL,
    OP_COUNT
};

/* What the writer was given, in document order, to compare with cJSON's tree. */
typedef struct value {
    int type;        /* cJSON_Object, cJSON_String, … */
    const char *key; /* the member's key, or NULL */
    const uint8_t *s;
    size_t n;
    double num;
    bool b;
} value;

typedef struct model {
    char stack[CS_JSON_MAX_DEPTH + 2];
    int depth;
    bool after_key, done, valid;
} model;

/* A value may come here (and the model moves past it). */
static void model_value(model *m)
{
    if (m->after_key)
        m->after_key = false;
    else if ((m->depth == 0 && m->done) || (m->depth > 0 && m->stack[m->depth] == '{'))
        m->valid = false;
    if (m->depth == 0) m->done = true;
}

static void model_open(model *m, char c)
{
    model_value(m);
    if (m->depth == CS_JSON_MAX_DEPTH) {
        m->valid = false;
        return;
    }
    m->stack[++m->depth] = c;
}

static void model_close(model *m, char c)
{
    if (m->depth == 0 || m->stack[m->depth] != c || m->after_key) {
        m->valid = false;
        return;
    }
    m->depth--;
}

/* Compares cJSON's tree with the recorded values, depth first; returns the next index. */
static size_t compare(const cJSON *it, const value *v, size_t i, size_t nv, const char *key)
{
    fuzz_check(i < nv);
    const value *w = &v[i];
    static char want[3 * 256 + 1];
    if (key || w->key) {
        fuzz_check(key && w->key);
        fuzz_unicode((const uint8_t *)w->key, strlen(w->key), want);
        fuzz_check(!strcmp(key, want));
    }
    switch (w->type) {
    case cJSON_Object:
    case cJSON_Array: {
        fuzz_check(w->type == cJSON_Object ? cJSON_IsObject(it) : cJSON_IsArray(it));
        i++;
        const cJSON *c;
        cJSON_ArrayForEach(c, it) i =
            compare(c, v, i, nv, w->type == cJSON_Object ? c->string : NULL);
        fuzz_check(i < nv && v[i].type == -w->type); /* the close */
        return i + 1;
    }
    case cJSON_String: {
        fuzz_check(cJSON_IsString(it));
        const uint8_t *nul = memchr(w->s, 0, w->n);
        size_t n = nul ? (size_t)(nul - w->s) : w->n;
        fuzz_unicode(w->s, n, want);
        fuzz_check(!strcmp(it->valuestring, want));
        return i + 1;
    }
    case cJSON_Number:
        fuzz_check(cJSON_IsNumber(it) && it->valuedouble == w->num);
        return i + 1;
    case cJSON_True:
        fuzz_check(w->b ? cJSON_IsTrue(it) : cJSON_IsFalse(it));
        return i + 1;
    case cJSON_NULL:
        fuzz_check(cJSON_IsNull(it));
        return i + 1;
    }
    fuzz_check(!"a value of a known type");
    return i;
}

/* Takes a length byte and that many bytes (as many as there are). */
static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t *n)
{
    size_t want = *p < end ? *(*p)++ : 0;
    *n = want < (size_t)(end - *p) ? want : (size_t)(end - *p);
    const uint8_t *s = *p;
    *p += *n;
    return s;
}

static uint64_t take_u64(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int i = 0; i < 8 && *p < end; i++) v = v << 8 | *(*p)++;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static value v[MAX_VALUES];
    static char *keys[MAX_VALUES];
    size_t nv = 0, nkeys = 0;
    const char *pending_key = NULL;
    cs_buf out = CS_BUF_INIT(data[0] & 1 ? 48 : 1u << 20); /* sometimes too small */
    cs_json j;
    cs_json_init(&j, &out);
    model m = {.valid = true};
    const uint8_t *p = data + 1, *end = data + size;
    while (p < end && nv < MAX_VALUES && nkeys < MAX_VALUES) {
        enum op op = (enum op)(*p++ % OP_COUNT);
        value *w = &v[nv];
        *w = (value){.key = pending_key};
        if (op != OP_KEY && op != OP_OBJ_END && op != OP_ARR_END) pending_key = NULL;
        switch (op) {
        case OP_OBJ:
        case OP_ARR:
            w->type = op == OP_OBJ ? cJSON_Object : cJSON_Array;
            model_open(&m, op == OP_OBJ ? '{' : '[');
            op == OP_OBJ ? cs_json_obj(&j) : cs_json_arr(&j);
            break;
        case OP_OBJ_END:
        case OP_ARR_END:
            *w = (value){.type = op == OP_OBJ_END ? -cJSON_Object : -cJSON_Array};
            model_close(&m, op == OP_OBJ_END ? '{' : '[');
            op == OP_OBJ_END ? cs_json_obj_end(&j) : cs_json_arr_end(&j);
            break;
        case OP_KEY: {
            size_t n;
            const uint8_t *s = take(&p, end, &n);
            char *k = fuzz_copy(s, n, 1); /* a C string: up to its first NUL */
            keys[nkeys++] = k;
            if (m.depth == 0 || m.stack[m.depth] != '{' || m.after_key) m.valid = false;
            m.after_key = true;
            pending_key = k;
            cs_json_key(&j, k);
            continue; /* not a value */
        }
        case OP_STR:
            w->type = cJSON_String;
            w->s = take(&p, end, &w->n);
            model_value(&m);
            cs_json_strn(&j, (const char *)w->s, w->n);
            break;
        case OP_INT:
        case OP_UINT: {
            uint64_t u = take_u64(&p, end);
            w->type = cJSON_Number;
            w->num = op == OP_INT ? (double)(int64_t)u : (double)u;
            model_value(&m);
            op == OP_INT ? cs_json_int(&j, (int64_t)u) : cs_json_uint(&j, u);
            break;
        }
        case OP_DOUBLE: {
            uint64_t bits = take_u64(&p, end);
            double d;
            memcpy(&d, &bits, sizeof d);
            w->type = isfinite(d) ? cJSON_Number : cJSON_NULL; /* non-finite writes null */
            w->num = d;
            model_value(&m);
            cs_json_double(&j, d);
            break;
        }
        case OP_BOOL:
            w->type = cJSON_True;
            w->b = p < end && (*p++ & 1);
            model_value(&m);
            cs_json_bool(&j, w->b);
            break;
        case OP_NULL:
        case OP_COUNT:
            w->type = cJSON_NULL;
            model_value(&m);
            cs_json_null(&j);
            break;
        }
        nv++;
    }
    if (m.depth != 0 || m.after_key) m.valid = false;
    int rc = cs_json_end(&j);
    if (!m.valid) {
        fuzz_check(rc == -EINVAL || rc == -EMSGSIZE);
    } else if (rc == -EMSGSIZE) {
        fuzz_check(out.max < 1u << 20); /* only the small buffer may fill up */
    } else {
        fuzz_check(rc == 0);
        if (nv > 0) { /* one value, whole */
            const char *after = NULL;
            cJSON *root = cJSON_ParseWithLengthOpts(out.data, out.len, &after, false);
            if (!root) fprintf(stderr, "cJSON refused: %s\n", out.data);
            fuzz_check(root && after == out.data + out.len);
            fuzz_check(compare(root, v, 0, nv, NULL) == nv);
            cJSON_Delete(root);
        } else {
            fuzz_check(out.len == 0);
        }
    }
    for (size_t i = 0; i < nkeys; i++) free(keys[i]);
    cs_buf_free(&out);
    return 0;
}
