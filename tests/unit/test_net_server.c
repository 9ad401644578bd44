/* cs_server on a real loop: an answer larger than a connection's output goes out whole,
 * in pieces, before the next one; one with no room under the net's output cap is
 * replaced by a 500 in its place (the next answer still pairs with its request), and
 * when not even that fits, the connection closes rather than skip an answer; so does one
 * whose streamed answer ends short of its length. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "net/server.h"

#define BIG (6u << 20) /* more than CS_CONN_MAX_OUTPUT */

static void big(cs_request *r)
{
    char *body = malloc(BIG);
    assert_non_null(body);
    memset(body, 'b', BIG);
    cs_respond(r, 200, "text/plain", body, BIG, NULL);
    free(body);
}

static void small(cs_request *r)
{
    cs_respond(r, 200, "text/plain", "small", 5, NULL);
}

/* A streamed answer whose source fails half-way: 10 of its 100 bytes. */
static void cut_short(cs_request *r)
{
    assert_int_equal(cs_respond_begin(r, 200, "text/plain", 100, NULL), 0);
    assert_int_equal(cs_respond_write(r, "0123456789", 10), 0);
    cs_respond_end(r);
}

static const cs_route routes[] = {
    {CS_HTTP_GET, "/big", big},
    {CS_HTTP_GET, "/small", small},
    {CS_HTTP_GET, "/short", cut_short},
};

typedef struct rig {
    uv_loop_t loop;
    cs_net *net;
    cs_server *server;
    int fd;      /* our client socket */
    cs_buf in;   /* what came back */
    bool closed; /* the server closed it */
} rig;

static void rig_up(rig *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    assert_int_equal(cs_net_new(&r->net, &r->loop), 0);
    cs_server_limits lim = {.max_connections = 8,
                            .max_per_ip = 8,
                            .max_head = 4096,
                            .max_body = 4096,
                            .idle_ms = 30000};
    assert_int_equal(
        cs_server_new(&r->server, r->net, routes, sizeof routes / sizeof *routes, &lim, NULL), 0);
    assert_int_equal(cs_server_listen(r->server, "127.0.0.1", 0, false), 0);
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)cs_server_port(r->server))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(r->fd, (struct sockaddr *)&a, sizeof a);
    assert_true(rc == 0 || errno == EINPROGRESS);
    cs_buf_init(&r->in, 2 * BIG);
}

static bool server_gone(void *data)
{
    return cs_net_count(((rig *)data)->net) == 0;
}

static void rig_down(rig *r)
{
    close(r->fd);
    cs_server_stop_listening(r->server);
    cs_net_close_all(r->net, false);
    tu_run_until(&r->loop, server_gone, r, 2000);
    cs_server_free(r->server);
    cs_net_free(r->net);
    uv_run(&r->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    cs_buf_free(&r->in);
}

/* Reads what is there; done once `want` appears in the input or the server closed. */
static const char *want;

static bool got(void *data)
{
    rig *r = data;
    char b[65536];
    ssize_t k;
    while ((k = recv(r->fd, b, sizeof b, 0)) > 0) cs_buf_append(&r->in, b, (size_t)k);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) r->closed = true;
    return r->closed || (r->in.data && strstr(r->in.data, want));
}

static void send_all(rig *r, const char *req)
{
    size_t n = strlen(req), off = 0;
    while (off < n) {
        ssize_t k = send(r->fd, req + off, n - off, MSG_NOSIGNAL);
        if (k > 0) off += (size_t)k;
        uv_run(&r->loop, UV_RUN_NOWAIT);
    }
}

static void test_big_answer_whole(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    send_all(&r, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    want = "small";
    assert_true(tu_run_until(&r.loop, got, &r, 20000));
    assert_false(r.closed);
    const char *first = strstr(r.in.data, "HTTP/1.1 200");
    const char *body = first ? strstr(first, "\r\n\r\n") : NULL;
    assert_non_null(body);
    body += 4;
    size_t n = strspn(body, "b");
    assert_int_equal(n, BIG); /* whole, and the next answer right after it */
    assert_true(strncmp(body + n, "HTTP/1.1 200", 12) == 0);
    const cs_server_stats *st = cs_server_stats_get(r.server);
    assert_int_equal(st->answers_too_large, 0);
    assert_int_equal(st->responses[2], 2);
    assert_int_equal(cs_net_stats_get(r.net)->buffered, 0); /* nothing held once it is out */
    rig_down(&r);
}

static void test_no_room_becomes_500(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    cs_net_set_output_cap(r.net, CS_CONN_MAX_OUTPUT); /* less than the big answer */
    send_all(&r, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    want = "small";
    assert_true(tu_run_until(&r.loop, got, &r, 10000));
    assert_false(r.closed);
    const char *first = strstr(r.in.data, "HTTP/1.1 500");
    const char *second = strstr(r.in.data, "HTTP/1.1 200");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second); /* in the big one's place, before the next answer */
    assert_non_null(strstr(r.in.data, "no room"));
    const cs_server_stats *st = cs_server_stats_get(r.server);
    assert_int_equal(st->answers_too_large, 1);
    assert_int_equal(st->responses[5], 1);
    assert_int_equal(st->responses[2], 1);
    rig_down(&r);
}

/* An answer that ends short of its Content-Length ends the connection after what was
 * sent: the client sees it short instead of waiting for the rest, or reading the next
 * answer as part of it. */
static void test_answer_cut_short_closes(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    send_all(&r, "GET /short HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    want = "\x01 not in any answer";
    assert_true(tu_run_until(&r.loop, got, &r, 10000)); /* until the server closes */
    assert_true(r.closed);
    const char *body = strstr(r.in.data, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "0123456789");
    rig_down(&r);
}

static void test_nothing_fits_closes(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    cs_net_set_output_cap(r.net, 16); /* not even an error answer fits */
    send_all(&r, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    want = "HTTP/1.1";
    assert_true(tu_run_until(&r.loop, got, &r, 10000));
    assert_true(r.closed);
    assert_int_equal(r.in.len, 0);
    assert_int_equal(cs_server_stats_get(r.server)->answers_too_large, 1);
    assert_true(cs_net_stats_get(r.net)->output_overflow >= 2);
    rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_answer_whole),
        cmocka_unit_test(test_no_room_becomes_500),
        cmocka_unit_test(test_nothing_fits_closes),
        cmocka_unit_test(test_answer_cut_short_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
