#include "integ_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audio/g711.h"
#include "audio/vad.h"
#include "audio/wav.h"
#include "core/crypto.h"
#include "net/form.h"
#include "net/http.h"
#include "provider/twilio.h"
#include "provider/twilio_sig.h"
#include "sim/sim.h"

#define START_WAIT_MS 60000 /* decoders load before the gateway listens: slow on a busy machine */
#define IO_WAIT_MS    10000
#define MAX_ARGS      64

int it_failures;
char it_auth[128];

void it_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    it_failures++;
    fprintf(stderr, "FAIL %s:%d: %s: ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int it_done(const char *name)
{
    if (it_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, it_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

int it_run(const char *name, const it_case *cases, size_t n, int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < n; i++) {
        bool chosen = argc < 2;
        for (int a = 1; a < argc; a++) chosen = chosen || strcmp(argv[a], cases[i].name) == 0;
        if (!chosen) continue;
        printf("%s: %s\n", name, cases[i].name);
        fflush(stdout);
        cases[i].run();
    }
    return it_done(name);
}

char *it_repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long it_now_ms(void)
{
    return now_ms();
}

long long it_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

long long it_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool it_until(bool (*cond)(void *data), void *data, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (cond(data)) return true;
        if (now_ms() > deadline) return cond(data);
        it_sleep_ms(20);
    }
}

static const char *bin(void)
{
    const char *b = getenv("CS_BIN");
    return b ? b : "./callstream";
}

/* ---- sockets ---- */

int it_tcp(int port, const char *from, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (fd >= 0 && from) {
        struct sockaddr_in b = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, from, &b.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&b, sizeof b) < 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int connect_to(int port)
{
    return it_tcp(port, NULL, 0);
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

#define TIMED_OUT (-2)

/* Reads what is available within timeout_ms into b: bytes read, 0 at the end, -1 on an
 * error, TIMED_OUT. */
static ssize_t read_some(int fd, cs_buf *b, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0) return TIMED_OUT;
    if (r < 0) return -1;
    char *dst = cs_buf_space(b, 65536);
    if (!dst) return -1;
    ssize_t k = recv(fd, dst, 65536, 0);
    if (k > 0) cs_buf_commit(b, (size_t)k);
    return k;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---- the server ---- */

static int launch(it_server *s, const char *const *args)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    /* No transcription unless a test asks (its flags come later and win). */
    const char *argv[MAX_ARGS] = {bin(), "serve",      "--env-file", "/dev/null", "--port",
                                  port,  "--data-dir", s->data,      "--stt",     "none"};
    size_t n = 10;
    for (size_t i = 0; args && args[i] && n + 1 < MAX_ARGS; i++) argv[n++] = args[i];
    argv[n] = NULL;
    /* Ready means a new "listening on" line (a restart appends to the same log). */
    int before = it_log_count(s, "listening on");
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (s->nofile > 0) {
            struct rlimit rl = {(rlim_t)s->nofile, (rlim_t)s->nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(126);
        }
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    long long deadline = now_ms() + START_WAIT_MS;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "the server exited at start-up; its log:\n");
            char cmd[400];
            snprintf(cmd, sizeof cmd, "cat %s >&2", s->log);
            if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
            s->pid = 0;
            return -1;
        }
        if (it_log_count(s, "listening on") > before) return 0;
        it_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s->pid = 0;
    return -1;
}

void it_refused(const char *const *args, const char *why)
{
    it_server s;
    IT_CHECK(it_server_start(&s, args) < 0, "started despite: %s", why);
    IT_CHECK(it_log_count(&s, why) == 1, "no '%s' in the log", why);
    it_server_cleanup(&s);
}

int it_cli(const it_server *s, const char *args, const char *input, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s --data-dir %s --env-file /dev/null %s 2>>%s", bin(), args,
             s->data, input ? "" : "</dev/null", s->log);
    FILE *f = popen(cmd, input ? "w" : "r");
    if (!f) return -1;
    if (input) {
        fputs(input, f);
    } else {
        char line[256];
        if (out && cap) out[0] = '\0';
        for (bool first = true; fgets(line, sizeof line, f); first = false)
            if (first && out && cap) snprintf(out, cap, "%.*s", (int)strcspn(line, "\n"), line);
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int it_server_start(it_server *s, const char *const *args)
{
    return it_server_start_nofile(s, args, 0);
}

bool it_server_up(it_server *s, const char *const *args)
{
    bool ok = it_server_start(s, args) == 0;
    IT_CHECK(ok, "the server did not start");
    return ok;
}

int it_server_start_nofile(it_server *s, const char *const *args, int nofile)
{
    if (it_server_prepare(s) < 0) return -1;
    s->nofile = nofile;
    return launch(s, args);
}

/* Its temp dir, DATA_DIR's path and a port. */
static int make_dirs(it_server *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/callstream-it-XXXXXX");
    if (!mkdtemp(s->dir)) return -1;
    snprintf(s->data, sizeof s->data, "%s/data", s->dir);
    snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
    s->port = free_port();
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    return 0;
}

int it_server_join_prepare(it_server *s, const it_server *like)
{
    if (make_dirs(s) < 0) return -1;
    snprintf(s->token, sizeof s->token, "%s", like->token);
    return 0;
}

int it_server_join(it_server *s, const it_server *like, const char *const *args)
{
    if (it_server_join_prepare(s, like) < 0) return -1;
    return launch(s, args);
}

int it_server_prepare(it_server *s)
{
    if (make_dirs(s) < 0) return -1;
    if (it_cli(s, "token create it", NULL, s->token, sizeof s->token) != 0 || !s->token[0]) {
        fprintf(stderr, "cannot create an API token for the test\n");
        return -1;
    }
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", s->token);
    return 0;
}

int it_server_restart(it_server *s, const char *const *args)
{
    return launch(s, args);
}

int it_server_stop(it_server *s, int sig, int timeout_ms)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    long long deadline = now_ms() + timeout_ms;
    int status = 0;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            s->pid = 0;
            return -1;
        }
        it_sleep_ms(20);
    }
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void it_admin_password(const it_server *s, char *out, size_t cap)
{
    FILE *f = fopen(s->log, "r");
    char line[8192];
    const char *mark = "created 'admin' with password ";
    out[0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, mark);
        if (p)
            snprintf(out, cap, "%.*s", (int)strspn(p + strlen(mark), "0123456789abcdef"),
                     p + strlen(mark));
    }
    if (f) fclose(f);
}

int it_session(const it_server *s, char *out, size_t cap)
{
    char pw[64];
    it_admin_password(s, pw, sizeof pw);
    return it_sign_in(s, "admin", pw, out, cap);
}

int it_sign_in(const it_server *s, const char *user, const char *password, char *out, size_t cap)
{
    const char *names[] = {"username", "password"}, *values[] = {user, password};
    cs_buf form = CS_BUF_INIT(4096);
    cs_form_write(&form, names, values, 2);
    char body[4096];
    snprintf(body, sizeof body, "%.*s", (int)form.len, form.data ? form.data : "");
    cs_buf_free(&form);
    it_resp r;
    int rc = it_http_browser(s->port, "POST", "/login",
                             "Content-Type: application/x-www-form-urlencoded\r\nAccept: "
                             "application/json\r\n",
                             body, &r);
    const char *c = rc == 0 && r.status == 200 ? it_header(&r, "Set-Cookie") : NULL;
    const char *v = c ? strstr(c, "cs_session=") : NULL;
    if (v) snprintf(out, cap, "Cookie: %.*s\r\n", (int)strcspn(v, ";\r\n"), v);
    it_resp_free(&r);
    return v ? 0 : -1;
}

int it_tls_cert(const it_server *s, char *cert, char *key, size_t cap)
{
    char cmd[1400];
    snprintf(cert, cap, "%s/cert.pem", s->dir);
    snprintf(key, cap, "%s/key.pem", s->dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s -out %s 2>/dev/null",
             key, cert);
    return system(cmd) == 0 ? 0 : -1;
}

int it_log_count(const it_server *s, const char *needle)
{
    FILE *f = fopen(s->log, "r");
    if (!f) return 0;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

void it_server_cleanup(it_server *s)
{
    if (s->pid > 0) it_server_stop(s, SIGKILL, 2000);
    if (it_failures || getenv("CS_KEEP")) {
        fprintf(stderr, "kept %s for a look (server log: %s)\n", s->dir, s->log);
        return;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", s->dir);
}

/* ---- HTTP ---- */

/* Whether `in` holds a whole answer: a head, and as much body as Content-Length says. */
static bool answer_complete(const cs_buf *in)
{
    cs_http_resp resp;
    int n = in->len ? cs_http_parse_response(in->data, in->len, 65536, &resp) : 0;
    if (n < 0) return true;
    return n > 0 && resp.has_content_length && in->len - (size_t)n >= resp.content_length;
}

int it_http_raw(int port, const void *req, size_t len, it_resp *r)
{
    memset(r, 0, sizeof *r);
    int fd = connect_to(port);
    if (fd < 0) return -1;
    cs_buf in = CS_BUF_INIT(64u << 20);
    int rc = send_all(fd, req, len);
    /* One answer: to its Content-Length, or to the end of the connection. A server that
     * answers early may reset the rest of what we sent; what it said still counts. */
    while (!answer_complete(&in) && read_some(fd, &in, IO_WAIT_MS) > 0) {
    }
    close(fd);
    char *sep = in.data ? strstr(in.data, "\r\n\r\n") : NULL;
    if (!sep) {
        if (rc < 0) fprintf(stderr, "it_http_raw: the request could not be sent\n");
        cs_buf_free(&in);
        return -1;
    }
    size_t head = (size_t)(sep - in.data);
    snprintf(r->head, sizeof r->head, "%.*s", (int)head, in.data);
    sscanf(r->head, "HTTP/1.%*d %d", &r->status);
    r->body_len = in.len - head - 4;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    r->json = cJSON_Parse(r->body);
    cs_buf_free(&in);
    return 0;
}

int it_http_leave(int port, const void *req, size_t len)
{
    int fd = connect_to(port);
    if (fd < 0) return -1;
    int rc = send_all(fd, req, len);
    close(fd);
    return rc;
}

static int request(int port, const char *method, const char *target, const char *auth,
                   const char *headers, const char *body, it_resp *r)
{
    cs_buf req = CS_BUF_INIT(1u << 24);
    cs_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s", method,
                  target, port, auth, headers ? headers : "");
    if (body) cs_buf_printf(&req, "Content-Length: %zu\r\n", strlen(body));
    cs_buf_puts(&req, "\r\n");
    if (body) cs_buf_puts(&req, body);
    int rc = it_http_raw(port, req.data, req.len, r);
    cs_buf_free(&req);
    return rc;
}

int it_http(int port, const char *method, const char *target, const char *headers, const char *body,
            it_resp *r)
{
    return request(port, method, target, it_auth, headers, body, r);
}

int it_http_browser(int port, const char *method, const char *target, const char *headers,
                    const char *body, it_resp *r)
{
    return request(port, method, target, "", headers, body, r);
}

void it_resp_free(it_resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    r->body = NULL;
    r->json = NULL;
}

const char *it_header(const it_resp *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->head; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') return p;
    }
    return NULL;
}

const char *it_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int it_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

cJSON *it_get_json(int port, const char *target)
{
    it_resp r;
    if (it_http(port, "GET", target, NULL, NULL, &r) < 0) return NULL;
    cJSON *j = r.status == 200 ? r.json : NULL;
    if (j) r.json = NULL;
    it_resp_free(&r);
    return j;
}

cJSON *it_live_stream(int port, const char *sid, bool (*ready)(const cJSON *stream), int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    do {
        cJSON *all = it_get_json(port, "/streams");
        const cJSON *st;
        cJSON_ArrayForEach(st, cJSON_GetObjectItem(all, "streams"))
        {
            const cJSON *id = cJSON_GetObjectItem(st, "stream_sid");
            if (cJSON_IsString(id) && strcmp(id->valuestring, sid) == 0 && (!ready || ready(st))) {
                cJSON *copy = cJSON_Duplicate(st, true);
                cJSON_Delete(all);
                return copy;
            }
        }
        cJSON_Delete(all);
        it_sleep_ms(20);
    } while (now_ms() < deadline);
    return NULL;
}

double it_metric_in(const char *text, size_t len, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text, *end = text + len; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        if ((size_t)(eol - line) > n && memcmp(line, series, n) == 0 && line[n] == ' ') {
            char num[64]; /* the text need not end with a NUL */
            snprintf(num, sizeof num, "%.*s", (int)(eol - line - n - 1), line + n + 1);
            return strtod(num, NULL);
        }
        line = eol + 1;
    }
    return -1;
}

double it_metric(int port, const char *series)
{
    it_resp r;
    if (it_http(port, "GET", "/metrics", NULL, NULL, &r) < 0) return -1;
    double v = r.body ? it_metric_in(r.body, r.body_len, series) : -1;
    it_resp_free(&r);
    return v;
}

cJSON *it_call(int port, const char *sid)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%.64s", sid);
    cJSON *doc = it_get_json(port, target);
    cJSON *call = cJSON_DetachItemFromObject(doc, "call");
    cJSON_Delete(doc);
    return call;
}

cJSON *it_call_events_at_least(int port, const char *sid, const char *type, int n,
                               int timeout_ms)
{
    cJSON *c = NULL;
    for (long long end = now_ms() + timeout_ms;; it_sleep_ms(100)) {
        cJSON_Delete(c);
        c = it_call(port, sid);
        if (it_events(c, type, NULL) >= n || now_ms() > end) return c;
    }
}

long long it_events_in_order(int port, const char *sid)
{
    char target[160], last[32] = "";
    long long after = 0, n = 0;
    bool ordered = true, more = true;
    while (more) {
        snprintf(target, sizeof target, "/api/v1/calls/%s/events?limit=7&after=%lld", sid, after);
        cJSON *j = it_get_json(port, target);
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events"))
        {
            const char *at = it_str(e, "at"); /* ISO 8601, all of one width */
            if (strcmp(at, last) < 0) ordered = false;
            snprintf(last, sizeof last, "%s", at);
            n++;
        }
        const cJSON *next = cJSON_GetObjectItem(j, "next_after");
        more = j && cJSON_IsNumber(next);
        if (more) after = (long long)next->valuedouble;
        cJSON_Delete(j);
    }
    return ordered ? n : -1;
}

cJSON *it_call_recorded(int port, const char *sid, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    do {
        cJSON *call = it_call(port, sid);
        const cJSON *rec = cJSON_GetObjectItem(call, "recording");
        if (cJSON_IsNumber(cJSON_GetObjectItem(rec, "duration_ms"))) return call;
        cJSON_Delete(call);
        it_sleep_ms(50);
    } while (now_ms() < deadline);
    return NULL;
}

void it_transcript(int port, const char *sid, const char *speaker, char *out, size_t cap)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/transcript", sid);
    cJSON *j = it_get_json(port, target);
    size_t n = 0;
    out[0] = '\0';
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(j, "segments"))
    {
        const char *who = it_str(g, "speaker");
        if (speaker && strcmp(who, speaker) != 0) continue;
        int w = speaker ? snprintf(out + n, cap - n, "%s%s", n ? " | " : "", it_str(g, "text"))
                        : snprintf(out + n, cap - n, "%s%s%s:%s", n ? " | " : "", who,
                                   cJSON_IsTrue(cJSON_GetObjectItem(g, "cut")) ? "[cut]" : "",
                                   it_str(g, "text"));
        if (w > 0 && (size_t)w < cap - n) n += (size_t)w;
    }
    cJSON_Delete(j);
}

bool it_call_from(int port, const char *from, char *sid, size_t cap, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    do {
        cJSON *j = it_get_json(port, "/api/v1/calls");
        const cJSON *c;
        bool found = false;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "calls"))
        {
            if (strcmp(it_str(c, "from"), from) == 0) {
                snprintf(sid, cap, "%s", it_str(c, "sid"));
                found = true;
            }
        }
        cJSON_Delete(j);
        if (found) return true;
        it_sleep_ms(50);
    } while (now_ms() < deadline);
    return false;
}

cJSON *it_call_ended(int port, const char *sid, int timeout_ms)
{
    long long deadline = it_now_ms() + timeout_ms;
    do {
        cJSON *call = it_call(port, sid);
        if (cJSON_IsString(cJSON_GetObjectItem(call, "ended_at"))) return call;
        cJSON_Delete(call);
        it_sleep_ms(50);
    } while (it_now_ms() < deadline);
    return NULL;
}

int it_events(const cJSON *call, const char *type, const char *sub)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        n += !strcmp(it_str(e, "type"), type) && (!sub || !strcmp(it_str(d, "type"), sub));
    }
    return n;
}

int it_call_events(const cJSON *call, const char *type, const char *state)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *t = cJSON_GetObjectItem(e, "type");
        const cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "detail"), "state");
        n += cJSON_IsString(t) && strcmp(t->valuestring, type) == 0 &&
             (!state || (cJSON_IsString(st) && strcmp(st->valuestring, state) == 0));
    }
    return n;
}

/* ---- the simulator ---- */

static void sim_command(char *out, size_t cap, const it_server *s, const char *fmt, va_list ap)
{
    /* exec: the pid it_sim_spawn returns is the simulator's own, which a test may kill */
    int n = snprintf(out, cap, "exec %s sim --url %s ", bin(), s->url);
    vsnprintf(out + n, cap - (size_t)n, fmt, ap);
}

static cJSON *read_summary(FILE *f)
{
    cs_buf out = CS_BUF_INIT(1u << 20);
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) cs_buf_append(&out, chunk, k);
    cJSON *j = out.data ? cJSON_Parse(out.data) : NULL;
    if (!j) fprintf(stderr, "sim printed no summary: %s\n", out.data ? out.data : "(nothing)");
    cs_buf_free(&out);
    return j;
}

cJSON *it_sim(const it_server *s, int *exit_status, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    sim_command(cmd, sizeof cmd, s, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    cJSON *j = read_summary(f);
    int st = pclose(f);
    if (exit_status) *exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return j;
}

int it_sim_err(const it_server *s, char *err, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    sim_command(cmd, sizeof cmd - 32, s, fmt, ap);
    va_end(ap);
    strcat(cmd, " 2>&1 >/dev/null");
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char line[1024];
    if (cap) err[0] = '\0';
    for (bool first = true; fgets(line, sizeof line, f); first = false)
        if (first && cap) snprintf(err, cap, "%.*s", (int)strcspn(line, "\n"), line);
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t it_sim_spawn(const it_server *s, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    sim_command(cmd, sizeof cmd, s, fmt, ap);
    va_end(ap);
    /* The summary goes to a file named after the child, read by it_sim_wait. */
    pid_t pid = fork();
    if (pid == 0) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/callstream-it-sim-%d.json", (int)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

cJSON *it_sim_wait(pid_t pid, int *exit_status)
{
    int st;
    if (waitpid(pid, &st, 0) != pid) return NULL;
    if (exit_status) *exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char path[64];
    snprintf(path, sizeof path, "/tmp/callstream-it-sim-%d.json", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    cJSON *j = read_summary(f);
    fclose(f);
    unlink(path);
    return j;
}

cJSON *it_command(int *exit_status, char *err, size_t cap, const char *fmt, ...)
{
    char cmd[8192], errpath[64];
    snprintf(errpath, sizeof errpath, "/tmp/callstream-it-err-%d.txt", (int)getpid());
    int n = snprintf(cmd, sizeof cmd, "exec %s ", bin());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " 2>%s", errpath);
    *exit_status = -1;
    if (cap) err[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    cs_buf out = CS_BUF_INIT(1u << 24);
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) cs_buf_append(&out, chunk, k);
    int st = pclose(f);
    *exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    cJSON *j = out.data ? cJSON_Parse(out.data) : NULL;
    cs_buf_free(&out);
    FILE *e = fopen(errpath, "r");
    char line[1024];
    if (e && fgets(line, sizeof line, e) && cap)
        snprintf(err, cap, "%.*s", (int)strcspn(line, "\n"), line);
    if (e) fclose(e);
    unlink(errpath);
    return j;
}

/* ---- WebSocket ---- */

int it_ws_connect(it_ws *w, int port, const char *path, const char *extra)
{
    return it_ws_connect_buffered(w, port, path, extra, 0);
}

int it_ws_connect_buffered(it_ws *w, int port, const char *path, const char *extra, int rcvbuf)
{
    memset(w, 0, sizeof *w);
    cs_buf_init(&w->in, 1u << 22);
    cs_ws_reader_init(&w->reader, CS_WS_CLIENT, 1u << 20);
    w->fd = it_tcp(port, NULL, rcvbuf);
    if (w->fd < 0) return -1;
    char key[25];
    cs_ws_client_key(key);
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    cs_buf req = CS_BUF_INIT(65536);
    cs_ws_write_client_upgrade(&req, host, path, key, extra);
    int rc = send_all(w->fd, req.data, req.len);
    cs_buf_free(&req);
    if (rc < 0) return -1;
    long long deadline = now_ms() + IO_WAIT_MS;
    for (;;) {
        cs_http_resp resp;
        int n = w->in.len ? cs_http_parse_response(w->in.data, w->in.len, 65536, &resp) : 0;
        if (n < 0) return -1;
        if (n > 0) {
            int ok = cs_ws_check_accept(&resp, key) == 0;
            cs_buf_consume(&w->in, (size_t)n);
            return ok ? 0 : resp.status;
        }
        if (now_ms() > deadline || read_some(w->fd, &w->in, IO_WAIT_MS) <= 0) return -1;
    }
}

int it_ws_send(it_ws *w, enum cs_ws_op op, const void *data, size_t len)
{
    uint8_t mask[4];
    cs_random(mask, sizeof mask);
    cs_buf frame = CS_BUF_INIT(1u << 26);
    int rc = cs_ws_write_frame(&frame, op, data, len, mask);
    if (rc == 0) rc = send_all(w->fd, frame.data, frame.len);
    cs_buf_free(&frame);
    return rc;
}

int it_ws_send_text(it_ws *w, const char *text)
{
    return it_ws_send(w, CS_WS_OP_TEXT, text, strlen(text));
}

int it_ws_send_raw(it_ws *w, const void *bytes, size_t n)
{
    return send_all(w->fd, bytes, n);
}

int it_ws_next(it_ws *w, cs_ws_event *ev, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (w->in.len) {
            ssize_t k = cs_ws_read(&w->reader, w->in.data, w->in.len, ev);
            if (k < 0) return -1;
            if (k > 0 || ev->type != CS_WS_EV_NONE) {
                /* The event may point into w->in: keep the bytes until the next call. */
                if (ev->type != CS_WS_EV_NONE) {
                    static char keep[1 << 20];
                    size_t n = ev->len < sizeof keep ? ev->len : sizeof keep;
                    if (ev->data) memcpy(keep, ev->data, n);
                    ev->data = keep;
                    ev->len = n;
                    cs_buf_consume(&w->in, (size_t)k);
                    return 1;
                }
                cs_buf_consume(&w->in, (size_t)k);
                continue;
            }
        }
        long long left = deadline - now_ms();
        if (left <= 0) return 0;
        ssize_t r = read_some(w->fd, &w->in, (int)left);
        if (r == TIMED_OUT) return 0;
        if (r <= 0) return -1;
    }
}

int it_ws_send_frames(it_ws *w, const void *data, size_t len, const size_t *sizes, size_t nsizes,
                      int pause_ms)
{
    const uint8_t *p = data;
    for (size_t off = 0, i = 0; off < len; i++) {
        size_t n = sizes[i % nsizes] < len - off ? sizes[i % nsizes] : len - off;
        if (it_ws_send(w, CS_WS_OP_BINARY, p + off, n) < 0) return -1;
        off += n;
        if (pause_ms) it_sleep_ms(pause_ms);
    }
    return 0;
}

size_t it_ws_recv_binary(it_ws *w, int timeout_ms, size_t *frames, size_t *odd, size_t *texts)
{
    size_t bytes = 0, nf = 0, no = 0, nt = 0;
    long long deadline = now_ms() + timeout_ms;
    cs_ws_event ev;
    for (long long left; (left = deadline - now_ms()) > 0;) {
        if (it_ws_next(w, &ev, (int)left) != 1 || ev.type == CS_WS_EV_CLOSE) break;
        if (ev.type != CS_WS_EV_MESSAGE) continue;
        if (ev.opcode == CS_WS_OP_TEXT) {
            nt++;
            continue;
        }
        bytes += ev.len;
        nf++;
        no += ev.len % 2;
    }
    if (frames) *frames = nf;
    if (odd) *odd = no;
    if (texts) *texts = nt;
    return bytes;
}

#define IT_ACCOUNT "AC00000000000000000000000000000000"

static int send_msg(it_ws *w, cs_buf *b)
{
    int rc = b->data ? it_ws_send_text(w, b->data) : -1;
    cs_buf_free(b);
    return rc;
}

int it_media_start(it_ws *w, int port, const char *call, const char *stream)
{
    int rc = it_ws_connect(w, port, "/twilio/media", NULL);
    return rc ? rc : it_media_begin(w, call, stream);
}

int it_media_begin(it_ws *w, const char *call, const char *stream)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_peer_connected(&b);
    send_msg(w, &b);
    cs_twilio_start st = {IT_ACCOUNT, call, stream, CS_TRACK_BIT(CS_TRACK_INBOUND), NULL, 0};
    cs_twilio_peer_start(&b, 1, &st);
    return send_msg(w, &b);
}

int it_media_frame(it_ws *w, const char *stream, uint64_t seq, uint64_t timestamp_ms, uint8_t code,
                   size_t n)
{
    uint8_t audio[1024];
    if (n > sizeof audio) return -1;
    memset(audio, code, n);
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_peer_media(&b, stream, seq, CS_TRACK_INBOUND, seq, timestamp_ms, audio, n);
    return send_msg(w, &b);
}

int it_media_stop(it_ws *w, const char *call, const char *stream, uint64_t seq)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_peer_stop(&b, stream, seq, IT_ACCOUNT, call);
    send_msg(w, &b);
    return it_ws_close_code(w, IO_WAIT_MS);
}

int it_ws_close_code(it_ws *w, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    cs_ws_event ev;
    while (now_ms() < deadline) {
        int r = it_ws_next(w, &ev, (int)(deadline - now_ms()));
        if (r < 0) return -1;
        if (r == 1 && ev.type == CS_WS_EV_CLOSE) return ev.close_code;
    }
    return -1;
}

int it_twilio_post(const it_server *s, const char *token, const char *target,
                   const char *const *names, const char *const *values, size_t n, char *out,
                   size_t cap)
{
    cs_buf form = CS_BUF_INIT(1u << 20);
    cs_form_write(&form, names, values, n);
    cs_kv params[64];
    if (n > sizeof params / sizeof *params) n = sizeof params / sizeof *params;
    for (size_t i = 0; i < n; i++) params[i] = (cs_kv){cs_str_of(names[i]), cs_str_of(values[i])};
    char url[2048], sig[CS_TWILIO_SIG_LEN + 1] = "", headers[256];
    snprintf(url, sizeof url, "%s%s", s->url, target);
    if (token) cs_twilio_sig_compute(sig, token, url, params, n);
    snprintf(headers, sizeof headers, "Content-Type: application/x-www-form-urlencoded\r\n%s%s%s",
             token ? "X-Twilio-Signature: " : "", sig, token ? "\r\n" : "");
    it_resp r;
    int status = it_http(s->port, "POST", target, headers, form.data ? form.data : "", &r) == 0
                     ? r.status
                     : -1;
    if (out) snprintf(out, cap, "%s", status > 0 && r.body ? r.body : "");
    it_resp_free(&r);
    cs_buf_free(&form);
    return status;
}

/* ---- Twilio's side of a ConversationRelay session ---- */

int it_relay_open(it_relay *r, int port, const char *token)
{
    memset(r, 0, sizeof *r);
    char extra[160] = "";
    if (token) {
        char url[96], sig[CS_TWILIO_SIG_LEN + 1];
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/twilio/relay", port);
        cs_twilio_sig_compute(sig, token, url, NULL, 0);
        snprintf(extra, sizeof extra, "X-Twilio-Signature: %s\r\n", sig);
    }
    return it_ws_connect(&r->ws, port, "/twilio/relay", extra);
}

static int relay_send(it_relay *r, cJSON *msg)
{
    char *text = cJSON_PrintUnformatted(msg);
    int rc = text ? it_ws_send_text(&r->ws, text) : -1;
    free(text);
    cJSON_Delete(msg);
    return rc;
}

static cJSON *relay_msg(const char *type)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", type);
    return m;
}

int it_relay_setup(it_relay *r, const char *session, const char *call, const char *params)
{
    cJSON *m = relay_msg("setup");
    cJSON_AddStringToObject(m, "sessionId", session);
    cJSON_AddStringToObject(m, "accountSid", IT_ACCOUNT);
    cJSON_AddStringToObject(m, "parentCallSid", "");
    cJSON_AddStringToObject(m, "callSid", call);
    cJSON_AddStringToObject(m, "from", "+15550100");
    cJSON_AddStringToObject(m, "to", "+15550101");
    cJSON_AddStringToObject(m, "forwardedFrom", "");
    cJSON_AddStringToObject(m, "callType", "PSTN");
    cJSON_AddStringToObject(m, "callerName", "");
    cJSON_AddStringToObject(m, "direction", "inbound");
    cJSON_AddStringToObject(m, "callStatus", "RINGING");
    cJSON *p = params ? cJSON_Parse(params) : cJSON_CreateObject();
    cJSON_AddItemToObject(m, "customParameters", p ? p : cJSON_CreateObject());
    return relay_send(r, m);
}

int it_relay_prompt(it_relay *r, const char *text, bool last)
{
    cJSON *m = relay_msg("prompt");
    cJSON_AddStringToObject(m, "voicePrompt", text);
    cJSON_AddStringToObject(m, "lang", "en-US");
    cJSON_AddBoolToObject(m, "last", last);
    return relay_send(r, m);
}

int it_relay_dtmf(it_relay *r, char digit)
{
    char d[2] = {digit, '\0'};
    cJSON *m = relay_msg("dtmf");
    cJSON_AddStringToObject(m, "digit", d);
    return relay_send(r, m);
}

int it_relay_interrupt(it_relay *r, const char *heard, unsigned ms)
{
    cJSON *m = relay_msg("interrupt");
    cJSON_AddStringToObject(m, "utteranceUntilInterrupt", heard);
    cJSON_AddNumberToObject(m, "durationUntilInterruptMs", ms);
    return relay_send(r, m);
}

void it_relay_read(it_relay *r, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    while (!r->closed) {
        long long left = deadline - now_ms();
        if (left <= 0) return;
        cs_ws_event ev;
        int k = it_ws_next(&r->ws, &ev, (int)left);
        if (k < 0 || (k > 0 && ev.type == CS_WS_EV_CLOSE)) {
            r->closed = true;
            return;
        }
        if (k == 0) return;
        if (ev.type == CS_WS_EV_MESSAGE && r->ngot < IT_RELAY_MAX)
            r->got[r->ngot++] = cJSON_ParseWithLength(ev.data, ev.len);
    }
}

static const char *relay_type(const cJSON *m)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

int it_relay_wait(it_relay *r, size_t from, const char *type, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        for (size_t i = from; i < r->ngot; i++)
            if (strcmp(relay_type(r->got[i]), type) == 0) return (int)i;
        long long left = deadline - now_ms();
        if (left <= 0 || r->closed) return -1;
        it_relay_read(r, left < 100 ? (int)left : 100);
    }
}

bool it_relay_turn(it_relay *r, size_t *at, char *out, size_t cap, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = *at;;) {
        for (; i < r->ngot; i++) {
            const cJSON *m = r->got[i];
            if (strcmp(relay_type(m), "text") != 0) continue;
            const cJSON *token = cJSON_GetObjectItemCaseSensitive(m, "token");
            if (cJSON_IsString(token)) {
                int w = snprintf(out + n, cap - n, "%s", token->valuestring);
                if (w > 0) n = n + (size_t)w < cap ? n + (size_t)w : cap - 1;
            }
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "last"))) {
                *at = i + 1;
                return true;
            }
        }
        long long left = deadline - now_ms();
        if (left <= 0 || r->closed) return false;
        it_relay_read(r, left < 100 ? (int)left : 100);
        /* Rejoin from where this turn began: tokens are re-read whole. */
        i = *at;
        n = 0;
        out[0] = '\0';
    }
}

void it_relay_free(it_relay *r)
{
    for (size_t i = 0; i < r->ngot; i++) cJSON_Delete(r->got[i]);
    r->ngot = 0;
    it_ws_close(&r->ws);
}

void it_ws_close(it_ws *w)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    cs_ws_reader_free(&w->reader);
    cs_buf_free(&w->in);
}

/* ---- files ---- */

const char *it_corpus(const char *rel)
{
    static char path[1024];
    const char *dir = getenv("CS_CORPUS");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "../tests/data/speech", rel);
    return path;
}

const char *it_recording(const it_server *s, const char *sid)
{
    static char path[1024];
    if (snprintf(path, sizeof path, "%s/recordings/%s.wav", s->data, sid) >= (int)sizeof path)
        path[0] = '\0';
    return path;
}

const char *it_db(const it_server *s)
{
    static char path[1024];
    if (snprintf(path, sizeof path, "%s/callstream.db", s->data) >= (int)sizeof path)
        path[0] = '\0';
    return path;
}

long long it_sql(const char *db, const char *sql)
{
    sqlite3 *h;
    long long v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        } else {
            fprintf(stderr, "sql: %s: %s\n", sql, sqlite3_errmsg(h));
        }
    }
    sqlite3_close(h);
    return v;
}

int it_sql_exec(const char *db, const char *sql)
{
    sqlite3 *h;
    int rc = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, IO_WAIT_MS);
        char *msg = NULL;
        rc = sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK ? 0 : -1;
        if (rc < 0) fprintf(stderr, "sql: %s: %s\n", sql, msg ? msg : sqlite3_errmsg(h));
        sqlite3_free(msg);
    }
    sqlite3_close(h);
    return rc;
}

int it_wav_info(const char *path, unsigned *channels, long *header_frames, long *size_frames)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char h[44];
    size_t got = fread(h, 1, sizeof h, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (got != sizeof h || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) return -1;
    *channels = h[22] | h[23] << 8;
    unsigned long data = (unsigned long)h[40] | (unsigned long)h[41] << 8 |
                         (unsigned long)h[42] << 16 | (unsigned long)h[43] << 24;
    unsigned frame = *channels * 2;
    *header_frames = (long)(data / frame);
    *size_frames = (size - 44) / (long)frame;
    return 0;
}

static unsigned get16(const unsigned char *p)
{
    return p[0] | (unsigned)p[1] << 8;
}

static unsigned long get32(const unsigned char *p)
{
    return get16(p) | (unsigned long)get16(p + 2) << 16;
}

long it_wav_frames(const char *wav, size_t len, unsigned *channels, const int16_t **pcm)
{
    const unsigned char *h = (const unsigned char *)wav;
    if (len < 44 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVEfmt ", 8) ||
        memcmp(h + 36, "data", 4) || get16(h + 20) != 1 || get16(h + 34) != 16)
        return -1;
    *channels = get16(h + 22);
    unsigned long data = get32(h + 40);
    if (*channels == 0 || get32(h + 4) != data + 36 || data != len - 44 ||
        data % (*channels * 2) != 0)
        return -1;
    *pcm = (const int16_t *)(wav + 44);
    return (long)(data / (*channels * 2));
}

/* ---- a small disk ---- */

static char mounted[600]; /* the tmpfs, while it is mounted */

void it_tmpfs_unmount(void)
{
    if (mounted[0] && umount2(mounted, MNT_DETACH) != 0)
        fprintf(stderr, "cannot unmount %s: %s\n", mounted, strerror(errno));
    mounted[0] = '\0';
}

static void unmount_on_signal(int sig)
{
    it_tmpfs_unmount();
    signal(sig, SIG_DFL);
    raise(sig);
}

bool it_tmpfs(const char *dir, unsigned long long bytes)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        IT_CHECK(0, "cannot make a mount namespace (root is needed): %s", strerror(errno));
        return false;
    }
    mkdir(dir, 0750);
    char opts[64];
    snprintf(opts, sizeof opts, "size=%llu,mode=0750", bytes);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        IT_CHECK(0, "cannot mount a tmpfs on %s (root is needed): %s", dir, strerror(errno));
        return false;
    }
    snprintf(mounted, sizeof mounted, "%s", dir);
    static bool hooked;
    if (!hooked) atexit(it_tmpfs_unmount);
    hooked = true;
    signal(SIGTERM, unmount_on_signal);
    signal(SIGINT, unmount_on_signal);
    return true;
}

unsigned long long it_free_bytes(const char *dir)
{
    struct statvfs st;
    return statvfs(dir, &st) == 0 ? (unsigned long long)st.f_bavail * st.f_frsize : 0;
}

void it_fill_until(const char *dir, const char *path, unsigned long long left)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    static char zeros[65536];
    for (unsigned long long have = it_free_bytes(dir); fd >= 0 && have > left;) {
        size_t n = have - left < sizeof zeros ? (size_t)(have - left) : sizeof zeros;
        if (write(fd, zeros, n) <= 0) break;
        have = it_free_bytes(dir);
    }
    if (fd >= 0) close(fd);
}

int it_wav_compose(const char *path, const char *const *clips, const unsigned *gap_ms, size_t n,
                   size_t *starts)
{
    cs_wav_writer w;
    if (cs_wav_writer_open(&w, path, 8000, 1) < 0) return -1;
    uint64_t pos = 0;
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (starts) starts[k] = (size_t)pos;
        uint8_t *ulaw = NULL;
        size_t len = 0;
        if (clips[k] && cs_sim_audio(clips[k], &ulaw, &len) < 0) {
            rc = -1;
            break;
        }
        int16_t *pcm = calloc(len + (size_t)gap_ms[k] * 8 + 1, sizeof *pcm);
        cs_ulaw_decode(pcm, ulaw, len);
        size_t frames = len + (size_t)gap_ms[k] * 8;
        if (cs_wav_writer_write(&w, pos, pcm, frames) < 0) rc = -1;
        pos += frames;
        free(pcm);
        free(ulaw);
    }
    if (cs_wav_writer_close(&w, false) < 0) rc = -1;
    return rc;
}

/* ---- a caller on a media stream ---- */

#define PHONE_FRAME 160 /* 20 ms of μ-law */

int it_phone_start(it_phone *p, int port, const char *call, const char *stream, const char *params)
{
    memset(p, 0, sizeof *p);
    snprintf(p->call, sizeof p->call, "%s", call);
    snprintf(p->stream, sizeof p->stream, "%s", stream);
    int rc = it_ws_connect(&p->ws, port, "/twilio/media", NULL);
    if (rc) return rc;
    cs_kv kv[16];
    size_t nkv = 0;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", params ? params : "");
    for (char *save = NULL, *pair = strtok_r(copy, "&", &save); pair && nkv < 16;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq) continue;
        *eq = '\0';
        kv[nkv++] = (cs_kv){cs_str_of(pair), cs_str_of(eq + 1)};
    }
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_peer_connected(&b);
    send_msg(&p->ws, &b);
    cs_twilio_start st = {IT_ACCOUNT, call, stream, CS_TRACK_BIT(CS_TRACK_INBOUND), kv, nkv};
    cs_twilio_peer_start(&b, ++p->seq, &st);
    rc = send_msg(&p->ws, &b);
    p->t0 = now_ms();
    return rc;
}

/* Whether a frame of agent audio holds voice (not the silence around words). */
static bool voiced(const uint8_t *ulaw, size_t n)
{
    int16_t pcm[PHONE_FRAME];
    if (n > PHONE_FRAME) n = PHONE_FRAME;
    cs_ulaw_decode(pcm, ulaw, n);
    long long sum = 0;
    for (size_t i = 0; i < n; i++) sum += pcm[i] < 0 ? -pcm[i] : pcm[i];
    return n && sum / (long long)n > 300;
}

static void phone_message(it_phone *p, char *msg, size_t len)
{
    static uint8_t audio[1 << 16];
    cs_twilio_out m;
    if (cs_twilio_peer_parse(msg, len, &m, audio, sizeof audio) < 0) return;
    long long now = now_ms();
    switch (m.type) {
    case CS_TWOUT_MEDIA:
        if (p->play_until < now) p->play_until = now;
        p->play_until += (long long)(m.len / 8);
        p->media_bytes += m.len;
        if (!p->first_media_us) p->first_media_us = it_now_us();
        if (p->got) cs_buf_append(p->got, m.payload, m.len);
        for (size_t i = 0; i + PHONE_FRAME <= m.len || i == 0; i += PHONE_FRAME) {
            if (!voiced(m.payload + i, m.len - i)) continue;
            p->voiced_frames++;
            p->heard = true;
            if (p->speech_end_ms && !p->answer_ms) p->answer_ms = now;
            break;
        }
        break;
    case CS_TWOUT_MARK:
        if (p->nmarks < IT_PHONE_MARKS) {
            snprintf(p->marks[p->nmarks].name, sizeof p->marks[0].name, "%.*s", (int)m.mark_name.n,
                     m.mark_name.p);
            p->marks[p->nmarks++].due = p->play_until > now ? p->play_until : now;
        }
        break;
    case CS_TWOUT_CLEAR:
        p->clears++;
        if (!p->first_clear_us) p->first_clear_us = it_now_us();
        if (p->onset_ms && !p->clear_ms) p->clear_ms = now;
        p->play_until = now;
        for (size_t i = 0; i < p->nmarks; i++) p->marks[i].due = now;
        break;
    }
}

/* Reads what has arrived, without waiting. */
static void phone_read(it_phone *p)
{
    cs_ws_event ev;
    ssize_t got = read_some(p->ws.fd, &p->ws.in, 0);
    int r;
    while (!p->closed && (r = it_ws_next(&p->ws, &ev, 0)) != 0) {
        if (r < 0 || ev.type == CS_WS_EV_CLOSE) {
            p->closed = true;
        } else if (ev.type == CS_WS_EV_MESSAGE) {
            phone_message(p, (char *)ev.data, ev.len);
        }
    }
    if (got == 0 || got == -1) p->closed = true; /* the end, once what came before is read */
}

/* Sends the frames due and echoes the marks played. */
static void phone_send(it_phone *p)
{
    long long now = now_ms();
    size_t keep = 0;
    for (size_t i = 0; i < p->nmarks; i++) {
        if (p->marks[i].due > now) {
            p->marks[keep++] = p->marks[i];
            continue;
        }
        cs_buf b = CS_BUF_INIT(1 << 16);
        cs_twilio_peer_mark(&b, p->stream, ++p->seq, cs_str_of(p->marks[i].name));
        if (!p->closed && send_msg(&p->ws, &b) == 0) p->marks_echoed++;
    }
    p->nmarks = keep;
    while (!p->closed && p->t0 + 20 * (long long)p->frames <= now) {
        uint8_t frame[PHONE_FRAME];
        memset(frame, 0xFF, sizeof frame); /* μ-law silence */
        if (p->talk_at < p->talk_len) {
            size_t k =
                p->talk_len - p->talk_at < PHONE_FRAME ? p->talk_len - p->talk_at : PHONE_FRAME;
            memcpy(frame, p->talk + p->talk_at, k);
            if (p->talk_at <= p->voice_from && p->voice_from < p->talk_at + PHONE_FRAME)
                p->onset_ms = now;
            p->talk_at += k;
            if (p->talk_at >= p->voice_to && !p->speech_end_ms) p->speech_end_ms = now;
        }
        cs_buf b = CS_BUF_INIT(1 << 16);
        cs_twilio_peer_media(&b, p->stream, ++p->seq, CS_TRACK_INBOUND, p->frames + 1,
                             p->frames * 20, frame, sizeof frame);
        if (send_msg(&p->ws, &b) < 0) p->closed = true;
        else if (p->sent) cs_buf_append(p->sent, frame, sizeof frame);
        p->frames++;
    }
}

void it_phones_step(it_phone *const *ps, size_t n, int wait_ms)
{
    struct pollfd fds[1024];
    if (n > sizeof fds / sizeof *fds) n = sizeof fds / sizeof *fds;
    long long now = now_ms(), wake = now + wait_ms;
    for (size_t i = 0; i < n; i++) {
        long long due = ps[i]->t0 + 20 * (long long)ps[i]->frames;
        if (!ps[i]->closed && due < wake) wake = due;
        for (size_t k = 0; k < ps[i]->nmarks; k++)
            if (ps[i]->marks[k].due < wake) wake = ps[i]->marks[k].due;
        fds[i] = (struct pollfd){.fd = ps[i]->closed ? -1 : ps[i]->ws.fd, .events = POLLIN};
    }
    poll(fds, n, wake <= now ? 0 : (int)(wake - now));
    for (size_t i = 0; i < n; i++) {
        if (fds[i].revents) phone_read(ps[i]);
        phone_send(ps[i]);
    }
}

void it_phone_run(it_phone *p, int ms)
{
    long long end = now_ms() + ms;
    while (now_ms() < end && !p->closed) it_phones_step(&p, 1, (int)(end - now_ms()));
}

bool it_phone_until(it_phone *p, bool (*cond)(const it_phone *p, void *data), void *data,
                    int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    while (!cond(p, data)) {
        if (now_ms() >= end || p->closed) return cond(p, data);
        it_phones_step(&p, 1, 20);
    }
    return true;
}

bool it_phone_talking(const it_phone *p)
{
    return p->heard && p->play_until > now_ms();
}

static bool quiet_for(const it_phone *p, void *data)
{
    return p->heard && now_ms() >= p->play_until + *(int *)data;
}

bool it_phone_quiet(it_phone *p, int quiet_ms, int timeout_ms)
{
    return it_phone_until(p, quiet_for, &quiet_ms, timeout_ms);
}

int it_phone_say(it_phone *p, const char *wav)
{
    int16_t *pcm;
    size_t n;
    unsigned rate;
    if (cs_wav_load(wav, &pcm, &n, &rate) < 0 || rate != 8000) return -1;
    free(p->talk);
    p->talk = malloc(n ? n : 1);
    if (!p->talk) {
        free(pcm);
        return -1;
    }
    cs_ulaw_encode(p->talk, pcm, n);
    /* Where its speech is, as the gateway's detector (default settings) finds it after
     * the silence the phone sends between clips: its first onset and last offset. */
    cs_vad vad;
    cs_vad_init(&vad, NULL);
    uint8_t quiet[8000];
    memset(quiet, 0xFF, sizeof quiet);
    cs_vad_edge edges[64];
    cs_vad_feed(&vad, 0, quiet, sizeof quiet, edges, 64);
    bool onset = false, speaking = false;
    p->voice_from = p->voice_to = 0;
    for (size_t at = 0; at < n + sizeof quiet; at += PHONE_FRAME) {
        bool tail = at >= n;
        const uint8_t *src = tail ? quiet : p->talk + at;
        size_t len = tail ? PHONE_FRAME : (n - at < PHONE_FRAME ? n - at : PHONE_FRAME);
        size_t k = cs_vad_feed(&vad, sizeof quiet + at, src, len, edges, 64);
        for (size_t e = 0; e < k && e < 64; e++) {
            uint64_t pos = edges[e].pos > sizeof quiet ? edges[e].pos - sizeof quiet : 0;
            if (edges[e].speech && !onset) p->voice_from = (size_t)pos;
            if (!edges[e].speech) p->voice_to = pos < n ? (size_t)pos : n;
            onset |= edges[e].speech;
            speaking = edges[e].speech;
        }
    }
    if (speaking) p->voice_to = n; /* still speaking at its end */
    free(pcm);
    p->talk_len = n;
    p->talk_at = 0;
    p->onset_ms = p->speech_end_ms = p->answer_ms = p->clear_ms = 0;
    p->heard = false;
    return 0;
}

int it_phone_key(it_phone *p, char digit)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_peer_dtmf(&b, p->stream, ++p->seq, digit);
    p->heard = false;
    p->dtmf_sent++;
    return send_msg(&p->ws, &b);
}

static bool ended(const it_phone *p, void *data)
{
    (void)data;
    return p->closed;
}

bool it_phone_wait_end(it_phone *p, int timeout_ms)
{
    return it_phone_until(p, ended, NULL, timeout_ms);
}

void it_phone_hangup(it_phone *p)
{
    if (p->closed) return;
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_peer_stop(&b, p->stream, ++p->seq, IT_ACCOUNT, p->call);
    send_msg(&p->ws, &b);
    it_ws_close_code(&p->ws, IO_WAIT_MS);
    p->closed = true;
}

void it_phone_free(it_phone *p)
{
    it_ws_close(&p->ws);
    free(p->talk);
    p->talk = NULL;
}

/* ---- a signed webhook receiver ---- */

struct it_hook {
    int fd, port;
    pthread_t thread;
    volatile bool stop;
    pthread_mutex_t lock;
    int received;
    char secret[128];
    it_hook_fn fn;
    void *data;
};

/* Reads one request: its path, body (NUL-ended), signature hex and timestamp. 0 or -1. */
static int hook_read(int c, char *path, size_t pathcap, char *body, size_t cap, char *sig,
                     size_t sigcap, char *ts, size_t tscap)
{
    char buf[65536];
    size_t n = 0;
    char *end = NULL;
    while (!end && n < sizeof buf - 1) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1) return -1;
        ssize_t got = read(c, buf + n, sizeof buf - 1 - n);
        if (got <= 0) return -1;
        n += (size_t)got;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end) return -1;
    *end = '\0';
    const char *target = strchr(buf, ' ');
    snprintf(path, pathcap, "%.*s", target ? (int)strcspn(target + 1, " ") : 0,
             target ? target + 1 : "");
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    const char *sg = strcasestr(buf, "\r\nX-Callstream-Signature: sha256=");
    if (!cl) return -1;
    size_t len = strtoul(cl + 17, NULL, 10), have = n - (size_t)(end + 4 - buf);
    const char *tm = strcasestr(buf, "\r\nX-Callstream-Timestamp: ");
    snprintf(sig, sigcap, "%.*s", sg ? 64 : 0, sg ? sg + 33 : "");
    snprintf(ts, tscap, "%.*s", tm ? (int)strcspn(tm + 26, "\r") : 0, tm ? tm + 26 : "");
    if (len >= cap) return -1;
    memcpy(body, end + 4, have);
    while (have < len) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1) return -1;
        ssize_t got = read(c, body + have, len - have);
        if (got <= 0) return -1;
        have += (size_t)got;
    }
    body[len] = '\0';
    return 0;
}

static void *hook_main(void *arg)
{
    it_hook *h = arg;
    static char body[IT_HOOK_BODY_MAX];
    while (!h->stop) {
        struct pollfd p = {h->fd, POLLIN, 0};
        if (poll(&p, 1, 100) != 1) continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0) continue;
        char path[256], sig[80], ts[24];
        if (hook_read(c, path, sizeof path, body, sizeof body, sig, sizeof sig, ts, sizeof ts) ==
            0) {
            pthread_mutex_lock(&h->lock);
            h->received++;
            pthread_mutex_unlock(&h->lock);
            /* As a receiver should: the HMAC of "<timestamp>.<body>", and a current time. */
            uint8_t mac[CS_SHA256_LEN];
            char want[2 * CS_SHA256_LEN + 1];
            const void *parts[] = {ts, ".", body};
            size_t lens[] = {strlen(ts), 1, strlen(body)};
            cs_hmac_sha256(mac, h->secret, strlen(h->secret), parts, lens, 3);
            cs_hex(want, mac, sizeof mac);
            long long age = (long long)time(NULL) - strtoll(ts, NULL, 10);
            bool ok = strcmp(sig, want) == 0 && ts[0] && age >= -5 && age <= 60;
            it_hook_answer a = {.status = 200};
            h->fn(h->data, path, body, ok, &a);
            if (a.delay_ms) it_sleep_ms(a.delay_ms);
            char head[256];
            const char *reason = a.status < 300 ? "OK" : a.status < 500 ? "Refused" : "Error";
            snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n",
                     a.status, reason, strlen(a.body));
            if (send_all(c, head, strlen(head)) == 0) send_all(c, a.body, strlen(a.body));
        }
        close(c);
    }
    return NULL;
}

it_hook *it_hook_start(const char *secret, it_hook_fn fn, void *data, int *port)
{
    it_hook *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    pthread_mutex_init(&h->lock, NULL);
    snprintf(h->secret, sizeof h->secret, "%s", secret);
    h->fn = fn;
    h->data = data;
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (h->fd < 0 || bind(h->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(h->fd, 16) < 0 ||
        getsockname(h->fd, (struct sockaddr *)&a, &len) < 0 ||
        pthread_create(&h->thread, NULL, hook_main, h) != 0) {
        if (h->fd >= 0) close(h->fd);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    h->port = *port = ntohs(a.sin_port);
    return h;
}

int it_hook_received(it_hook *h)
{
    pthread_mutex_lock(&h->lock);
    int n = h->received;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void it_hook_stop(it_hook *h)
{
    if (!h) return;
    h->stop = true;
    pthread_join(h->thread, NULL);
    close(h->fd);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- the store ---- */

bool it_health_is(int port, const char *want)
{
    cJSON *j = it_get_json(port, "/health");
    bool ok = strcmp(it_str(j, "status"), want) == 0;
    cJSON_Delete(j);
    return ok;
}

bool it_store_spilled(int port)
{
    return it_metric(port, "callstream_store_spilled_total") > 0;
}

bool it_store_caught_up(int port)
{
    double spill = it_metric(port, "callstream_store_spilled_total");
    return it_health_is(port, "ok") && it_metric(port, "callstream_store_queue_depth") == 0 &&
           it_metric(port, "callstream_store_spill_queue_depth") == 0 && spill > 0 &&
           it_metric(port, "callstream_store_replayed_total") == spill;
}

int it_call_stream_create(int port, const char *body, char id[64], char path[128],
                          char token[128])
{
    it_resp r;
    if (it_http(port, "POST", "/api/v1/call_streams", "Content-Type: application/json\r\n", body,
                &r) < 0)
        return -1;
    int status = r.status;
    const char *url = it_str(r.json, "url"), *sep = strstr(url, "/call_streams/");
    snprintf(id, 64, "%s", it_str(r.json, "id"));
    snprintf(path, 128, "%s", sep ? sep : "");
    snprintf(token, 128, "%s", it_str(r.json, "token"));
    it_resp_free(&r);
    return status;
}

const char *it_call_stream_status(int port, const char *id, char *out, size_t cap)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/call_streams/%s", id);
    it_resp r;
    out[0] = '\0';
    if (it_http(port, "GET", target, NULL, NULL, &r) < 0) return out;
    snprintf(out, cap, "%s", r.status == 200 ? it_str(r.json, "status") : r.body ? r.body : "");
    it_resp_free(&r);
    return out;
}

int it_call_stream_connect(it_ws *w, int port, const char *path, const char *token)
{
    char target[512];
    snprintf(target, sizeof target, "%s%s%s", path, token ? "?token=" : "", token ? token : "");
    return it_ws_connect(w, port, target, NULL);
}
