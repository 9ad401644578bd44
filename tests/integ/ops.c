/* Operations of a cluster, with two gateway processes: node b serves a recording node a
 * holds (b asks a, signed with CLUSTER_SECRET, and streams its answer; Range, 404 and 416
 * pass through; a down is a 503 saying since when; a client that reads nothing makes b
 * pause a, not buffer); a refuses node requests with a bad, expired or missing signature;
 * /ready follows the store; /status shows the node and its peers.
 * The rows saying which node holds a call are written into each node's database here
 * (the nodes share neither a store nor a bus in this test: NODE_PEERS tells b where a is). */
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audio/wav.h"
#include "core/nodesig.h"
#include "dblock.h"
#include "integ_util.h"
#include "pg_server.h"
#include "redis_server.h"

#define SECRET  "it-cluster-secret"
#define SID     "CA00000000000000000000000000000001"
#define GONE    "CA00000000000000000000000000000002" /* b has a row, a none */
#define BIG     "CA00000000000000000000000000000003"
#define SMALL_N (3u << 20)
#define BIG_N   (48u << 20)
#define WAIT_MS 20000

static it_server a, b;

/* The byte at `i` of a test recording (after its header). */
static uint8_t pattern(size_t i)
{
    return (uint8_t)((i * 7 + i / 251) & 0xff);
}

/* A WAV of `n` bytes at `path`, its header's sizes right (the holder rewrites them from the
 * length anyway). */
static int write_wav(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint8_t hdr[CS_WAV_HEADER_LEN];
    cs_wav_header(hdr, 8000, 1, (uint32_t)(n - CS_WAV_HEADER_LEN));
    fwrite(hdr, 1, sizeof hdr, f);
    static uint8_t chunk[1 << 16];
    for (size_t at = CS_WAV_HEADER_LEN; at < n;) {
        size_t k = n - at < sizeof chunk ? n - at : sizeof chunk;
        for (size_t i = 0; i < k; i++) chunk[i] = pattern(at + i);
        fwrite(chunk, 1, k, f);
        at += k;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Whether `p` holds the recording's bytes [from, from + n). */
static bool same_bytes(const uint8_t *p, size_t from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (from + i >= CS_WAV_HEADER_LEN && p[i] != pattern(from + i)) return false;
    return true;
}

/* A call row held by `node` in `s`'s database. */
static void call_row(const it_server *s, const char *sid, const char *node, const char *path)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO calls (sid, status, recording, created_at, started_at, ended_at, "
             "updated_at, node) VALUES ('%s', 'completed', %s%s%s, 1, 1, 2, 2, '%s')",
             sid, path ? "'" : "", path ? path : "NULL", path ? "'" : "", node);
    IT_CHECK(it_sql_exec(it_db(s), sql) == 0, "cannot write the call row");
}

/* A finished call `sid` held by a, its recording `n` bytes on a's disk; b has its row too
 * when `on_b` (the nodes share no store here). */
static void held_by_a(const char *sid, size_t n, bool on_b)
{
    char path[512];
    snprintf(path, sizeof path, "%s", it_recording(&a, sid));
    IT_CHECK(write_wav(path, n) == 0, "cannot write %s", path);
    call_row(&a, sid, "a", path);
    if (on_b) call_row(&b, sid, "a", it_recording(&b, sid));
}

static void as(const it_server *s)
{
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", s->token);
}

static int get(const it_server *s, const char *target, const char *headers, it_resp *r)
{
    as(s);
    return it_http(s->port, "GET", target, headers, NULL, r) == 0 ? r->status : -1;
}

static bool start_pair(void)
{
    const char *aargs[] = {"--node-id", "a", "--cluster-secret", SECRET, NULL};
    if (!it_server_up(&a, aargs)) return false;
    char peers[128];
    snprintf(peers, sizeof peers, "a=%s", a.url);
    const char *bargs[] = {"--node-id", "b", "--cluster-secret", SECRET, "--node-peers",
                           peers,       NULL};
    return it_server_up(&b, bargs);
}

static void stop_pair(void)
{
    IT_CHECK(it_server_stop(&b, SIGTERM, 10000) == 0, "b did not exit cleanly");
    IT_CHECK(it_server_stop(&a, SIGTERM, 10000) == 0, "a did not exit cleanly");
    it_server_cleanup(&b);
    it_server_cleanup(&a);
}

/* ---- the recording from the node that holds it ---- */

static void recording_across_nodes(void)
{
    if (!start_pair()) return;
    held_by_a(SID, SMALL_N, true);
    call_row(&b, GONE, "a", NULL);

    it_resp r;
    const char *target = "/api/v1/calls/" SID "/recording.wav";
    IT_CHECK(get(&b, target, NULL, &r) == 200, "b: %d %s", r.status, r.body);
    IT_CHECK(r.body_len == SMALL_N, "b sent %zu bytes of %u", r.body_len, SMALL_N);
    IT_CHECK(r.body_len == SMALL_N && same_bytes((uint8_t *)r.body, 0, SMALL_N),
             "b's bytes are not a's");
    IT_CHECK(strstr(r.head, "Content-Type: audio/wav") != NULL, "no Content-Type: %s", r.head);
    it_resp_free(&r);

    /* Range */
    IT_CHECK(get(&b, target, "Range: bytes=1000-1999\r\n", &r) == 206, "range: %d", r.status);
    IT_CHECK(r.body_len == 1000 && same_bytes((uint8_t *)r.body, 1000, 1000), "range bytes");
    char want[64];
    snprintf(want, sizeof want, "Content-Range: bytes 1000-1999/%u", SMALL_N);
    IT_CHECK(strstr(r.head, want) != NULL, "no '%s' in %s", want, r.head);
    it_resp_free(&r);
    IT_CHECK(get(&b, target, "Range: bytes=-100\r\n", &r) == 206, "suffix range: %d", r.status);
    IT_CHECK(r.body_len == 100 && same_bytes((uint8_t *)r.body, SMALL_N - 100, 100),
             "suffix range bytes");
    it_resp_free(&r);
    char past[64];
    snprintf(past, sizeof past, "Range: bytes=%u-\r\n", SMALL_N);
    IT_CHECK(get(&b, target, past, &r) == 416, "past the end: %d", r.status);
    snprintf(want, sizeof want, "Content-Range: bytes */%u", SMALL_N);
    IT_CHECK(strstr(r.head, want) != NULL, "no '%s' in %s", want, r.head);
    it_resp_free(&r);

    /* HEAD: the head only, its length the file's */
    as(&b);
    IT_CHECK(it_http(b.port, "HEAD", target, NULL, NULL, &r) == 0 && r.status == 200 &&
                 r.body_len == 0,
             "HEAD: %d, %zu bytes", r.status, r.body_len);
    snprintf(want, sizeof want, "Content-Length: %u", SMALL_N);
    IT_CHECK(strstr(r.head, want) != NULL, "no '%s' in %s", want, r.head);
    it_resp_free(&r);

    /* a has no such call: its 404 passes through */
    IT_CHECK(get(&b, "/api/v1/calls/" GONE "/recording.wav", NULL, &r) == 404, "gone: %d",
             r.status);
    it_resp_free(&r);
    IT_CHECK(it_metric(b.port, "callstream_recordings_remote_total") == 6, "remote total %.0f",
             it_metric(b.port, "callstream_recordings_remote_total"));
    IT_CHECK(it_metric(b.port, "callstream_recordings_remote_failed_total") == 0, "failed");
    /* the client's credentials still count on b */
    snprintf(it_auth, sizeof it_auth, "%s", "");
    IT_CHECK(it_http(b.port, "GET", target, NULL, NULL, &r) == 0 && r.status == 401,
             "no credentials: %d", r.status);
    it_resp_free(&r);

    /* a down: 503 naming it and since when, counted; back: served again */
    IT_CHECK(it_server_stop(&a, SIGTERM, 10000) == 0, "a did not exit cleanly");
    IT_CHECK(get(&b, target, NULL, &r) == 503, "a down: %d", r.status);
    const char *msg = it_str(cJSON_GetObjectItem(r.json, "error"), "message");
    IT_CHECK(strstr(msg, "node a ") && strstr(msg, "cannot be reached since 20"), "said: %s", msg);
    it_resp_free(&r);
    IT_CHECK(it_metric(b.port, "callstream_recordings_remote_failed_total") == 1, "not counted");
    IT_CHECK(it_log_count(&b, "node a holds recordings and cannot be reached") == 1, "no warning");
    const char *aargs[] = {"--node-id", "a", "--cluster-secret", SECRET, NULL};
    IT_CHECK(it_server_restart(&a, aargs) == 0, "a does not start again");
    IT_CHECK(get(&b, target, "Range: bytes=0-99\r\n", &r) == 206, "a back: %d", r.status);
    it_resp_free(&r);
    stop_pair();
}

/* ---- a live call's recording, still being written on a ---- */

#define LIVE   "CA00000000000000000000000000000004"
#define STREAM "MZ00000000000000000000000000000004"

typedef struct live_get {
    size_t more_than; /* the recording has grown past this */
    size_t len;
} live_get;

/* b serves a's growing file whole: a WAV whose sizes are the bytes served. */
static bool live_served(void *data)
{
    live_get *lg = data;
    it_resp r;
    bool ok = get(&b, "/api/v1/calls/" LIVE "/recording.wav", NULL, &r) == 200 &&
              r.body_len > lg->more_than;
    cs_wav_info info;
    ok = ok && cs_wav_parse((const uint8_t *)r.body, r.body_len, &info) == 0 &&
         info.data_offset + info.data_len == r.body_len;
    if (ok) lg->len = r.body_len;
    it_resp_free(&r);
    return ok;
}

static void live_recording(void)
{
    if (!start_pair()) return;
    it_ws w;
    int rc = it_media_start(&w, a.port, LIVE, STREAM);
    IT_CHECK(rc == 0, "upgrade refused (%d)", rc);
    call_row(&b, LIVE, "a", NULL); /* a live call on a: no recording in its row yet */
    uint64_t seq = 2;
    for (int k = 0; k < 50 && rc == 0; k++, seq++)
        rc = it_media_frame(&w, STREAM, seq, (seq - 2) * 20, 0x20, 160);
    live_get lg = {.more_than = CS_WAV_HEADER_LEN};
    IT_CHECK(it_until(live_served, &lg, WAIT_MS), "b does not serve a's live recording");
    lg.more_than = lg.len;
    for (int k = 0; k < 50 && rc == 0; k++, seq++)
        rc = it_media_frame(&w, STREAM, seq, (seq - 2) * 20, 0x20, 160);
    IT_CHECK(it_until(live_served, &lg, WAIT_MS), "the live recording b serves does not grow");
    IT_CHECK(it_media_stop(&w, LIVE, STREAM, seq) == 1000, "stop did not end with 1000");
    it_ws_close(&w);
    stop_pair();
}

/* ---- signatures on the holder ---- */

static int signed_get(const char *target, const char *value)
{
    char h[256];
    snprintf(h, sizeof h, CS_NODESIG_HEADER ": %s\r\n", value);
    it_resp r;
    int status = it_http_browser(a.port, "GET", target, h, NULL, &r) == 0 ? r.status : -1;
    it_resp_free(&r);
    return status;
}

static void node_signatures(void)
{
    if (!start_pair()) return;
    held_by_a(SID, 4096, false);
    const char *target = "/api/v1/calls/" SID "/recording.wav";
    char v[CS_NODESIG_VALUE_MAX + 1];
    int64_t now = (int64_t)time(NULL);
    cs_nodesig_sign(v, sizeof v, SECRET, "GET", cs_str_of(target), "b", now);
    IT_CHECK(signed_get(target, v) == 200, "a good signature is refused");
    cs_nodesig_sign(v, sizeof v, "another secret", "GET", cs_str_of(target), "b", now);
    IT_CHECK(signed_get(target, v) == 403, "forged");
    cs_nodesig_sign(v, sizeof v, SECRET, "GET", cs_str_of("/api/v1/calls/" GONE "/recording.wav"),
                    "b", now);
    IT_CHECK(signed_get(target, v) == 403, "signed for another path");
    cs_nodesig_sign(v, sizeof v, SECRET, "GET", cs_str_of(target), "b",
                    now - CS_NODESIG_SKEW_S - 60);
    IT_CHECK(signed_get(target, v) == 401, "expired");
    IT_CHECK(signed_get(target, "b 123") == 401, "malformed");
    it_resp r;
    IT_CHECK(it_http_browser(a.port, "GET", target, NULL, NULL, &r) == 0 && r.status == 401,
             "neither a signature nor credentials: %d", r.status);
    it_resp_free(&r);
    as(&a);
    IT_CHECK(it_metric(a.port, "callstream_node_signature_refused_total") == 4, "refused %.0f",
             it_metric(a.port, "callstream_node_signature_refused_total"));
    stop_pair();

    /* b with another secret: a refuses it, and b says so (502), not the client's fault */
    const char *aargs[] = {"--node-id", "a", "--cluster-secret", SECRET, NULL};
    if (!it_server_up(&a, aargs)) return;
    char peers[128];
    snprintf(peers, sizeof peers, "a=%s", a.url);
    const char *bargs[] = {"--node-id", "b", "--cluster-secret", "wrong", "--node-peers",
                           peers,       NULL};
    if (!it_server_up(&b, bargs)) return;
    held_by_a(SID, 4096, true);
    IT_CHECK(get(&b, target, NULL, &r) == 502, "another secret: %d", r.status);
    IT_CHECK(strstr(it_str(cJSON_GetObjectItem(r.json, "error"), "message"), "CLUSTER_SECRET"),
             "does not say why: %s", r.body);
    it_resp_free(&r);
    stop_pair();
}

/* ---- a client that reads nothing ---- */

static void slow_client(void)
{
    if (!start_pair()) return;
    held_by_a(BIG, BIG_N, true);
    double rss0 = it_metric(b.port, "process_resident_memory_bytes");
    int fd = it_tcp(b.port, NULL, 4096);
    IT_CHECK(fd >= 0, "cannot connect to b");
    if (fd < 0) return;
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/calls/" BIG "/recording.wav HTTP/1.1\r\nHost: x\r\n"
                     "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
                     b.token);
    IT_CHECK(write(fd, req, (size_t)n) == n, "cannot send");
    /* Unpaused, a sends all of it to b in well under this; b must not hold it. */
    double grown = 0;
    for (int i = 0; i < 20 && grown < 24e6; i++) {
        it_sleep_ms(250);
        grown = it_metric(b.port, "process_resident_memory_bytes") - rss0;
    }
    IT_CHECK(grown < 24e6, "b grew by %.1f MB for a client that reads nothing", grown / 1e6);
    /* then everything arrives, whole */
    static uint8_t buf[1 << 16];
    size_t got = 0, head = 0, body = 0;
    bool same = true;
    char hbuf[1024];
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) break;
        size_t off = 0;
        if (!head) {
            size_t take = (size_t)k < sizeof hbuf - 1 - got ? (size_t)k : sizeof hbuf - 1 - got;
            memcpy(hbuf + got, buf, take);
            hbuf[got + take] = '\0';
            char *sep = strstr(hbuf, "\r\n\r\n");
            if (!sep) {
                got += take;
                continue;
            }
            head = (size_t)(sep - hbuf) + 4;
            off = head - got;
            got = head;
        }
        same = same && same_bytes(buf + off, body, (size_t)k - off);
        body += (size_t)k - off;
    }
    close(fd);
    IT_CHECK(strncmp(hbuf, "HTTP/1.1 200", 12) == 0, "answer: %.40s", hbuf);
    IT_CHECK(body == BIG_N, "the client got %zu bytes of %u", body, BIG_N);
    IT_CHECK(same, "the bytes differ from a's");
    stop_pair();
}

/* ---- a holder that never answers: the limit on recordings asked at once ---- */

#define REMOTE_MAX 256 /* CS_REMOTE_MAX, the process's */

/* A node that takes connections (the kernel does) and never answers. Its port. */
static int silent_node(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (*fd < 0 || bind(*fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(*fd, REMOTE_MAX * 2) < 0 || getsockname(*fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    return ntohs(sa.sin_port);
}

/* b started, told node z (a silent_node, its socket in *lfd) holds call SID. */
static bool b_with_node_z(int *lfd)
{
    int port = silent_node(lfd);
    IT_CHECK(port > 0, "cannot listen");
    char peers[128];
    snprintf(peers, sizeof peers, "z=http://127.0.0.1:%d", port);
    const char *bargs[] = {"--node-id", "b", "--cluster-secret", SECRET, "--node-peers",
                           peers,       NULL};
    if (port <= 0 || !it_server_up(&b, bargs)) return false;
    call_row(&b, SID, "z", NULL);
    return true;
}

static bool all_asked(void *data)
{
    as(&b);
    return it_metric(b.port, "callstream_recordings_remote_total") >= *(int *)data;
}

static void remote_limit(void)
{
    int lfd;
    if (!b_with_node_z(&lfd)) return;
    static int fds[REMOTE_MAX];
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/calls/" SID "/recording.wav HTTP/1.1\r\nHost: x\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     b.token);
    for (int i = 0; i < REMOTE_MAX; i++) {
        fds[i] = it_tcp(b.port, NULL, 0);
        IT_CHECK(fds[i] >= 0 && write(fds[i], req, (size_t)n) == n, "request %d", i);
    }
    int want = REMOTE_MAX;
    IT_CHECK(it_until(all_asked, &want, WAIT_MS), "b did not take every request");
    it_resp r;
    IT_CHECK(get(&b, "/api/v1/calls/" SID "/recording.wav", NULL, &r) == 503, "one more: %d",
             r.status);
    IT_CHECK(strstr(it_str(cJSON_GetObjectItem(r.json, "error"), "message"),
                    "being fetched from other nodes already"),
             "said: %s", r.body);
    it_resp_free(&r);
    /* the silent node hangs up on each: every request is answered 503 */
    int taken = 0;
    long long until = it_now_ms() + WAIT_MS;
    while (taken < REMOTE_MAX && it_now_ms() < until) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            int c = accept(lfd, NULL, NULL);
            taken += c >= 0;
            if (c >= 0) close(c);
        }
    }
    IT_CHECK(taken == REMOTE_MAX, "b opened %d connections to z", taken);
    close(lfd);
    char buf[1024] = "";
    size_t got = 0;
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    while (got < sizeof buf - 1 && !strstr(buf, "\r\n\r\n{") && poll(&p, 1, WAIT_MS) == 1) {
        ssize_t k = recv(fds[0], buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = '\0';
    }
    IT_CHECK(strstr(buf, "HTTP/1.1 503") && strstr(buf, "node z "), "answer: %s", buf);
    for (int i = 0; i < REMOTE_MAX; i++) close(fds[i]);
    IT_CHECK(it_server_stop(&b, SIGTERM, 10000) == 0, "b did not exit cleanly");
    it_server_cleanup(&b);
}

/* ---- without CLUSTER_SECRET: the client's own credentials ---- */

static void without_secret(void)
{
    const char *aargs[] = {"--node-id", "a", NULL};
    if (!it_server_up(&a, aargs)) return;
    char peers[128];
    snprintf(peers, sizeof peers, "a=%s", a.url);
    const char *bargs[] = {"--node-id", "b", "--node-peers", peers, NULL};
    if (!it_server_up(&b, bargs)) return;
    held_by_a(SID, 4096, true);
    const char *target = "/api/v1/calls/" SID "/recording.wav";
    it_resp r;
    /* b's token is not in a's store: a refuses it, b says why */
    IT_CHECK(get(&b, target, NULL, &r) == 502, "a token a does not know: %d", r.status);
    IT_CHECK(
        strstr(it_str(cJSON_GetObjectItem(r.json, "error"), "message"), "without CLUSTER_SECRET"),
        "said: %s", r.body);
    it_resp_free(&r);
    /* a store they share knows it (here: b's token copied into a's) */
    char sql[1024];
    snprintf(sql, sizeof sql,
             "ATTACH '%s' AS b; INSERT INTO api_tokens SELECT 'from-b', token_hash, created_at "
             "FROM b.api_tokens WHERE name = 'it'",
             it_db(&b));
    IT_CHECK(it_sql_exec(it_db(&a), sql) == 0, "cannot copy the token");
    IT_CHECK(get(&b, target, NULL, &r) == 200 && r.body_len == 4096, "a shared token: %d",
             r.status);
    it_resp_free(&r);
    /* a signature means nothing to a node without the secret */
    char v[CS_NODESIG_VALUE_MAX + 1];
    cs_nodesig_sign(v, sizeof v, SECRET, "GET", cs_str_of(target), "b", (int64_t)time(NULL));
    IT_CHECK(signed_get(target, v) == 401, "a signed request without credentials");
    stop_pair();
}

/* ---- holders that answer badly ---- */

/* A node answering each of `n` requests with `answer` and hanging up, in a child process. */
static pid_t odd_holder(int lfd, const char *answer, int n)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    for (int i = 0; i < n; i++) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) _exit(1);
        char buf[4096];
        if (recv(c, buf, sizeof buf, 0) <= 0 || send(c, answer, strlen(answer), 0) < 0) _exit(1);
        close(c);
    }
    _exit(0);
}

static void odd_holders(void)
{
    int lfd;
    if (!b_with_node_z(&lfd)) return;
    const char *target = "/api/v1/calls/" SID "/recording.wav";
    it_resp r;
    /* no length: refused, said */
    pid_t z = odd_holder(lfd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc", 1);
    IT_CHECK(get(&b, target, NULL, &r) == 502, "no length: %d", r.status);
    IT_CHECK(strstr(it_str(cJSON_GetObjectItem(r.json, "error"), "message"), "Content-Length"),
             "said: %s", r.body);
    it_resp_free(&r);
    waitpid(z, NULL, 0);
    /* cut short: the client's answer is cut short too (it sees the connection end) */
    z = odd_holder(lfd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", 1);
    IT_CHECK(get(&b, target, NULL, &r) == 200 && r.body_len == 3, "cut: %d, %zu bytes", r.status,
             r.body_len);
    IT_CHECK(strstr(r.head, "Content-Length: 100") != NULL, "head: %s", r.head);
    it_resp_free(&r);
    waitpid(z, NULL, 0);
    IT_CHECK(it_log_count(&b, "from node z cut short") == 1, "not logged");
    close(lfd);
    IT_CHECK(it_server_stop(&b, SIGTERM, 10000) == 0, "b did not exit cleanly");
    it_server_cleanup(&b);
}

/* ---- /ready and /status ---- */

/* /ready on b: its status, and when 503, which part fails. */
typedef struct ready_want {
    int status;
    const char *store, *bus;
} ready_want;

static bool ready_is(void *data)
{
    const ready_want *want = data;
    it_resp r;
    as(&b);
    int status = it_http(b.port, "GET", "/ready", NULL, NULL, &r) == 0 ? r.status : -1;
    bool ok = status == want->status && !strcmp(it_str(r.json, "store"), want->store) &&
              !strcmp(it_str(r.json, "bus"), want->bus);
    it_resp_free(&r);
    /* a query notices the store fails (an idle store has nothing else to fail) */
    if (!ok) {
        as(&b);
        it_http(b.port, "GET", "/api/v1/calls", NULL, NULL, &r);
        it_resp_free(&r);
    }
    return ok;
}

/* ---- through the directory: two nodes sharing Redis and PostgreSQL ---- */

static rs_server redis;
static pg_server pg;

static bool b_sees_a(void *calls)
{
    as(&b);
    cJSON *st = it_get_json(b.port, "/status");
    const cJSON *peer = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "peers"), 0);
    bool ok = !strcmp(it_str(cJSON_GetObjectItem(st, "node"), "id"), "b") &&
              cJSON_GetArraySize(cJSON_GetObjectItem(st, "peers")) == 1 &&
              !strcmp(it_str(peer, "id"), "a") && !strcmp(it_str(peer, "url"), a.url) &&
              it_num(peer, "calls") == *(int *)calls && it_str(peer, "last_seen")[0] == '2' &&
              cJSON_IsFalse(cJSON_GetObjectItem(st, "peers_partial"));
    cJSON_Delete(st);
    return ok;
}

/* The ended call's row has its finished recording (a's file), held by a. */
static bool recorded_by_a(void *data)
{
    (void)data;
    as(&b);
    cJSON *c = it_call(b.port, LIVE);
    bool ok = c && cJSON_IsFalse(cJSON_GetObjectItem(c, "live")) &&
              cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "recording"),
                                                 "duration_ms")); /* finished */
    cJSON_Delete(c);
    return ok;
}

static void through_directory(void)
{
    memset(&redis, 0, sizeof redis);
    IT_CHECK(rs_start(&redis) == 0, "no Redis server");
    char url[256];
    IT_CHECK(pg_server_start(&pg) == 0 && pg_server_database(&pg, url, sizeof url) == 0,
             "no PostgreSQL server");
    if (!redis.pid || !pg.up) return;
    setenv("DATABASE_URL", url, 1); /* both nodes, and the command making the API token */
    const char *common[] = {"--redis-url",         redis.url, "--cluster-secret", SECRET,
                            "--node-heartbeat-ms", "200",     "--node-ttl-ms",    "2000"};
    const char *args[16] = {"--node-id", "a", "--node-url"};
    if (it_server_prepare(&a) < 0 || it_server_join_prepare(&b, &a) < 0) return;
    args[3] = a.url;
    memcpy(args + 4, common, sizeof common);
    IT_CHECK(it_server_restart(&a, args) == 0, "a did not start");
    args[1] = "b";
    args[3] = b.url;
    IT_CHECK(it_server_restart(&b, args) == 0, "b did not start");

    /* a call live on a: b lists a among its peers with it, and serves its recording */
    it_ws w;
    int rc = it_media_start(&w, a.port, LIVE, STREAM);
    IT_CHECK(rc == 0, "upgrade refused (%d)", rc);
    uint64_t seq = 2;
    for (int k = 0; k < 50 && rc == 0; k++, seq++)
        rc = it_media_frame(&w, STREAM, seq, (seq - 2) * 20, 0x20, 160);
    int one = 1, none = 0;
    IT_CHECK(it_until(b_sees_a, &one, WAIT_MS), "b's /status does not show a with its call");
    live_get lg = {.more_than = CS_WAV_HEADER_LEN};
    IT_CHECK(it_until(live_served, &lg, WAIT_MS), "b does not serve a's live recording");
    IT_CHECK(it_media_stop(&w, LIVE, STREAM, seq) == 1000, "stop did not end with 1000");
    it_ws_close(&w);
    IT_CHECK(it_until(recorded_by_a, NULL, WAIT_MS), "the call's recording is not stored");
    IT_CHECK(it_until(b_sees_a, &none, WAIT_MS), "b's /status still shows a's call");

    /* ended: the file a holds, whole, and a range of it, through b */
    it_resp r;
    const char *target = "/api/v1/calls/" LIVE "/recording.wav";
    IT_CHECK(get(&b, target, NULL, &r) == 200, "b: %d %s", r.status, r.body);
    FILE *f = fopen(it_recording(&a, LIVE), "rb");
    char *disk = malloc(r.body_len + 1);
    size_t n = f && disk ? fread(disk, 1, r.body_len + 1, f) : 0;
    if (f) fclose(f);
    IT_CHECK(n == r.body_len && n > CS_WAV_HEADER_LEN && !memcmp(disk, r.body, n),
             "b's answer is not a's file (%zu bytes of %zu)", r.body_len, n);
    it_resp_free(&r);
    IT_CHECK(get(&b, target, "Range: bytes=44-143\r\n", &r) == 206 && r.body_len == 100 &&
                 n > 144 && !memcmp(disk + 44, r.body, 100),
             "range: %d, %zu bytes", r.status, r.body_len);
    it_resp_free(&r);
    free(disk);
    IT_CHECK(it_metric(b.port, "callstream_recordings_remote_total") >= 2, "not counted");

    /* Redis away: b is not ready, and its view of the cluster is partial; then it heals */
    rs_kill(&redis);
    ready_want no_bus = {503, "ok", "unreachable"}, ok = {200, "ok", "ok"};
    IT_CHECK(it_until(ready_is, &no_bus, WAIT_MS), "/ready does not say the bus is away");
    as(&b);
    cJSON *st = it_get_json(b.port, "/status");
    IT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(st, "peers_partial")), "not partial");
    cJSON_Delete(st);
    IT_CHECK(rs_start(&redis) == 0, "Redis did not start again");
    IT_CHECK(it_until(ready_is, &ok, WAIT_MS), "/ready is not 200 once Redis is back");
    IT_CHECK(it_until(b_sees_a, &none, WAIT_MS), "b does not see a again");

    /* a killed: once the directory forgets it, b says it cannot reach it, and since when */
    IT_CHECK(it_server_stop(&a, SIGKILL, 10000) == -1, "a was not killed");
    IT_CHECK(get(&b, target, NULL, &r) == 503, "a dead: %d", r.status);
    IT_CHECK(strstr(it_str(cJSON_GetObjectItem(r.json, "error"), "message"), "node a "), "said: %s",
             r.body);
    it_resp_free(&r);
    IT_CHECK(it_server_stop(&b, SIGTERM, 10000) == 0, "b did not exit cleanly");
    it_server_cleanup(&b);
    it_server_cleanup(&a);

    /* a node of a cluster without CLUSTER_SECRET says so at start (its own store) */
    unsetenv("DATABASE_URL");
    const char *open_args[] = {"--node-id", "c", "--redis-url", redis.url, NULL};
    if (it_server_up(&a, open_args)) {
        IT_CHECK(it_log_count(&a, "CLUSTER_SECRET is not set") == 1, "no warning");
        IT_CHECK(it_server_stop(&a, SIGTERM, 10000) == 0, "c did not exit cleanly");
        it_server_cleanup(&a);
    }
    unsetenv("DATABASE_URL");
    pg_server_destroy(&pg);
    rs_stop(&redis);
}

static void bad_peers(void)
{
    static const char *const bad[] = {"a", "=http://x", "a=ftp://x", "a=http://x,b", "a=x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *args[] = {"--node-peers", bad[i], NULL};
        it_refused(args, "NODE_PEERS: '");
    }
}

static void ready_and_status(void)
{
    if (!start_pair()) return;
    ready_want ok = {200, "ok", "ok"}, refused = {503, "failing", "ok"};
    IT_CHECK(ready_is(&ok), "/ready is not 200 to begin with");
    pid_t holder = db_hold(it_db(&b), DB_HOLD_READS);
    IT_CHECK(holder > 0, "cannot lock the readers of b's database");
    IT_CHECK(it_until(ready_is, &refused, 60000), "/ready does not say the store fails");
    db_release(holder);
    IT_CHECK(it_until(ready_is, &ok, 60000), "/ready is not 200 once the store is back");
    IT_CHECK(it_metric(b.port, "callstream_ready_refused_total") >= 1, "not counted");
    /* /health stays liveness meanwhile: the process answers */

    as(&b);
    cJSON *st = it_get_json(b.port, "/status");
    const cJSON *node = cJSON_GetObjectItem(st, "node");
    IT_CHECK(!strcmp(it_str(node, "id"), "b"), "node: %s", it_str(node, "id"));
    IT_CHECK(it_num(node, "loops") >= 1, "loops");
    IT_CHECK(it_str(node, "started_at")[0] == '2', "started_at");
    IT_CHECK(cJSON_IsArray(cJSON_GetObjectItem(st, "peers")), "no peers");
    IT_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(st, "peers_partial")), "partial");
    cJSON_Delete(st);
    stop_pair();
}

int main(int argc, char **argv)
{
    static const it_case cases[] = {
        {"recording_across_nodes", recording_across_nodes},
        {"live_recording", live_recording},
        {"node_signatures", node_signatures},
        {"slow_client", slow_client},
        {"remote_limit", remote_limit},
        {"without_secret", without_secret},
        {"odd_holders", odd_holders},
        {"bad_peers", bad_peers},
        {"through_directory", through_directory},
        {"ready_and_status", ready_and_status},
    };
    return it_run("ops", cases, sizeof cases / sizeof *cases, argc, argv);
}
