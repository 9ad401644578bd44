/* JSON writer into a cs_buf: commas and nesting are tracked, strings escaped, misuse
 * refused (a key outside an object, a value without its key, a close of the wrong kind,
 * a second top-level value: -EINVAL), and the first error kept and reported by
 * cs_json_end, so what it returns 0 for is valid JSON. Reading JSON is cJSON's job. */
#ifndef CS_JSON_H
#define CS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CS_JSON_MAX_DEPTH 32 /* containers open at once */

typedef struct cs_json {
    cs_buf *out;
    int depth;                        /* containers open */
    int err;                          /* first error, 0 if none */
    bool after_key;                   /* a key was written, its value comes next */
    bool any[CS_JSON_MAX_DEPTH + 1];  /* [d]: something was written at depth d */
    char kind[CS_JSON_MAX_DEPTH + 1]; /* [d]: '{' or '[' of the container at depth d */
} cs_json;

/* Appends to `out` (not emptied). */
void cs_json_init(cs_json *j, cs_buf *out);
/* 0, or the first error met while writing. */
int cs_json_end(cs_json *j);

void cs_json_obj(cs_json *j);
void cs_json_obj_end(cs_json *j);
void cs_json_arr(cs_json *j);
void cs_json_arr_end(cs_json *j);
void cs_json_key(cs_json *j, const char *key);

void cs_json_str(cs_json *j, const char *s); /* NULL writes null */
void cs_json_strn(cs_json *j, const char *s, size_t n);
void cs_json_int(cs_json *j, int64_t v);
void cs_json_uint(cs_json *j, uint64_t v);
void cs_json_double(cs_json *j, double v); /* non-finite values write null */
void cs_json_bool(cs_json *j, bool v);
void cs_json_null(cs_json *j);
/* Already-serialized JSON, written as one value. */
void cs_json_raw(cs_json *j, const char *json, size_t n);

/* key + value in one call */
void cs_json_kstr(cs_json *j, const char *key, const char *s);
void cs_json_kint(cs_json *j, const char *key, int64_t v);
void cs_json_kuint(cs_json *j, const char *key, uint64_t v);
void cs_json_kdouble(cs_json *j, const char *key, double v);
void cs_json_kbool(cs_json *j, const char *key, bool v);
/* A wall-clock time in ms as ISO 8601 (cs_iso8601); 0 (unknown) writes null. */
void cs_json_ktime(cs_json *j, const char *key, int64_t wall_ms);

/* Appends `s` as a quoted, escaped JSON string. */
int cs_json_escape(cs_buf *out, const char *s, size_t n);

#endif
