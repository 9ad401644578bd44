/* Server-Sent Events, incrementally; see sse.h. A line wholly inside one slice is read
 * where it lies; only a line split between slices is copied. The bound is checked the same
 * way however the stream is sliced: at the end of each line, the event's fields held plus
 * that line (a field never grows by more than its line). */
#include <string.h>

#include "core/err.h"
#include "net/sse.h"

#define BOM "\xEF\xBB\xBF"

/* Bytes held besides the line being read. */
static size_t fields_held(const cs_sse *p)
{
    return p->data.len + p->type.len + p->id.len;
}

static int set(cs_buf *b, const char *v, size_t n)
{
    cs_buf_reset(b);
    return n ? cs_buf_append(b, v, n) : 0;
}

static int field_event(cs_sse *p, const char *v, size_t n)
{
    return set(&p->type, v, n);
}

static int field_data(cs_sse *p, const char *v, size_t n)
{
    int rc = cs_buf_append(&p->data, v, n);
    return rc < 0 ? rc : cs_buf_putc(&p->data, '\n');
}

static int field_id(cs_sse *p, const char *v, size_t n)
{
    return memchr(v, '\0', n) ? 0 : set(&p->id, v, n); /* the spec ignores an id with NUL */
}

static int field_retry(cs_sse *p, const char *v, size_t n)
{
    int64_t ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return 0; /* only digits, else ignored */
        if (ms < INT64_MAX / 10 - 9) ms = ms * 10 + (v[i] - '0');
    }
    if (n) p->retry_ms = ms;
    return 0;
}

static const struct {
    const char *name;
    size_t len;
    int (*fn)(cs_sse *p, const char *v, size_t n);
} fields[] = {
    {"data", 4, field_data},
    {"event", 5, field_event},
    {"id", 2, field_id},
    {"retry", 5, field_retry},
};

static int dispatch(cs_sse *p, cs_sse_fn fn, void *data)
{
    int rc = 0;
    if (p->data.len) { /* an event without data lines is dropped, as the spec says */
        cs_buf_truncate(&p->data, p->data.len - 1); /* the last line's \n */
        cs_sse_event ev = {
            .type = p->type.len ? p->type.data : "message",
            .type_len = p->type.len ? p->type.len : 7,
            .data = p->data.data,
            .data_len = p->data.len,
            .id = p->id.data ? p->id.data : "",
            .id_len = p->id.len,
        };
        rc = fn(data, &ev);
    }
    cs_buf_reset(&p->data);
    cs_buf_reset(&p->type);
    return rc;
}

static int line(cs_sse *p, const char *s, size_t n, cs_sse_fn fn, void *data)
{
    if (!p->started) {
        p->started = true;
        if (n >= 3 && !memcmp(s, BOM, 3)) s += 3, n -= 3;
    }
    if (n == 0) return dispatch(p, fn, data);
    if (s[0] == ':') return 0; /* a comment */
    const char *colon = memchr(s, ':', n);
    size_t name = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vn = colon ? n - name - 1 : 0;
    if (vn && v[0] == ' ') v++, vn--;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (name == fields[i].len && !memcmp(s, fields[i].name, name))
            return fields[i].fn(p, v, vn);
    return 0; /* an unknown field is ignored */
}

static int stop(cs_sse *p, int err)
{
    p->err = err;
    return err;
}

void cs_sse_init(cs_sse *p, size_t max_event)
{
    memset(p, 0, sizeof *p);
    p->max = max_event ? max_event : CS_SSE_MAX_EVENT_DEFAULT;
    p->retry_ms = -1;
    cs_buf_init(&p->line, p->max);
    cs_buf_init(&p->data, p->max);
    cs_buf_init(&p->type, p->max);
    cs_buf_init(&p->id, p->max);
}

void cs_sse_free(cs_sse *p)
{
    cs_buf_free(&p->line);
    cs_buf_free(&p->data);
    cs_buf_free(&p->type);
    cs_buf_free(&p->id);
}

ssize_t cs_sse_feed(cs_sse *p, const char *buf, size_t n, cs_sse_fn fn, void *data)
{
    if (p->err) return p->err;
    size_t i = 0;
    if (p->cr && n) { /* a CRLF split after its CR */
        p->cr = false;
        i += buf[0] == '\n';
    }
    while (i < n) {
        size_t j = i;
        while (j < n && buf[j] != '\n' && buf[j] != '\r') j++;
        if (fields_held(p) + p->line.len + (j - i) > p->max) return stop(p, CS_ELIMIT);
        if (j == n) { /* the line goes on in the next slice */
            int rc = cs_buf_append(&p->line, buf + i, n - i);
            return rc < 0 ? stop(p, rc) : (ssize_t)n;
        }
        const char *s = buf + i;
        size_t len = j - i;
        if (p->line.len) {
            int rc = cs_buf_append(&p->line, s, len);
            if (rc < 0) return stop(p, rc);
            s = p->line.data;
            len = p->line.len;
        }
        i = j + 1;
        if (buf[j] == '\r') { /* CRLF is one line end */
            if (i < n)
                i += buf[i] == '\n';
            else
                p->cr = true;
        }
        int rc = line(p, s, len, fn, data);
        cs_buf_reset(&p->line);
        if (rc < 0) return stop(p, rc);
    }
    return (ssize_t)n;
}

bool cs_sse_partial(const cs_sse *p)
{
    return p->line.len || p->data.len || p->type.len;
}
