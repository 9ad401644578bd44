/* One-shot HTTP/1.1 requests from the loop; see client.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "net/client.h"
#include "net/http.h"
#include "net/url.h"

typedef struct post {
    cs_conn *conn;
    cs_buf in;
    cs_client_fn cb;
    void *data;
    bool done;
} post;

static void deliver(post *p, int status, const char *body, size_t len, int err)
{
    if (p->done) return;
    p->done = true;
    p->cb(p->data, status, body, len, err);
}

/* Tries to read a whole answer from what arrived so far. */
static bool try_answer(post *p, bool eof)
{
    cs_http_resp resp;
    int n = cs_http_parse_response(p->in.data, p->in.len, CS_HTTP_MAX_HEAD_DEFAULT, &resp);
    if (n < 0) {
        deliver(p, 0, NULL, 0, CS_EPARSE);
        return true;
    }
    if (n == 0) {
        if (eof) deliver(p, 0, NULL, 0, CS_ECLOSED);
        return eof;
    }
    size_t have = p->in.len - (size_t)n;
    if (resp.has_content_length) {
        if (have < resp.content_length) {
            if (eof) deliver(p, 0, NULL, 0, CS_ECLOSED);
            return eof;
        }
        deliver(p, resp.status, p->in.data + n, (size_t)resp.content_length, 0);
        return true;
    }
    if (resp.chunked) { /* decode what is there; the answer is complete when `done` */
        cs_http_chunked d;
        cs_http_chunked_init(&d);
        cs_buf body = CS_BUF_INIT(CS_CLIENT_MAX_ANSWER);
        int k = cs_http_chunked_feed(&d, p->in.data + n, have, &body);
        bool complete = k >= 0 && d.done;
        if (complete)
            deliver(p, resp.status, body.data ? body.data : "", body.len, 0);
        else if (k < 0 || eof)
            deliver(p, 0, NULL, 0, k < 0 ? k : CS_ECLOSED);
        cs_buf_free(&body);
        return complete || k < 0 || eof;
    }
    if (!eof) return false; /* read to the end */
    deliver(p, resp.status, p->in.data + n, have, 0);
    return true;
}

static ssize_t on_data(cs_conn *c, char *data, size_t len)
{
    post *p = c->data;
    if (cs_buf_append(&p->in, data, len) < 0) {
        deliver(p, 0, NULL, 0, -EMSGSIZE);
        return CS_ELIMIT;
    }
    if (try_answer(p, false)) cs_conn_close(c, 0, false);
    return (ssize_t)len;
}

static void on_connect(cs_conn *c, int status)
{
    if (status < 0) deliver(c->data, 0, NULL, 0, status);
}

static void on_close(cs_conn *c, int err)
{
    post *p = c->data;
    if (!p->done) {
        if (err < 0)
            deliver(p, 0, NULL, 0, err);
        else
            try_answer(p, true);
    }
    cs_buf_free(&p->in);
    free(p);
}

static const cs_conn_ops post_ops = {
    .on_data = on_data,
    .on_connect = on_connect,
    .on_close = on_close,
};

int cs_client_request(cs_net *net, const char *method, const char *url, const char *headers,
                      const void *body, size_t len, uint32_t timeout_ms, cs_client_fn cb,
                      void *data)
{
    cs_url u;
    if (cs_url_parse(&u, url) < 0 || (strcmp(u.scheme, "http") && strcmp(u.scheme, "https")))
        return CS_EPARSE;
    post *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->cb = cb;
    p->data = data;
    cs_buf_init(&p->in, CS_CLIENT_MAX_ANSWER + CS_HTTP_MAX_HEAD_DEFAULT);
    char host[CS_URL_MAX_HOST + 9];
    cs_url_host_header(&u, host, sizeof host);
    char target[2 * CS_URL_MAX + 2];
    snprintf(target, sizeof target, "%s%s%s", u.path, u.query[0] ? "?" : "", u.query);
    cs_buf head = CS_BUF_INIT(CS_CLIENT_MAX_ANSWER + 65536);
    cs_buf lines = CS_BUF_INIT(65536);
    cs_buf_printf(&lines, "User-Agent: callstream/%s\r\nConnection: close\r\n%s", CS_VERSION,
                  headers ? headers : "");
    int rc = cs_http_write_request(&head, method, host, target, lines.data, body, body ? len : 0);
    cs_buf_free(&lines);
    cs_conn *c = NULL;
    if (rc == 0) rc = cs_conn_connect(net, u.host, u.port, u.tls, u.host, &post_ops, p, &c);
    if (rc == 0) {
        c->idle_timeout_ms = timeout_ms;
        rc = cs_conn_write(c, head.data, head.len);
    }
    cs_buf_free(&head);
    if (rc < 0) {
        if (c) {
            p->done = true; /* the caller hears of it from the return value */
            cs_conn_close(c, rc, false);
        } else {
            cs_buf_free(&p->in);
            free(p);
        }
    }
    return rc;
}
