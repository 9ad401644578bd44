/* The monitor socket (docs/monitor.md) against a real call: who may open it, the list
 * feed, joining a call mid-way, audio frames with their header, events, ping, the close
 * when the call ends, a browser that never reads, which loses audio and is closed while
 * another listener and the call itself lose nothing — and sockets that close, with no
 * more audio, when the session or token they were opened with ends, even when a session
 * runs out while the store cannot answer. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dblock.h"
#include "http/auth.h"
#include "integ_util.h"

static it_server srv;
static char cookie[256], origin[128];

#define CLOSE_SIGNED_OUT 4401
#define REVOKE_WAIT_MS   20000 /* generous, for a 2 s AUTH_CACHE_S on a busy machine */
#define EXPIRY_MS        10000 /* a session's life in expiry_needs_no_store */

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int open_monitor(it_ws *w, const char *headers, int rcvbuf)
{
    return it_ws_connect_buffered(w, srv.port, "/monitor", headers, rcvbuf);
}

static int open_as_browser(it_ws *w, int rcvbuf)
{
    char h[512];
    snprintf(h, sizeof h, "%sOrigin: %s\r\n", cookie, origin);
    return open_monitor(w, h, rcvbuf);
}

/* The next JSON message of `type` within timeout_ms (other messages are skipped). */
static cJSON *next_json(it_ws *w, const char *type, int timeout_ms)
{
    long long deadline = wall_ms() + timeout_ms;
    cs_ws_event ev;
    while (wall_ms() < deadline) {
        int r = it_ws_next(w, &ev, (int)(deadline - wall_ms()));
        if (r <= 0) return NULL;
        if (ev.type != CS_WS_EV_MESSAGE || ev.opcode != CS_WS_OP_TEXT) continue;
        cJSON *j = cJSON_ParseWithLength(ev.data, ev.len);
        if (j && strcmp(str(j, "type"), type) == 0) return j;
        cJSON_Delete(j);
    }
    return NULL;
}

static void send_json(it_ws *w, const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    it_ws_send_text(w, msg);
}

/* A session cookie needs our own Origin (a page elsewhere could ride on it); a bearer
 * token, which browsers never send by themselves, may come without Origin; a foreign
 * Origin is refused either way. */
static void who_may_open(void)
{
    it_ws w;
    char h[512];
    IT_CHECK(open_monitor(&w, "Origin: http://127.0.0.1\r\n", 0) == 401,
             "opened without a session");
    it_ws_close(&w);
    IT_CHECK(open_monitor(&w, cookie, 0) == 403, "opened with a session but no Origin");
    it_ws_close(&w);
    snprintf(h, sizeof h, "%sOrigin: http://evil.example\r\n", cookie);
    IT_CHECK(open_monitor(&w, h, 0) == 403, "opened from another origin");
    it_ws_close(&w);
    IT_CHECK(open_as_browser(&w, 0) == 0, "a browser of ours was refused");
    cJSON *hello = next_json(&w, "hello", 3000);
    IT_CHECK(hello && strcmp(str(hello, "user"), "admin") == 0, "no hello");
    cJSON_Delete(hello);
    it_ws_close(&w);

    IT_CHECK(open_monitor(&w, it_auth, 0) == 0, "a bearer token without Origin was refused");
    hello = next_json(&w, "hello", 3000);
    IT_CHECK(hello && strcmp(str(hello, "user"), "it") == 0, "no hello for the token");
    cJSON_Delete(hello);
    it_ws_close(&w);
    snprintf(h, sizeof h, "%sOrigin: http://evil.example\r\n", it_auth);
    IT_CHECK(open_monitor(&w, h, 0) == 403, "a bearer token opened from another origin");
    it_ws_close(&w);
    snprintf(h, sizeof h, "%sOrigin: %s\r\n", it_auth, origin);
    IT_CHECK(open_monitor(&w, h, 0) == 0, "a bearer token with our Origin was refused");
    it_ws_close(&w);
}

typedef struct audio_seen {
    int frames[2];
    unsigned last_seq[2];
    int gaps;
    int bad_header;
    long long max_age_ms; /* now − server send time, as received */
} audio_seen;

/* Reads everything for `ms` (or until the socket closes, its code in *close_code),
 * counting audio; returns the dtmf events seen. */
static int listen_for(it_ws *w, int ms, audio_seen *a, bool *ended, int *close_code)
{
    *close_code = -1;
    long long deadline = wall_ms() + ms;
    cs_ws_event ev;
    int dtmf = 0;
    while (wall_ms() < deadline) {
        int r = it_ws_next(w, &ev, (int)(deadline - wall_ms()));
        if (r < 0) break;
        if (r == 0) continue;
        if (ev.type == CS_WS_EV_CLOSE) {
            *close_code = ev.close_code;
            break;
        }
        if (ev.type != CS_WS_EV_MESSAGE) continue;
        if (ev.opcode == CS_WS_OP_BINARY) {
            const uint8_t *p = (const uint8_t *)ev.data;
            if (ev.len < 20 + 160 || p[0] != 1 || p[1] > 1) {
                a->bad_header++;
                continue;
            }
            unsigned t = p[1];
            unsigned seq = (unsigned)p[4] << 24 | (unsigned)p[5] << 16 | (unsigned)p[6] << 8 | p[7];
            if (a->frames[t] && seq != a->last_seq[t] + 1) a->gaps++;
            a->last_seq[t] = seq;
            a->frames[t]++;
            long long sent = 0;
            for (int i = 0; i < 8; i++) sent = sent << 8 | p[12 + i];
            if (wall_ms() - sent > a->max_age_ms) a->max_age_ms = wall_ms() - sent;
            continue;
        }
        cJSON *j = cJSON_ParseWithLength(ev.data, ev.len);
        const char *type = str(j, "type");
        if (strcmp(type, "event") == 0 &&
            strcmp(str(cJSON_GetObjectItem(j, "event"), "type"), "dtmf") == 0)
            dtmf++;
        if (strcmp(type, "call_ended") == 0 && ended) *ended = true;
        cJSON_Delete(j);
    }
    return dtmf;
}

static void a_live_call(void)
{
    it_ws list, call;
    IT_CHECK(open_as_browser(&list, 0) == 0, "list socket refused");
    it_ws_send_text(&list, "{\"type\":\"watch_calls\"}");
    cJSON *calls = next_json(&list, "calls", 3000);
    IT_CHECK(calls && cJSON_GetArraySize(cJSON_GetObjectItem(calls, "calls")) == 0,
             "calls before any call");
    cJSON_Delete(calls);

    pid_t sim = it_sim_spawn(&srv, "--duration 6 --dtmf 5");
    long long t0 = wall_ms();
    cJSON *started = next_json(&list, "call_started", 5000);
    IT_CHECK(started && wall_ms() - t0 < 2000, "call_started took %lld ms", wall_ms() - t0);
    char sid[40] = "";
    snprintf(sid, sizeof sid, "%.39s", str(cJSON_GetObjectItem(started, "call"), "sid"));
    cJSON_Delete(started);

    /* join a little later, as a supervisor would */
    it_sleep_ms(500);
    IT_CHECK(open_as_browser(&call, 0) == 0, "call socket refused");
    send_json(&call, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"both\"}", sid);
    cJSON *sub = next_json(&call, "subscribed", 3000);
    const cJSON *c = cJSON_GetObjectItem(sub, "call");
    IT_CHECK(sub && cJSON_IsTrue(cJSON_GetObjectItem(c, "live")), "not subscribed live");
    bool has_start = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(sub, "events")) has_start |=
        !strcmp(str(e, "type"), "start");
    IT_CHECK(has_start, "the events so far lack start");
    cJSON_Delete(sub);
    send_json(&call, "{\"type\":\"ping\",\"t\":%s}", "12345");
    cJSON *pong = next_json(&call, "pong", 3000);
    IT_CHECK(pong && cJSON_GetObjectItem(pong, "t")->valuedouble == 12345 &&
                 cJSON_GetObjectItem(pong, "server_time"),
             "no pong");
    cJSON_Delete(pong);

    audio_seen a = {0};
    bool ended = false;
    int code;
    int dtmf = listen_for(&call, 10000, &a, &ended, &code);
    IT_CHECK(ended, "no call_ended");
    IT_CHECK(code == 1000, "after the call the socket closed with %d, not 1000", code);
    IT_CHECK(dtmf == 1, "%d dtmf events", dtmf);
    IT_CHECK(a.frames[0] > 150 && a.frames[1] > 150, "frames: caller %d, agent %d", a.frames[0],
             a.frames[1]);
    IT_CHECK(a.gaps == 0 && a.bad_header == 0, "%d gaps, %d bad headers", a.gaps, a.bad_header);
    IT_CHECK(a.max_age_ms < 1000, "audio arrived %lld ms after it was sent", a.max_age_ms);
    it_ws_close(&call);

    cJSON *ended_msg = next_json(&list, "call_ended", 5000);
    IT_CHECK(ended_msg != NULL, "the list feed missed call_ended");
    cJSON_Delete(ended_msg);
    it_ws_close(&list);
    cJSON_Delete(it_sim_wait(sim, NULL));
    IT_CHECK(it_metric(srv.port, "callstream_bus_published_total") > 300 &&
                 it_metric(srv.port, "callstream_bus_delivered_total") > 300 &&
                 it_metric(srv.port, "callstream_bus_dropped_total") == 0 &&
                 it_metric(srv.port, "callstream_bus_up") == 1,
             "the bus's counters are not in /metrics");
}

/* Starts a call with `callstream sim <opts>` on `s` and gives its CallSid, seen on the
 * list feed of a socket opened with `headers`. The simulator's pid, or -1. */
static pid_t spawn_call(const it_server *s, const char *headers, const char *opts, char sid[40])
{
    it_ws list;
    sid[0] = '\0';
    if (it_ws_connect(&list, s->port, "/monitor", headers) != 0) {
        it_ws_close(&list);
        return -1;
    }
    it_ws_send_text(&list, "{\"type\":\"watch_calls\"}");
    pid_t sim = it_sim_spawn(s, "%s", opts);
    cJSON *started = next_json(&list, "call_started", 5000);
    snprintf(sid, 40, "%.39s", str(cJSON_GetObjectItem(started, "call"), "sid"));
    cJSON_Delete(started);
    it_ws_close(&list);
    return sim;
}

/* A browser joining late gets every earlier event (here more than the history's first
 * allocation holds), then the rest live: each digit once, in order. */
static void a_late_joiner(void)
{
    static const char digits[] = "0123456789012345678901234567890123456789";
    it_ws call;
    char opts[128], sid[40];
    snprintf(opts, sizeof opts, "--duration 5 --dtmf %s", digits);
    pid_t sim = spawn_call(&srv, it_auth, opts, sid);
    IT_CHECK(sid[0], "the call did not start");

    it_sleep_ms(3500);
    IT_CHECK(open_as_browser(&call, 0) == 0, "call socket refused");
    send_json(&call, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"none\"}", sid);
    cJSON *sub = next_json(&call, "subscribed", 3000);
    char got[64] = "";
    size_t n = 0, earlier = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(sub, "events"))
    {
        if (strcmp(str(e, "type"), "dtmf") == 0 && n < sizeof got - 1)
            got[n++] = str(cJSON_GetObjectItem(e, "detail"), "digit")[0];
    }
    earlier = n;
    cJSON_Delete(sub);
    long long deadline = wall_ms() + 10000;
    cs_ws_event ev;
    while (wall_ms() < deadline) {
        int r = it_ws_next(&call, &ev, (int)(deadline - wall_ms()));
        if (r < 0 || (r > 0 && ev.type == CS_WS_EV_CLOSE)) break;
        if (r == 0 || ev.type != CS_WS_EV_MESSAGE || ev.opcode != CS_WS_OP_TEXT) continue;
        cJSON *j = cJSON_ParseWithLength(ev.data, ev.len);
        const cJSON *le = cJSON_GetObjectItem(j, "event");
        if (!strcmp(str(j, "type"), "event") && !strcmp(str(le, "type"), "dtmf") &&
            n < sizeof got - 1)
            got[n++] = str(cJSON_GetObjectItem(le, "detail"), "digit")[0];
        cJSON_Delete(j);
    }
    got[n] = '\0';
    IT_CHECK(earlier > 16, "only %zu digits were in the history", earlier);
    IT_CHECK(strcmp(got, digits) == 0, "digits seen: %s (%zu from the history)", got, earlier);
    it_ws_close(&call);
    cJSON_Delete(it_sim_wait(sim, NULL));
}

/* One browser never reads: it loses audio and is closed; the other hears every frame. */
static void a_slow_listener(void)
{
    it_ws slow, good;
    char sid[40];
    pid_t sim = spawn_call(&srv, it_auth, "--duration 16", sid);
    IT_CHECK(sid[0], "the call did not start");

    IT_CHECK(open_as_browser(&slow, 2048) == 0, "slow socket refused");
    IT_CHECK(open_as_browser(&good, 0) == 0, "good socket refused");
    send_json(&slow, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"both\"}", sid);
    send_json(&good, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"both\"}", sid);
    audio_seen a = {0};
    bool ended = false;
    int code;
    listen_for(&good, 25000, &a, &ended, &code);
    IT_CHECK(ended && code == 1000, "the good listener: ended %d, close %d", ended, code);
    IT_CHECK(a.gaps == 0 && a.frames[0] > 600, "the good listener: %d frames, %d gaps", a.frames[0],
             a.gaps);
    IT_CHECK(it_log_count(&srv, "too slow") + it_log_count(&srv, "MONITOR_SLOW_S") >= 1,
             "the reader that never read was not closed");
    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    const cJSON *missing = cJSON_GetObjectItem(sum, "missing");
    IT_CHECK(exit_status == 0 && missing && missing->valueint == 0,
             "the call next to a stuck listener: exit %d", exit_status);
    cJSON_Delete(sum);
    it_ws_close(&slow);
    it_ws_close(&good);
}

/* Opens a socket on `s` with `headers` that follows call `sid`, both tracks, and waits
 * for its first audio frame. 0 or -1. */
static int listening(it_ws *w, const it_server *s, const char *headers, const char *sid)
{
    if (it_ws_connect(w, s->port, "/monitor", headers) != 0) return -1;
    send_json(w, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"both\"}", sid);
    long long deadline = wall_ms() + 10000;
    cs_ws_event ev;
    while (wall_ms() < deadline) {
        int r = it_ws_next(w, &ev, (int)(deadline - wall_ms()));
        if (r < 0) return -1;
        if (r > 0 && ev.type == CS_WS_EV_MESSAGE && ev.opcode == CS_WS_OP_BINARY) return 0;
    }
    return -1;
}

/* A socket that follows call `sid` paused (no audio, so that it never falls behind while
 * the test reads others). 0 or -1. */
static int paused(it_ws *w, const it_server *s, const char *headers, const char *sid)
{
    if (it_ws_connect(w, s->port, "/monitor", headers) != 0) return -1;
    send_json(w, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"none\"}", sid);
    cJSON *sub = next_json(w, "subscribed", 10000);
    cJSON_Delete(sub);
    return sub ? 0 : -1;
}

typedef struct ending {
    int code;        /* of the server's close frame; -1 if none came */
    char why[128];   /* its reason */
    int audio_after; /* audio frames that came after it */
} ending;

/* Reads `w` until the server closes it (within timeout_ms), answers the close, and reads
 * to the end of the connection, counting audio that still came. */
static ending ending_of(it_ws *w, int timeout_ms)
{
    ending e = {.code = -1};
    long long deadline = wall_ms() + timeout_ms;
    cs_ws_event ev;
    while (e.code < 0 && wall_ms() < deadline) {
        int r = it_ws_next(w, &ev, (int)(deadline - wall_ms()));
        if (r < 0) return e;
        if (r > 0 && ev.type == CS_WS_EV_CLOSE) {
            e.code = ev.close_code;
            snprintf(e.why, sizeof e.why, "%.*s", (int)ev.len, ev.data ? ev.data : "");
        }
    }
    if (e.code < 0) return e;
    uint8_t code[2] = {(uint8_t)(e.code >> 8), (uint8_t)e.code};
    it_ws_send(w, CS_WS_OP_CLOSE, code, sizeof code);
    deadline = wall_ms() + 10000;
    while (wall_ms() < deadline) {
        int r = it_ws_next(w, &ev, (int)(deadline - wall_ms()));
        if (r < 0) break; /* the server closed the connection */
        if (r > 0 && ev.type == CS_WS_EV_MESSAGE && ev.opcode == CS_WS_OP_BINARY) e.audio_after++;
    }
    return e;
}

/* Whether paused socket `w` is open and hears call `sid` once it asks for audio. */
static bool still_hears(it_ws *w, const char *sid)
{
    send_json(w, "{\"type\":\"audio\",\"call\":\"%s\",\"audio\":\"both\"}", sid);
    audio_seen a = {0};
    int code;
    listen_for(w, 2000, &a, NULL, &code);
    return code == -1 && a.frames[0] + a.frames[1] > 10;
}

/* Signing out closes the sockets opened with that session at once (this server caches a
 * session for a minute), with 4401 and no audio after it; another session's socket on
 * the same call hears on. */
static void signing_out_closes_at_once(void)
{
    char session[256], h[512], mine[512], sid[40];
    IT_CHECK(it_session(&srv, session, sizeof session) == 0, "cannot sign in");
    snprintf(h, sizeof h, "%sOrigin: %s\r\n", session, origin);
    snprintf(mine, sizeof mine, "%sOrigin: %s\r\n", cookie, origin);
    pid_t sim = spawn_call(&srv, it_auth, "--duration 30", sid);
    it_ws w, other;
    IT_CHECK(sid[0] && listening(&w, &srv, h, sid) == 0 && paused(&other, &srv, mine, sid) == 0,
             "no audio on the call");
    it_resp r;
    IT_CHECK(it_http_browser(srv.port, "POST", "/logout", session, "", &r) == 0 && r.status == 303,
             "logout: %d", r.status);
    it_resp_free(&r);
    ending e = ending_of(&w, 10000);
    IT_CHECK(e.code == CLOSE_SIGNED_OUT && strcmp(e.why, "signed out") == 0,
             "after sign-out the socket closed with %d '%s'", e.code, e.why);
    IT_CHECK(e.audio_after == 0, "%d audio frames after the close", e.audio_after);
    IT_CHECK(still_hears(&other, sid), "another session's socket was closed too");
    it_ws_close(&w);
    it_ws_close(&other);
    kill(sim, SIGTERM);
    cJSON_Delete(it_sim_wait(sim, NULL));
}

/* Another process deletes a user, changes a password, revokes a token, or a session
 * runs out: the sockets opened with them close within AUTH_CACHE_S (2 s here), with
 * 4401 and no audio after it, while a socket of another credential hears on. */
static void ended_credentials_close_their_sockets(void)
{
    it_server s;
    /* The sockets not being read while the test waits for another lose audio, but are
     * not closed for it. */
    const char *args[] = {"--agent", "echo", "--auth-cache-s", "2", "--monitor-slow-s",
                          "3600",    NULL};
    if (it_server_start(&s, args) < 0) {
        IT_CHECK(0, "no server with a short cache");
        return;
    }
    char own[128], headers[4][512], token[80], session[256], ours[160], sid[40];
    snprintf(own, sizeof own, "http://127.0.0.1:%d", s.port);
    static const char *const users[] = {"bob", "carol", "dave"};
    for (int i = 0; i < 3; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "user add %s --password-stdin", users[i]);
        IT_CHECK(it_cli(&s, cmd, "a fine password\n", NULL, 0) == 0, "user add %s", users[i]);
        IT_CHECK(it_sign_in(&s, users[i], "a fine password", session, sizeof session) == 0,
                 "%s cannot sign in", users[i]);
        snprintf(headers[i], sizeof headers[i], "%sOrigin: %s\r\n", session, own);
    }
    IT_CHECK(it_cli(&s, "token create tok", NULL, token, sizeof token) == 0, "no token");
    snprintf(headers[3], sizeof headers[3], "Authorization: Bearer %s\r\n", token);
    snprintf(ours, sizeof ours, "Authorization: Bearer %s\r\n", s.token);

    static const struct {
        const char *what, *cli, *input, *sql, *why; /* why: NULL, either reason */
    } ends[4] = {
        {"deleting the user", "user delete bob", NULL, NULL, "session ended"},
        {"a new password", "user add carol --password-stdin", "another password\n", NULL,
         "session ended"},
        {"the session's end", NULL, NULL,
         "UPDATE sessions SET expires_at = strftime('%s','now') * 1000 WHERE user_name = 'dave'",
         NULL},
        {"revoking the token", "token revoke tok", NULL, NULL, "token revoked"},
    };
    pid_t sim = spawn_call(&s, ours, "--duration 60", sid);
    it_ws w[4], control;
    for (int i = 0; i < 4; i++)
        IT_CHECK(sid[0] && listening(&w[i], &s, headers[i], sid) == 0, "no audio before %s",
                 ends[i].what);
    IT_CHECK(paused(&control, &s, ours, sid) == 0, "the test's own token cannot follow the call");
    for (int i = 0; i < 4; i++) {
        IT_CHECK(ends[i].cli ? it_cli(&s, ends[i].cli, ends[i].input, NULL, 0) == 0
                             : it_sql_exec(it_db(&s), ends[i].sql) == 0,
                 "%s failed", ends[i].what);
        ending e = ending_of(&w[i], REVOKE_WAIT_MS);
        IT_CHECK(e.code == CLOSE_SIGNED_OUT && (!ends[i].why || !strcmp(e.why, ends[i].why)),
                 "after %s the socket closed with %d '%s'", ends[i].what, e.code, e.why);
        IT_CHECK(e.audio_after == 0, "%d audio frames after %s", e.audio_after, ends[i].what);
        it_ws_close(&w[i]);
    }
    IT_CHECK(still_hears(&control, sid), "the socket of a credential still good was closed");
    it_ws_close(&control);
    kill(sim, SIGTERM);
    cJSON_Delete(it_sim_wait(sim, NULL));
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&s);
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", srv.token);
}

/* A session runs out while another process holds the database's readers' locks, so that
 * the store cannot answer: its end is known from the sign-in, so its socket closes all the
 * same, while a socket whose session has not ended stays open. */
static void expiry_needs_no_store(void)
{
    it_server s;
    const char *args[] = {NULL};
    if (!it_server_up(&s, args)) return;
    char own[128], headers[512], control_headers[512], session[256], hash[65], sql[512];
    snprintf(own, sizeof own, "http://127.0.0.1:%d", s.port);
    IT_CHECK(it_cli(&s, "user add eve --password-stdin", "a fine password\n", NULL, 0) == 0,
             "user add eve");
    IT_CHECK(it_sign_in(&s, "eve", "a fine password", session, sizeof session) == 0,
             "eve cannot sign in");
    snprintf(control_headers, sizeof control_headers, "%sOrigin: %s\r\n", session, own);
    /* A session that ends EXPIRY_MS from now, as the server would have made it. */
    static const char token[] = "a-session-about-to-end";
    cs_secret_hash(hash, token, strlen(token));
    long long expires_at = it_wall_ms() + EXPIRY_MS;
    snprintf(sql, sizeof sql,
             "INSERT INTO sessions (token_hash, user_name, created_at, expires_at, password_at)"
             " SELECT '%s', name, %lld, %lld, password_at FROM users WHERE name = 'eve'",
             hash, it_wall_ms(), expires_at);
    IT_CHECK(it_sql_exec(it_db(&s), sql) == 0, "cannot add the session");
    snprintf(headers, sizeof headers, "Cookie: " CS_SESSION_COOKIE "=%s\r\nOrigin: %s\r\n", token,
             own);

    it_ws w, control;
    IT_CHECK(it_ws_connect(&w, s.port, "/monitor", headers) == 0, "the session was refused");
    IT_CHECK(it_ws_connect(&control, s.port, "/monitor", control_headers) == 0,
             "eve's other session was refused");
    pid_t holder = db_hold(it_db(&s), DB_HOLD_READS);
    IT_CHECK(holder > 0, "cannot lock the readers of the database");
    /* (the server asks the store again a second before the end: the locks must be held by
     * then, or the store would answer and nothing would be tested) */
    IT_CHECK(it_wall_ms() < expires_at - 2000, "the locks were taken too late to test anything");
    ending e = ending_of(&w, EXPIRY_MS + REVOKE_WAIT_MS);
    IT_CHECK(e.code == CLOSE_SIGNED_OUT && strcmp(e.why, "session expired") == 0,
             "a session that ran out during the outage: its socket closed with %d '%s'", e.code,
             e.why);
    it_ws_send_text(&control, "{\"type\":\"ping\",\"t\":1}");
    cJSON *pong = next_json(&control, "pong", 10000);
    IT_CHECK(pong != NULL, "a socket whose session goes on was closed during the outage");
    cJSON_Delete(pong);
    it_ws_close(&w);
    it_ws_close(&control);
    if (holder > 0) db_release(holder);
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&s);
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", srv.token);
}

int main(void)
{
    const char *args[] = {"--agent", "echo", "--monitor-slow-s", "2", NULL};
    if (it_server_start(&srv, args) < 0) return it_done("monitor");
    IT_CHECK(it_session(&srv, cookie, sizeof cookie) == 0, "cannot sign in");
    snprintf(origin, sizeof origin, "http://127.0.0.1:%d", srv.port);
    who_may_open();
    a_live_call();
    a_late_joiner();
    a_slow_listener();
    signing_out_closes_at_once();
    ended_credentials_close_their_sockets();
    expiry_needs_no_store();
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
    return it_done("monitor");
}
