#include "core/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/str.h"

void cs_json_init(cs_json *j, cs_buf *out)
{
    memset(j, 0, sizeof *j);
    j->out = out;
}

static void fail(cs_json *j, int err)
{
    if (!j->err) j->err = err;
}

int cs_json_end(cs_json *j)
{
    if (j->depth != 0 || j->after_key) fail(j, -EINVAL);
    return j->err;
}

static void put(cs_json *j, const char *s, size_t n)
{
    if (!j->err) j->err = cs_buf_append(j->out, s, n);
}

/* Before a value: checks it may come here and writes the separator it needs. */
static void sep(cs_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->kind[j->depth] == '{' || (j->depth == 0 && j->any[0])) {
        fail(j, -EINVAL); /* an object's value needs its key; one top-level value only */
        return;
    }
    if (j->any[j->depth]) put(j, ",", 1);
    j->any[j->depth] = true;
}

static void open(cs_json *j, char c)
{
    sep(j);
    if (j->depth == CS_JSON_MAX_DEPTH) {
        fail(j, -EMSGSIZE);
        return;
    }
    put(j, &c, 1);
    j->depth++;
    j->any[j->depth] = false;
    j->kind[j->depth] = c;
}

static void close_(cs_json *j, char open_c, char c)
{
    if (j->depth == 0 || j->kind[j->depth] != open_c || j->after_key) {
        fail(j, -EINVAL);
        return;
    }
    j->depth--;
    put(j, &c, 1);
}

void cs_json_obj(cs_json *j)
{
    open(j, '{');
}
void cs_json_obj_end(cs_json *j)
{
    close_(j, '{', '}');
}
void cs_json_arr(cs_json *j)
{
    open(j, '[');
}
void cs_json_arr_end(cs_json *j)
{
    close_(j, '[', ']');
}

void cs_json_key(cs_json *j, const char *key)
{
    if (j->kind[j->depth] != '{' || j->after_key) {
        fail(j, -EINVAL);
        return;
    }
    if (j->any[j->depth]) put(j, ",", 1);
    j->any[j->depth] = true;
    if (!j->err) j->err = cs_json_escape(j->out, key, strlen(key));
    put(j, ":", 1);
    j->after_key = true;
}

int cs_json_escape(cs_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = cs_buf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
            } else if (c < 0x80) {
                run++;
                continue;
            } else {
                /* JSON is Unicode text (RFC 8259 §8.1): a byte that is not UTF-8 becomes
                 * U+FFFD, or a browser would drop the whole message. */
                size_t k = cs_utf8_char(s + i, n - i);
                if (k) {
                    run += k;
                    i += k - 1;
                    continue;
                }
                esc = CS_UTF8_REPLACEMENT;
            }
        }
        if (run) rc = cs_buf_append(out, s + i - run, run);
        run = 0;
        if (rc == 0) rc = esc ? cs_buf_puts(out, esc) : cs_buf_append(out, u, 6);
    }
    if (run && rc == 0) rc = cs_buf_append(out, s + n - run, run);
    if (rc == 0) rc = cs_buf_putc(out, '"');
    return rc;
}

void cs_json_strn(cs_json *j, const char *s, size_t n)
{
    sep(j);
    if (!j->err) j->err = cs_json_escape(j->out, s, n);
}

void cs_json_str(cs_json *j, const char *s)
{
    if (!s) {
        cs_json_null(j);
        return;
    }
    cs_json_strn(j, s, strlen(s));
}

void cs_json_int(cs_json *j, int64_t v)
{
    char t[24];
    sep(j);
    put(j, t, (size_t)snprintf(t, sizeof t, "%" PRId64, v));
}

void cs_json_uint(cs_json *j, uint64_t v)
{
    char t[24];
    sep(j);
    put(j, t, (size_t)snprintf(t, sizeof t, "%" PRIu64, v));
}

void cs_json_double(cs_json *j, double v)
{
    if (!isfinite(v)) {
        cs_json_null(j);
        return;
    }
    /* %.15g reads better; %.17g where it takes that many digits to read back the same value. */
    char t[32];
    int n = snprintf(t, sizeof t, "%.15g", v);
    if (strtod(t, NULL) != v) n = snprintf(t, sizeof t, "%.17g", v);
    sep(j);
    put(j, t, (size_t)n);
}

void cs_json_bool(cs_json *j, bool v)
{
    sep(j);
    put(j, v ? "true" : "false", v ? 4 : 5);
}

void cs_json_null(cs_json *j)
{
    sep(j);
    put(j, "null", 4);
}

void cs_json_raw(cs_json *j, const char *json, size_t n)
{
    sep(j);
    put(j, json, n);
}

void cs_json_kstr(cs_json *j, const char *key, const char *s)
{
    cs_json_key(j, key);
    cs_json_str(j, s);
}
void cs_json_kint(cs_json *j, const char *key, int64_t v)
{
    cs_json_key(j, key);
    cs_json_int(j, v);
}
void cs_json_kuint(cs_json *j, const char *key, uint64_t v)
{
    cs_json_key(j, key);
    cs_json_uint(j, v);
}
void cs_json_kdouble(cs_json *j, const char *key, double v)
{
    cs_json_key(j, key);
    cs_json_double(j, v);
}
void cs_json_kbool(cs_json *j, const char *key, bool v)
{
    cs_json_key(j, key);
    cs_json_bool(j, v);
}

void cs_json_ktime(cs_json *j, const char *key, int64_t wall_ms)
{
    cs_json_key(j, key);
    if (!wall_ms) {
        cs_json_null(j);
        return;
    }
    char iso[25];
    cs_iso8601(iso, wall_ms);
    cs_json_str(j, iso);
}
