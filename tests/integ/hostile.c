/* What hostile or broken clients try against the transport, and what must hold. Heads and
 * bodies dribbled a byte at a time cannot hold the slots: a head has a deadline (over TLS
 * from accept, handshake included), a body a minimum rate, heads from one address a
 * limit, and a new connection finding every slot taken closes the oldest unfinished head.
 * Pipelined requests all get their answers, in order, whether the reader is slow or a
 * handler answers later, and answers larger than a connection's output go out whole.
 * Listen-in sockets that never read are closed before their output eats the memory
 * (MAX_OUTPUT_BYTES) while the call goes on. Sign-ins whose clients left are dropped
 * before their password is checked. Running out of descriptors pauses accepting: no
 * spinning, one log line per burst and loop, and service again once descriptors come back. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "integ_util.h"
#include "net/form.h"
#include "net/http.h"
#include "net/server.h"

#define ATTACKER  "127.0.0.2" /* another loopback address: its limits are not ours */
#define CALL_FORM "CallSid=CA77777777777777777777777777777777&From=%2B15550001111&To=%2B15550002222"
#define FORM_TYPE "Content-Type: application/x-www-form-urlencoded\r\n"
#define HEALTH    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

static void stop(it_server *s)
{
    IT_CHECK(it_server_stop(s, SIGTERM, 15000) == 0, "the server did not exit cleanly");
    it_server_cleanup(s);
}

/* Sends what the socket takes now: bytes sent, or -1 once the peer is gone. */
static ssize_t send_some(int fd, const void *p, size_t n)
{
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    return k;
}

/* Reads until the server closes `fd`, keeping what it said in `out` (if not NULL):
 * whether it closed within timeout_ms. */
static bool closes(int fd, cs_buf *out, int timeout_ms)
{
    long long deadline = it_now_ms() + timeout_ms;
    char b[4096];
    while (it_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - it_now_ms())) <= 0) continue;
        ssize_t k = recv(fd, b, sizeof b, 0);
        if (k <= 0) return true;
        if (out) cs_buf_append(out, b, (size_t)k);
    }
    return false;
}

/* Whether `fd` is still open: no end of stream waiting on it. */
static bool still_open(int fd)
{
    char c;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return k > 0 || (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static bool health_ok(int port)
{
    it_resp r;
    bool ok = it_http(port, "GET", "/health", NULL, NULL, &r) == 0 && r.status == 200;
    if (r.body) it_resp_free(&r);
    return ok;
}

static bool webhook_ok(int port)
{
    it_resp r;
    bool ok = it_http(port, "POST", "/twilio/voice", FORM_TYPE, CALL_FORM, &r) == 0 &&
              r.status == 200 && strstr(r.body, "<Stream");
    if (r.body) it_resp_free(&r);
    return ok;
}

/* ---- slow heads and bodies ---- */

/* Hundreds of connections dribbling their heads, with every slot taken: the oldest give
 * way, and /health and the webhook get in. Only settings older than the defence. */
static void slowloris_slots(void)
{
    enum { N = 300, SLOTS = 50 };
    it_server s;
    /* one loop: a head makes room only on the loop the new connection lands on */
    const char *args[] = {"--workers", "1", "--max-connections", "50", NULL};
    if (!it_server_up(&s, args)) return;
    const char *head = "GET /health HTTP/1.1\r\n";
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = it_tcp(s.port, ATTACKER, 0);
        if (fds[i] >= 0) send_some(fds[i], head, 1);
    }
    int health = 0, hooks = 0;
    for (int round = 1; round <= 3; round++) {
        it_sleep_ms(1500);
        for (int i = 0; i < N; i++)
            if (fds[i] >= 0) send_some(fds[i], head + round, 1);
        health += health_ok(s.port);
        hooks += webhook_ok(s.port);
    }
    IT_CHECK(health == 3 && hooks == 3, "locked out: /health %d of 3, webhook %d of 3", health,
             hooks);
    int oldest_closed = 0;
    for (int i = 0; i < SLOTS; i++) oldest_closed += fds[i] >= 0 && closes(fds[i], NULL, 1000);
    IT_CHECK(oldest_closed == SLOTS, "%d of the %d oldest dribblers were closed", oldest_closed,
             SLOTS);
    double evicted =
        it_metric(s.port, "callstream_http_slow_closed_total{reason=\"head_evicted\"}");
    IT_CHECK(evicted >= N - SLOTS, "%.0f heads made room", evicted);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
    stop(&s);
}

/* Every slot taken, and the oldest unfinished head is the only connection of an address
 * that connects again: making room must not free that address's count while the new
 * connection still uses it. Another address fills the rest. */
static void evict_an_address_only_head(void)
{
    it_server s;
    /* the head that makes room is the oldest of the loop the new one lands on: one loop */
    const char *args[] = {"--max-connections", "3", "--workers", "1", NULL};
    if (!it_server_up(&s, args)) return;
    int oldest = it_tcp(s.port, ATTACKER, 0);
    it_sleep_ms(200);
    int others[2] = {it_tcp(s.port, NULL, 0), it_tcp(s.port, NULL, 0)};
    it_sleep_ms(200);
    int again = it_tcp(s.port, ATTACKER, 0);
    IT_CHECK(closes(oldest, NULL, 3000), "the oldest head was not closed to make room");
    const char *get = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_some(again, get, strlen(get));
    cs_buf got = CS_BUF_INIT(1 << 16);
    IT_CHECK(closes(again, &got, 5000) && got.data && strstr(got.data, " 200 "),
             "the connection that made room was not served");
    cs_buf_free(&got);
    close(oldest);
    close(again);
    for (int i = 0; i < 2; i++) close(others[i]);
    IT_CHECK(health_ok(s.port), "the server no longer answers");
    stop(&s);
}

/* A head must be whole HTTP_HEAD_TIMEOUT_S after its first byte; a connection that has
 * sent nothing is idle, not late. */
static void head_deadline(void)
{
    it_server s;
    const char *args[] = {"--http-head-timeout-s", "2", "--http-idle-s", "8", NULL};
    if (!it_server_up(&s, args)) return;
    const char *req = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    size_t len = strlen(req);

    /* in pieces, but whole in time */
    int honest = it_tcp(s.port, NULL, 0);
    for (size_t off = 0; off < len; off += 12) {
        send_some(honest, req + off, len - off < 12 ? len - off : 12);
        it_sleep_ms(100);
    }
    cs_buf got = CS_BUF_INIT(1 << 16);
    IT_CHECK(closes(honest, &got, 10000) && got.data && strstr(got.data, " 200 "),
             "a head sent in pieces within the deadline: %s", got.data ? got.data : "nothing");
    close(honest);

    int quiet = it_tcp(s.port, NULL, 0);
    int slow = it_tcp(s.port, NULL, 0);
    long long deadline = it_now_ms() + 20000;
    struct pollfd p = {.fd = slow, .events = POLLIN};
    for (size_t i = 0; i < len && it_now_ms() < deadline && poll(&p, 1, 0) == 0; i = (i + 1) % 20) {
        send_some(slow, req + i, 1);
        it_sleep_ms(300);
    }
    cs_buf_reset(&got);
    IT_CHECK(closes(slow, &got, 5000) && got.data && strstr(got.data, " 408 "),
             "a head dribbled past its deadline: %s", got.data ? got.data : "nothing");
    IT_CHECK(still_open(quiet), "a connection that sent nothing was closed by the head deadline");
    IT_CHECK(closes(quiet, NULL, 15000), "the quiet connection outlived HTTP_IDLE_S");
    IT_CHECK(it_metric(s.port, "callstream_http_slow_closed_total{reason=\"head_timeout\"}") == 1,
             "the late head was not counted");
    cs_buf_free(&got);
    close(quiet);
    close(slow);
    stop(&s);
}

/* GET `path` over https, trusting `cert`, with the test's token: the body in `out`. */
static void https_get(const it_server *s, const char *cert, const char *path, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -s --max-time 10 --cacert %s -H 'Authorization: Bearer %s' %s%s", cert, s->token,
             s->url, path);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f) pclose(f);
}

/* Over TLS the handshake brings no plaintext byte: a ClientHello dribbled a byte at a
 * time must still end, with the head after it, within HTTP_HEAD_TIMEOUT_S of the
 * connection, however long HTTP_IDLE_S is. */
static void head_deadline_tls(void)
{
    it_server s;
    char cert[400], key[400];
    if (it_server_prepare(&s) < 0 || it_tls_cert(&s, cert, key, sizeof cert) < 0) {
        IT_CHECK(0, "cannot prepare a TLS server");
        return;
    }
    const char *args[] = {"--tls-cert",    cert,  "--tls-key", key, "--http-head-timeout-s", "2",
                          "--http-idle-s", "600", NULL};
    snprintf(s.url, sizeof s.url, "https://127.0.0.1:%d", s.port);
    if (it_server_restart(&s, args) < 0) {
        IT_CHECK(0, "the TLS server did not start");
        it_server_cleanup(&s);
        return;
    }
    /* A TLS record announcing a 512-byte ClientHello (TLS 1.2), its bytes sent slowly. */
    static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
                                          0x00, 0x01, 0xfc, 0x03, 0x03};
    int slow = it_tcp(s.port, NULL, 0);
    struct pollfd p = {.fd = slow, .events = POLLIN};
    long long deadline = it_now_ms() + 20000;
    size_t sent = 0;
    while (it_now_ms() < deadline && poll(&p, 1, 0) == 0) {
        unsigned char b = sent < sizeof hello ? hello[sent] : (unsigned char)sent;
        if (send_some(slow, &b, 1) != 1) break;
        sent++;
        it_sleep_ms(300);
    }
    IT_CHECK(closes(slow, NULL, 5000), "a ClientHello dribbled for 20 s (%zu bytes) held its slot",
             sent);
    close(slow);
    char body[65536];
    https_get(&s, cert, "/health", body, sizeof body);
    IT_CHECK(strstr(body, "\"ok\""), "https /health after it: %s", body);
    https_get(&s, cert, "/metrics", body, sizeof body);
    double late = it_metric_in(body, strlen(body),
                               "callstream_http_slow_closed_total{reason=\"head_timeout\"}");
    IT_CHECK(late == 1, "the late handshake was counted %.0f times as a late head", late);
    stop(&s);
}

/* A body must keep HTTP_BODY_MIN_BYTES_PER_S: MAX_BODY_BYTES at twice that rate is served,
 * a byte every half second gets a 408. */
static void body_rate(void)
{
    it_server s;
    const char *args[] = {"--http-head-timeout-s",
                          "2",
                          "--max-body-bytes",
                          "8192",
                          "--http-body-min-bytes-per-s",
                          "1024",
                          NULL};
    if (!it_server_up(&s, args)) return;
    enum { BODY = 8192, PIECE = 512 };
    char body[BODY + 1];
    int n = snprintf(body, sizeof body, "%s&Pad=", CALL_FORM);
    memset(body + n, 'x', BODY - (size_t)n);
    body[BODY] = '\0';
    char head[256];
    snprintf(head, sizeof head,
             "POST /twilio/voice HTTP/1.1\r\nHost: x\r\n" FORM_TYPE
             "Content-Length: %d\r\nConnection: close\r\n\r\n",
             BODY);

    int honest = it_tcp(s.port, NULL, 0);
    send_some(honest, head, strlen(head));
    for (size_t off = 0; off < BODY; off += PIECE) {
        it_sleep_ms(250);
        send_some(honest, body + off, PIECE);
    }
    cs_buf got = CS_BUF_INIT(1 << 16);
    IT_CHECK(closes(honest, &got, 10000) && got.data && strstr(got.data, " 200 ") &&
                 strstr(got.data, "<Stream"),
             "a slow but steady body: %.200s", got.data ? got.data : "nothing");
    close(honest);

    int slow = it_tcp(s.port, NULL, 0);
    send_some(slow, head, strlen(head));
    struct pollfd p = {.fd = slow, .events = POLLIN};
    long long deadline = it_now_ms() + 20000;
    for (size_t i = 0; i < BODY && it_now_ms() < deadline && poll(&p, 1, 0) == 0; i++) {
        send_some(slow, body + i, 1);
        it_sleep_ms(500);
    }
    cs_buf_reset(&got);
    IT_CHECK(closes(slow, &got, 5000) && got.data && strstr(got.data, " 408 "),
             "a dribbled body: %s", got.data ? got.data : "nothing");
    IT_CHECK(it_metric(s.port, "callstream_http_slow_closed_total{reason=\"body_too_slow\"}") == 1,
             "the slow body was not counted");
    IT_CHECK(it_metric(s.port, "callstream_http_slow_closed_total{reason=\"head_timeout\"}") == 0,
             "a body was counted as a late head");
    cs_buf_free(&got);
    close(slow);
    stop(&s);
}

/* Connections waiting for a head count against MAX_HEADS_PER_IP; one busy with a request
 * does not, nor does another address. */
static void heads_per_ip(void)
{
    enum { HEADS = 20 };
    it_server s;
    const char *args[] = {"--max-heads-per-ip", "20", NULL};
    if (!it_server_up(&s, args)) return;
    int fds[HEADS];
    for (int i = 0; i < HEADS; i++) fds[i] = it_tcp(s.port, ATTACKER, 0);
    it_sleep_ms(200);
    int extra = it_tcp(s.port, ATTACKER, 0);
    IT_CHECK(closes(extra, NULL, 3000), "one head too many from one address was kept");
    close(extra);
    IT_CHECK(health_ok(s.port), "another address was refused");
    /* one of them starts a body: it waits for a head no more, so one more gets in */
    const char *post = "POST /twilio/status HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    send_some(fds[0], post, strlen(post));
    it_sleep_ms(200);
    extra = it_tcp(s.port, ATTACKER, 0);
    it_sleep_ms(200);
    IT_CHECK(still_open(extra), "a connection was refused though only %d wait for a head",
             HEADS - 1);
    /* and those admitted are served */
    const char *get = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_some(fds[1], get, strlen(get));
    cs_buf got = CS_BUF_INIT(1 << 16);
    IT_CHECK(closes(fds[1], &got, 5000) && got.data && strstr(got.data, " 200 "),
             "an admitted connection was not served");
    cs_buf_free(&got);
    IT_CHECK(
        it_metric(s.port, "callstream_connections_rejected_total{limit=\"max_heads_per_ip\"}") == 1,
        "the refusal was not counted");
    close(extra);
    for (int i = 0; i < HEADS; i++) close(fds[i]);
    stop(&s);
}

/* ---- pipelining ---- */

typedef void (*answer_fn)(int i, int status, const char *body, size_t len, void *data);

/* Sends `req` (as fast as the server takes it) and reads the answers until `want` have
 * come, the server closes, or nothing comes for 10 s. A `chunk` > 0 reads that much at a
 * time with a pause in between: a slow reader. Returns the answers read. */
static int pipeline(int fd, const cs_buf *req, int want, size_t chunk, answer_fn check, void *data)
{
    cs_buf in = CS_BUF_INIT(64u << 20);
    size_t sent = 0;
    int got = 0;
    char b[65536];
    size_t take = chunk && chunk < sizeof b ? chunk : sizeof b;
    while (got < want) {
        if (sent < req->len) {
            ssize_t k = send_some(fd, req->data + sent, req->len - sent);
            if (k < 0) break;
            sent += (size_t)k;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < req->len ? POLLOUT : 0)};
        if (poll(&p, 1, 10000) <= 0) break;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, b, take, 0);
            if (k <= 0) break;
            cs_buf_append(&in, b, (size_t)k);
            if (chunk) it_sleep_ms(1);
        }
        for (;;) {
            cs_http_resp resp;
            int n = in.len ? cs_http_parse_response(in.data, in.len, 65536, &resp) : 0;
            if (n <= 0 || !resp.has_content_length || in.len - (size_t)n < resp.content_length)
                break;
            check(got++, resp.status, in.data + n, (size_t)resp.content_length, data);
            cs_buf_consume(&in, (size_t)n + (size_t)resp.content_length);
        }
    }
    cs_buf_free(&in);
    return got;
}

/* What each answer must be: kinds[i] is 'h' for /health, 'o' for the other route, whose
 * answers are all as long as the first one and hold `other_has` (if not NULL). */
typedef struct expect {
    const char *kinds;
    const char *other_has;
    size_t other_len;
    int wrong;
} expect;

static void check_answer(int i, int status, const char *body, size_t len, void *data)
{
    expect *e = data;
    bool health = e->kinds[i] == 'h';
    bool ok = status == 200;
    if (health) {
        ok = ok && memmem(body, len, "\"status\":\"ok\"", 13);
    } else {
        if (!e->other_len) e->other_len = len;
        ok = ok && len == e->other_len &&
             (!e->other_has || memmem(body, len, e->other_has, strlen(e->other_has)));
    }
    if (!ok && e->wrong++ == 0)
        fprintf(stderr, "answer %d: status %d, %zu bytes: not the %s expected\n", i, status, len,
                health ? "/health" : "other");
}

/* A reader with a tiny receive buffer that takes its time, under megabytes of pipelined
 * answers: it gets every one, in order, and the connection stays usable. */
static void pipelined_slow_reader(void)
{
    enum { N = 1500 };
    it_server s;
    if (!it_server_up(&s, NULL)) return;
    cs_buf req = CS_BUF_INIT(1 << 20);
    static char kinds[N + 1];
    for (int i = 0; i < N; i++) {
        kinds[i] = i % 10 == 9 ? 'h' : 'o';
        cs_buf_puts(&req,
                    kinds[i] == 'h' ? HEALTH : "GET /static/app.css HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    int fd = it_tcp(s.port, NULL, 4096);
    expect e = {.kinds = kinds};
    int got = pipeline(fd, &req, N, 4096, check_answer, &e);
    IT_CHECK(got == N && e.wrong == 0, "%d of %d answers, %d wrong", got, N, e.wrong);
    IT_CHECK(e.other_len * (N - N / 10) > (8u << 20), "the answers were too small to matter (%zu)",
             e.other_len);
    cs_buf_reset(&req);
    cs_buf_puts(&req, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect last = {.kinds = "h"};
    IT_CHECK(pipeline(fd, &req, 1, 0, check_answer, &last) == 1 && last.wrong == 0,
             "the connection did not take another request");
    IT_CHECK(it_metric(s.port, "callstream_connections_output_paused_total") >= 1,
             "reading never waited for the answers to go");
    close(fd);
    cs_buf_free(&req);
    stop(&s);
}

/* More than a read's worth pipelined behind a request the store answers later: nothing
 * is refused and every answer comes, in order. */
static void pipelined_behind_slow_handler(void)
{
    enum { N = 2000 };
    it_server s;
    if (!it_server_up(&s, NULL)) return;
    cs_buf req = CS_BUF_INIT(1 << 20);
    static char kinds[N + 2];
    kinds[0] = 'o';
    memset(kinds + 1, 'h', N);
    cs_buf_printf(&req, "GET /api/v1/calls HTTP/1.1\r\nHost: x\r\n%s\r\n", it_auth);
    for (int i = 0; i < N; i++) cs_buf_puts(&req, HEALTH);
    IT_CHECK(req.len > 65536, "only %zu bytes pipelined", req.len);
    int fd = it_tcp(s.port, NULL, 0);
    expect e = {.kinds = kinds, .other_has = "\"calls\""};
    int got = pipeline(fd, &req, N + 1, 0, check_answer, &e);
    IT_CHECK(got == N + 1 && e.wrong == 0, "%d of %d answers, %d wrong", got, N + 1, e.wrong);
    close(fd);
    cs_buf_free(&req);
    stop(&s);
}

/* ---- answers larger than a connection's output ---- */

#define BIG_CALL "CA55555555555555555555555555555555"

typedef struct big_call {
    int port, want; /* events expected */
    int status, events;
    size_t len;
} big_call;

static bool big_call_whole(void *data)
{
    big_call *b = data;
    it_resp r;
    b->status =
        it_http(b->port, "GET", "/api/v1/calls/" BIG_CALL, NULL, NULL, &r) == 0 ? r.status : -1;
    b->len = r.body_len;
    const cJSON *events = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "call"), "events");
    b->events = cJSON_GetArraySize(events);
    if (b->status >= 0) it_resp_free(&r);
    return b->status == 200 && b->events == b->want;
}

/* A call whose status callbacks are large, each kept whole as an event (anyone may post
 * them while TWILIO_AUTH_TOKEN is unset): its answer, larger than a connection's output,
 * is served whole, pipelined to a slow reader too. One larger than all of
 * MAX_OUTPUT_BYTES gets a 500 at once, and no other reader is closed for it. */
static void big_answers(void)
{
    enum { CALLBACKS = 40, PAD = 21000 };
    it_server s;
    if (!it_server_up(&s, NULL)) return;
    cs_buf form = CS_BUF_INIT(1 << 20);
    cs_buf_puts(&form, "CallSid=" BIG_CALL "&CallStatus=in-progress&X=");
    for (int i = 0; i < PAD; i++) cs_buf_puts(&form, "%01"); /* 6 bytes of JSON each */
    int posted = 0;
    for (int i = 0; i < CALLBACKS; i++) {
        it_resp r;
        if (it_http(s.port, "POST", "/twilio/status", FORM_TYPE, form.data, &r) < 0) continue;
        posted += r.status == 204;
        it_resp_free(&r);
    }
    cs_buf_free(&form);
    IT_CHECK(posted == CALLBACKS, "%d of %d status callbacks taken", posted, CALLBACKS);
    big_call b = {.port = s.port, .want = CALLBACKS};
    IT_CHECK(it_until(big_call_whole, &b, 10000) && b.len > CS_CONN_MAX_OUTPUT,
             "the call's answer: %d, %zu bytes, %d events", b.status, b.len, b.events);

    /* pipelined, twice, around /health, to a reader with a small window that takes its time */
    cs_buf req = CS_BUF_INIT(1 << 16);
    const char *get = "GET /api/v1/calls/" BIG_CALL " HTTP/1.1\r\nHost: x\r\n";
    cs_buf_printf(&req, "%s%s\r\n" HEALTH "%s%s\r\n", get, it_auth, get, it_auth);
    int fd = it_tcp(s.port, NULL, 4096);
    expect e = {.kinds = "oho", .other_has = "\"events_truncated\""};
    int got = pipeline(fd, &req, 3, 4096, check_answer, &e);
    IT_CHECK(got == 3 && e.wrong == 0 && e.other_len == b.len, "%d of 3 answers, %d wrong", got,
             e.wrong);
    close(fd);
    IT_CHECK(it_metric(s.port, "callstream_http_answers_too_large_total") == 0,
             "an answer was refused");

    /* Larger than all the output allowed: refused at once. A reader that has left a
     * megabyte of answers unread is not closed for it. */
    it_server_stop(&s, SIGTERM, 15000);
    const char *capped[] = {"--max-output-bytes", "4194304", NULL};
    IT_CHECK(it_server_restart(&s, capped) == 0, "the server did not start again");
    int stuck = it_tcp(s.port, NULL, 4096);
    cs_buf_reset(&req);
    for (int i = 0; i < 2000; i++)
        cs_buf_puts(&req, "GET /static/app.css HTTP/1.1\r\nHost: x\r\n\r\n");
    size_t off = 0;
    double buffered = 0;
    for (long long deadline = it_now_ms() + 10000; buffered < 256 << 10 && it_now_ms() < deadline;
         it_sleep_ms(50)) {
        ssize_t k = off < req.len ? send_some(stuck, req.data + off, req.len - off) : 0;
        off += k > 0 ? (size_t)k : 0;
        buffered = it_metric(s.port, "callstream_output_buffered_bytes");
    }
    IT_CHECK(buffered >= 256 << 10, "the reader that does not read left only %.0f bytes waiting",
             buffered);
    it_resp r;
    int rc = it_http(s.port, "GET", "/api/v1/calls/" BIG_CALL, NULL, NULL, &r);
    IT_CHECK(rc == 0 && r.status == 500 && strstr(r.body, "no room"),
             "an answer larger than MAX_OUTPUT_BYTES: %d %.100s", rc == 0 ? r.status : -1,
             rc == 0 ? r.body : "");
    if (rc == 0) it_resp_free(&r);
    IT_CHECK(it_metric(s.port, "callstream_output_cap_closed_total{class=\"default\"}") == 0,
             "a reader was closed for an answer that could never fit");
    IT_CHECK(it_metric(s.port, "callstream_http_answers_too_large_total") == 1 &&
                 it_metric(s.port, "callstream_output_refused_total") >= 1,
             "the refusal was not counted");
    IT_CHECK(still_open(stuck), "the reader that does not read was closed");
    close(stuck);
    cs_buf_free(&req);
    stop(&s);
}

/* ---- buffered output ---- */

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The next JSON message of `type` within timeout_ms, others skipped; caller frees. */
static cJSON *next_json(it_ws *w, const char *type, int timeout_ms)
{
    long long deadline = it_now_ms() + timeout_ms;
    cs_ws_event ev;
    while (it_now_ms() < deadline) {
        if (it_ws_next(w, &ev, (int)(deadline - it_now_ms())) <= 0) return NULL;
        if (ev.type != CS_WS_EV_MESSAGE || ev.opcode != CS_WS_OP_TEXT) continue;
        cJSON *j = cJSON_ParseWithLength(ev.data, ev.len);
        if (j && strcmp(str(j, "type"), type) == 0) return j;
        cJSON_Delete(j);
    }
    return NULL;
}

/* Reads a listener's socket for `ms`: audio frames, sequence gaps, and whether it ended
 * (with the close code, or -1 if the socket closed without one). */
typedef struct heard {
    int frames, gaps, close_code;
    bool ended;
    unsigned last_seq[2];
} heard;

static void listen_to(it_ws *w, int ms, heard *h)
{
    long long deadline = it_now_ms() + ms;
    cs_ws_event ev;
    while (!h->ended && it_now_ms() < deadline) {
        int r = it_ws_next(w, &ev, (int)(deadline - it_now_ms()));
        if (r < 0 || (r == 1 && ev.type == CS_WS_EV_CLOSE)) {
            h->ended = true;
            h->close_code = r < 0 ? -1 : ev.close_code;
        } else if (r == 1 && ev.type == CS_WS_EV_MESSAGE && ev.opcode == CS_WS_OP_BINARY &&
                   ev.len >= 8) {
            const uint8_t *p = (const uint8_t *)ev.data;
            unsigned t = p[1] & 1;
            unsigned seq = (unsigned)p[4] << 24 | (unsigned)p[5] << 16 | (unsigned)p[6] << 8 | p[7];
            if (h->last_seq[t] && seq != h->last_seq[t] + 1) h->gaps++;
            h->last_seq[t] = seq;
            h->frames++;
        }
    }
}

/* Listen-in sockets that never read, under a low MAX_OUTPUT_BYTES: they are closed, the
 * listener that reads hears everything, and the call with its media socket goes on. */
static void output_cap(void)
{
    enum { STUCK = 6 };
    it_server s;
    const char *args[] = {"--agent", "echo", "--max-output-bytes", "131072", NULL};
    if (!it_server_up(&s, args)) return;
    char cookie[256], browser[512];
    IT_CHECK(it_session(&s, cookie, sizeof cookie) == 0, "cannot sign in");
    snprintf(browser, sizeof browser, "%sOrigin: http://127.0.0.1:%d\r\n", cookie, s.port);

    it_ws list, good, stuck[STUCK];
    IT_CHECK(it_ws_connect(&list, s.port, "/monitor", browser) == 0, "monitor refused");
    it_ws_send_text(&list, "{\"type\":\"watch_calls\"}");
    pid_t sim = it_sim_spawn(&s, "--duration 14");
    cJSON *started = next_json(&list, "call_started", 10000);
    char sub[160];
    snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"call\":\"%.40s\",\"audio\":\"both\"}",
             str(cJSON_GetObjectItem(started, "call"), "sid"));
    cJSON_Delete(started);
    it_ws_close(&list);
    for (int i = 0; i < STUCK; i++) {
        IT_CHECK(it_ws_connect_buffered(&stuck[i], s.port, "/monitor", browser, 2048) == 0,
                 "monitor %d refused", i);
        it_ws_send_text(&stuck[i], sub);
    }
    IT_CHECK(it_ws_connect(&good, s.port, "/monitor", browser) == 0, "monitor refused");
    it_ws_send_text(&good, sub);

    heard h = {0};
    double closed = 0;
    long long deadline = it_now_ms() + 12000;
    while (!h.ended && it_now_ms() < deadline && closed < STUCK / 2) {
        listen_to(&good, 500, &h);
        closed = it_metric(s.port, "callstream_output_cap_closed_total{class=\"listener\"}");
    }
    IT_CHECK(closed >= STUCK / 2, "%.0f listen-in sockets that never read were closed", closed);
    listen_to(&good, 30000, &h);
    IT_CHECK(h.ended && h.close_code == 1000 && h.gaps == 0 && h.frames > 600,
             "the listener that reads: %d frames, %d gaps, close %d", h.frames, h.gaps,
             h.close_code);
    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    const cJSON *missing = cJSON_GetObjectItem(sum, "missing");
    IT_CHECK(exit_status == 0 && missing && missing->valueint == 0, "the call beside them: exit %d",
             exit_status);
    cJSON_Delete(sum);
    IT_CHECK(it_metric(s.port, "callstream_output_cap_closed_total{class=\"default\"}") == 0,
             "a media or HTTP connection was closed for the cap");
    IT_CHECK(it_metric(s.port, "callstream_streams_ended_total{reason=\"stop\"}") == 1,
             "the media stream did not end normally");
    int abrupt = 0;
    for (int i = 0; i < STUCK; i++) {
        heard x = {0};
        listen_to(&stuck[i], 10000, &x);
        abrupt += x.ended && x.close_code == -1;
        it_ws_close(&stuck[i]);
    }
    IT_CHECK(abrupt >= STUCK / 2, "%d stuck listeners were cut off", abrupt);
    it_ws_close(&good);
    stop(&s);
}

/* ---- sign-ins of clients that leave ---- */

#define ANN_PASSWORD "ann's password"

/* A server with the user ann. */
static bool up_with_ann(it_server *s, const char *const *args)
{
    if (!it_server_up(s, args)) return false;
    IT_CHECK(it_cli(s, "user add ann --password-stdin", ANN_PASSWORD "\n", NULL, 0) == 0,
             "user add failed");
    return true;
}

/* A sign-in as ann, answered in JSON. */
static void sign_in_request(cs_buf *req, const char *password)
{
    const char *names[] = {"username", "password"}, *values[] = {"ann", password};
    cs_buf form = CS_BUF_INIT(4096);
    cs_form_write(&form, names, values, 2);
    cs_buf_printf(req,
                  "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" FORM_TYPE
                  "Accept: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                  form.len, form.data);
    cs_buf_free(&form);
}

/* A client that half-closes after its sign-in cannot be told from one that gave up: both
 * are an end of stream. The sign-in is dropped before its password is checked (as nginx
 * ends such a request, 499); the half-closed client reads why. Other routes answer it. */
static void sign_in_half_closed(void)
{
    it_server s;
    if (!up_with_ann(&s, NULL)) return;
    cs_buf req = CS_BUF_INIT(8192);
    sign_in_request(&req, ANN_PASSWORD);
    /* Corked, the end of stream goes in the request's last segment: the server cannot
     * have started on the sign-in before it sees the half-close. */
    int fd = it_tcp(s.port, NULL, 0), on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    send_some(fd, req.data, req.len);
    shutdown(fd, SHUT_WR);
    cs_buf got = CS_BUF_INIT(1 << 16);
    IT_CHECK(closes(fd, &got, 10000) && got.data && strstr(got.data, " 503 ") &&
                 strstr(got.data, "the client left") && !strstr(got.data, "Set-Cookie"),
             "a half-closed sign-in: %.300s", got.data ? got.data : "nothing");
    close(fd);
    IT_CHECK(it_log_count(&s, "dropped: the client left") == 1 &&
                 it_log_count(&s, "signed in from") == 0,
             "the half-closed sign-in was not dropped before its password was checked");
    char cookie[256];
    IT_CHECK(it_sign_in(&s, "ann", ANN_PASSWORD, cookie, sizeof cookie) == 0,
             "a sign-in that stays to read was refused");
    const char *health = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    fd = it_tcp(s.port, NULL, 0);
    send_some(fd, health, strlen(health));
    shutdown(fd, SHUT_WR);
    cs_buf_reset(&got);
    IT_CHECK(closes(fd, &got, 10000) && got.data && strstr(got.data, " 200 "),
             "/health to a half-closed client: %.200s", got.data ? got.data : "nothing");
    close(fd);
    cs_buf_free(&got);
    cs_buf_free(&req);
    stop(&s);
}

/* Sign-ins wait their turn for the password worker; those whose clients left meanwhile
 * are dropped when their turn comes instead of each costing a hash. */
static void sign_ins_left_waiting(void)
{
    enum { N = 10 };
    it_server s;
    const char *args[] = {"--login-attempts-per-min", "1000", NULL};
    if (!up_with_ann(&s, args)) return;
    cs_buf req = CS_BUF_INIT(8192);
    sign_in_request(&req, "not ann's password");
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = it_tcp(s.port, NULL, 0);
        send_some(fds[i], req.data, req.len);
    }
    /* The first is answered once its password is checked; the others give up then. */
    cs_buf got = CS_BUF_INIT(1 << 16);
    IT_CHECK(closes(fds[0], &got, 30000) && got.data && strstr(got.data, " 401 "),
             "the first sign-in: %.200s", got.data ? got.data : "nothing");
    for (int i = 0; i < N; i++) close(fds[i]);
    int checked = 0, dropped = 0;
    for (long long deadline = it_now_ms() + 30000; checked + dropped < N && it_now_ms() < deadline;
         it_sleep_ms(50)) {
        checked = it_log_count(&s, "failed sign-in for 'ann'");
        dropped = it_log_count(&s, "dropped: the client left");
    }
    IT_CHECK(checked + dropped == N && dropped >= N / 2,
             "of %d sign-ins, %d had their password checked and %d were dropped", N, checked,
             dropped);
    cs_buf_free(&got);
    cs_buf_free(&req);
    stop(&s);
}

/* ---- descriptors ---- */

/* What /metrics says about accepting. */
typedef struct accepting {
    double paused, errors, loops;
} accepting;

static void read_accepting(int i, int status, const char *body, size_t len, void *data)
{
    (void)i;
    accepting *a = data;
    bool ok = status == 200;
    a->paused = ok ? it_metric_in(body, len, "callstream_accept_paused") : -1;
    a->errors = ok ? it_metric_in(body, len, "callstream_accept_errors_total") : -1;
    a->loops = ok ? it_metric_in(body, len, "callstream_loops") : -1; /* none: one */
    if (ok && a->loops < 1) a->loops = 1;
}

/* Asks /metrics on `fd`, a connection opened before descriptors ran out. */
static bool accepting_now(int fd, accepting *a)
{
    cs_buf req = CS_BUF_INIT(4096);
    cs_buf_printf(&req, "GET /metrics HTTP/1.1\r\nHost: x\r\n%s\r\n", it_auth);
    bool ok = pipeline(fd, &req, 1, 0, read_accepting, a) == 1;
    cs_buf_free(&req);
    return ok;
}

/* Out of descriptors: accepting pauses (the listeners rest between retries instead of
 * spinning on the same failure), says so once, and serves again once the connections
 * go. A connection opened before watches it through /metrics. */
static void fd_exhaustion(void)
{
    enum { N = 80 };
    it_server s;
    IT_CHECK(it_server_start_nofile(&s, NULL, 48) == 0, "the server did not start");
    if (!s.pid) return;
    int watch = it_tcp(s.port, NULL, 0);
    accepting a0 = {0}, a1 = {0};
    IT_CHECK(accepting_now(watch, &a0) && a0.paused == 0, "/metrics before: paused %.0f",
             a0.paused);
    int fds[N];
    for (int i = 0; i < N; i++) fds[i] = it_tcp(s.port, NULL, 0);
    const char *said = "cannot accept connections";
    long long deadline = it_now_ms() + 10000;
    while (it_log_count(&s, said) == 0 && it_now_ms() < deadline) it_sleep_ms(50);
    IT_CHECK(it_log_count(&s, said) >= 1, "running out of descriptors was not logged");
    long long t0 = it_now_ms();
    IT_CHECK(accepting_now(watch, &a0), "no /metrics while out of descriptors");
    it_sleep_ms(1500);
    IT_CHECK(accepting_now(watch, &a1), "no /metrics while out of descriptors");
    long long t1 = it_now_ms();
    /* One failed accept per retry and loop (each rests its own listener): a server
     * spinning on the failure counts far more. */
    double loops = a1.loops;
    double most = loops * ((double)(t1 - t0) / CS_SERVER_ACCEPT_RETRY_MS + 1);
    IT_CHECK(a0.paused == 1 && a1.paused == 1, "accepting not paused: %.0f, %.0f", a0.paused,
             a1.paused);
    IT_CHECK(a1.errors > a0.errors && a1.errors - a0.errors <= most,
             "%.0f accept errors in %lld ms, at most one per %d ms expected", a1.errors - a0.errors,
             t1 - t0, CS_SERVER_ACCEPT_RETRY_MS);
    int bursts = it_log_count(&s, said); /* once per loop that ran out */
    IT_CHECK(bursts >= 1 && bursts <= loops,
             "logged %d times while paused, once per burst and loop expected", bursts);
    for (int i = 0; i < N; i++) close(fds[i]);
    bool health = false;
    for (deadline = it_now_ms() + 20000; !health && it_now_ms() < deadline; it_sleep_ms(100))
        health = health_ok(s.port);
    IT_CHECK(health && webhook_ok(s.port), "not served again once the connections went");
    IT_CHECK(it_log_count(&s, said) == bursts, "logged %d times, once per burst and loop expected",
             it_log_count(&s, said));
    /* A loop says it accepts again at its next connection (the kernel picks the loop):
     * new ones come until each that paused has said so. */
    bool recovered = false;
    for (deadline = it_now_ms() + 20000; !recovered && it_now_ms() < deadline; it_sleep_ms(100))
        recovered = health_ok(s.port) &&
                    it_log_count(&s, "accepting connections again") == bursts &&
                    it_metric(s.port, "callstream_accept_paused") == 0;
    IT_CHECK(it_log_count(&s, "accepting connections again") == bursts,
             "the recovery was not logged by each loop that paused");
    IT_CHECK(it_metric(s.port, "callstream_accept_paused") == 0, "still paused after it");
    close(watch);
    stop(&s);
}

int main(void)
{
    slowloris_slots();
    evict_an_address_only_head();
    head_deadline();
    head_deadline_tls();
    body_rate();
    heads_per_ip();
    pipelined_slow_reader();
    pipelined_behind_slow_handler();
    big_answers();
    output_cap();
    sign_in_half_closed();
    sign_ins_left_waiting();
    fd_exhaustion();
    return it_done("hostile");
}
