/* The stream lifecycle API: a source that is not a telephony provider creates a stream
 * (POST /api/v1/call_streams), connects with its one-time token and streams binary
 * audio; the call is recorded, transcribed, answered by an agent and ended by `complete`
 * or by the source closing. Also every refusal: bad input, bad, reused and expired
 * tokens, unknown ids, a second complete, the pending limit. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/wav.h"
#include "integ_util.h"

#define JSON "Content-Type: application/json\r\n"

static it_server srv;

static const char *corpus(void)
{
    const char *c = getenv("CS_CORPUS");
    return c ? c : "../tests/data/speech";
}

/* POST /api/v1/call_streams with `body`; the answer in *r. */
static int create(const char *body, it_resp *r)
{
    return it_http(srv.port, "POST", "/api/v1/call_streams", JSON, body, r);
}

typedef struct made {
    char id[64], path[256], token[128];
} made;

/* Creates a stream with `body`; whether it was (201 with an id, a URL and a token). */
static bool create_ok(const char *body, made *m)
{
    it_resp r;
    IT_CHECK(create(body, &r) == 0, "no answer");
    bool ok = r.status == 201;
    IT_CHECK(ok, "create: %d %s", r.status, r.body ? r.body : "");
    const char *id = it_str(r.json, "id"), *url = it_str(r.json, "url");
    snprintf(m->id, sizeof m->id, "%s", id);
    snprintf(m->token, sizeof m->token, "%s", it_str(r.json, "token"));
    char prefix[64];
    snprintf(prefix, sizeof prefix, "ws://127.0.0.1:%d/call_streams/", srv.port);
    IT_CHECK(strncmp(id, "CS", 2) == 0 && strlen(id) == 34, "id %s", id);
    IT_CHECK(strncmp(url, prefix, strlen(prefix)) == 0 && strstr(url, id), "url %s", url);
    IT_CHECK(strlen(m->token) >= 32, "token %s", m->token);
    snprintf(m->path, sizeof m->path, "%s", url + strlen(prefix) - strlen("/call_streams/"));
    it_resp_free(&r);
    return ok && m->id[0];
}

static int connect_with(it_ws *w, const made *m, const char *token)
{
    char path[512];
    snprintf(path, sizeof path, "%s?token=%s", m->path, token);
    return it_ws_connect(w, srv.port, path, NULL);
}

/* What connecting to `path` with `token` (NULL: none) answers; the socket is closed. */
static int connect_code(const char *path, const char *token)
{
    char target[512];
    snprintf(target, sizeof target, "%s%s%s", path, token ? "?token=" : "", token ? token : "");
    it_ws w;
    int code = it_ws_connect(&w, srv.port, target, NULL);
    it_ws_close(&w);
    return code;
}

/* GET /api/v1/call_streams/{id}: its status, "" when not 200. */
static void stream_status(const char *id, char *out, size_t cap)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/call_streams/%s", id);
    cJSON *j = it_get_json(srv.port, target);
    snprintf(out, cap, "%s", j ? it_str(j, "status") : "");
    cJSON_Delete(j);
}

static int complete(const char *id, it_resp *r)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/call_streams/%s/complete", id);
    return it_http(srv.port, "POST", target, JSON, "", r);
}

static int status_of(const char *method, const char *target, const char *body)
{
    it_resp r;
    if (it_http(srv.port, method, target, body ? JSON : NULL, body, &r) < 0) return -1;
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* A clip of the corpus (16 kHz) as 16-bit little-endian PCM, then `silence_ms` of
 * silence; its length in samples in *samples. malloc'd. */
static uint8_t *pcm16_clip(const char *name, unsigned silence_ms, size_t *len, size_t *samples)
{
    char path[512];
    snprintf(path, sizeof path, "%s/wav/%s", corpus(), name);
    int16_t *pcm;
    size_t n;
    unsigned rate;
    if (cs_wav_load(path, &pcm, &n, &rate) < 0 || rate != 16000) {
        IT_CHECK(false, "cannot load %s at 16 kHz", path);
        return NULL;
    }
    size_t total = n + silence_ms * 16;
    uint8_t *out = calloc(total, 2);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)((uint16_t)pcm[i] & 0xff);
        out[2 * i + 1] = (uint8_t)((uint16_t)pcm[i] >> 8);
    }
    free(pcm);
    *len = total * 2;
    *samples = total;
    return out;
}

static bool live_in_api(void *data)
{
    char st[32];
    stream_status(data, st, sizeof st);
    return strcmp(st, "in-progress") == 0;
}

/* A PCM source at 16 kHz in frames of odd and uneven sizes: the call is live, recorded at
 * the audio's length, transcribed with the clip's words, ended by `complete`; its token
 * is good once, and a second complete is refused. */
static void pcm_source(void)
{
    const char *args[] = {"--stt", "pocketsphinx", "--stt-max-sessions", "1", NULL};
    if (!it_server_up(&srv, args)) return;
    made m;
    if (!create_ok("{\"format\":\"pcm16\",\"rate\":16000,\"from\":\"+15550100001\","
                   "\"to\":\"rig\",\"name\":\"bench 1\",\"params\":{\"Team\":\"qa\"}}",
                   &m))
        goto out;
    char st[32];
    stream_status(m.id, st, sizeof st);
    IT_CHECK(strcmp(st, "waiting") == 0, "before connecting: %s", st);

    it_ws w;
    IT_CHECK(connect_with(&w, &m, m.token) == 0, "the source cannot connect");
    IT_CHECK(it_until(live_in_api, m.id, 10000), "the stream never shows live");
    int code = connect_code(m.path, m.token);
    IT_CHECK(code == 409, "the token used twice: %d", code);

    /* Listen-in takes the id like a Twilio call's. */
    it_ws mon;
    IT_CHECK(it_ws_connect(&mon, srv.port, "/monitor", it_auth) == 0, "no listen-in socket");
    char sub[160];
    snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"caller\"}",
             m.id);
    it_ws_send_text(&mon, sub);
    cs_ws_event ev;
    bool subscribed = false;
    for (long long end = it_now_ms() + 5000; !subscribed && it_now_ms() < end;)
        subscribed = it_ws_next(&mon, &ev, 1000) == 1 && ev.opcode == CS_WS_OP_TEXT &&
                     memmem(ev.data, ev.len, "\"subscribed\"", 12) &&
                     memmem(ev.data, ev.len, "\"live\":true", 11);
    IT_CHECK(subscribed, "listen-in did not subscribe to the live stream");

    size_t len, samples;
    uint8_t *pcm = pcm16_clip("pocketsphinx_goforward.wav", 1500, &len, &samples);
    static const size_t sizes[] = {641, 639, 320, 1, 959};
    IT_CHECK(pcm && it_ws_send_frames(&w, pcm, len, sizes, 5, 10) == 0, "streaming failed");
    free(pcm);
    size_t heard = it_ws_recv_binary(&mon, 1000, NULL, NULL, NULL);
    IT_CHECK(heard > 8000, "listen-in heard %zu bytes of the caller", heard);
    it_ws_close(&mon);
    cJSON *live = it_live_stream(srv.port, m.id, NULL, 5000);
    IT_CHECK(live != NULL, "not in /streams while live");
    cJSON_Delete(live);

    it_resp r;
    IT_CHECK(complete(m.id, &r) == 0 && r.status == 200 &&
                 strcmp(it_str(r.json, "status"), "completed") == 0,
             "complete: %d %s", r.status, r.body ? r.body : "");
    it_resp_free(&r);
    code = it_ws_close_code(&w, 10000);
    IT_CHECK(code == 1000, "the source's socket closed with %d", code);
    it_ws_close(&w);

    cJSON *call = it_call_recorded(srv.port, m.id, 20000);
    IT_CHECK(call != NULL, "no finished recording");
    const cJSON *rec = cJSON_GetObjectItem(call, "recording");
    int rec_ms = it_num(rec, "duration_ms"), want_ms = (int)(samples / 16);
    IT_CHECK(rec_ms >= want_ms - 60 && rec_ms <= want_ms + 20, "recording %d ms, sent %d ms",
             rec_ms, want_ms);
    IT_CHECK(strcmp(it_str(call, "direction"), "api") == 0, "direction %s",
             it_str(call, "direction"));
    IT_CHECK(strcmp(it_str(call, "status"), "completed") == 0, "status %s", it_str(call, "status"));
    IT_CHECK(it_call_events(call, "control", NULL) == 1, "no control event for complete");
    IT_CHECK(strcmp(it_str(call, "from"), "+15550100001") == 0, "from %s", it_str(call, "from"));
    const cJSON *params = cJSON_GetObjectItem(call, "parameters");
    IT_CHECK(strcmp(it_str(params, "Team"), "qa") == 0 &&
                 strcmp(it_str(params, "Name"), "bench 1") == 0,
             "parameters not kept");
    cJSON_Delete(call);

    char text[2048] = "";
    for (long long end = it_now_ms() + 20000; it_now_ms() < end && !strstr(text, "forward");) {
        it_transcript(srv.port, m.id, "caller", text, sizeof text);
        if (!strstr(text, "forward")) it_sleep_ms(200);
    }
    IT_CHECK(strstr(text, "forward") != NULL, "transcript '%s' lacks the clip's words", text);

    stream_status(m.id, st, sizeof st);
    IT_CHECK(strcmp(st, "completed") == 0, "after the call: %s", st);
    IT_CHECK(complete(m.id, &r) == 0 && r.status == 409, "second complete: %d", r.status);
    it_resp_free(&r);
    code = connect_code(m.path, m.token);
    IT_CHECK(code == 404, "the token after the call: %d", code);
    IT_CHECK(it_metric(srv.port, "callstream_call_streams_total{event=\"created\"}") == 1 &&
                 it_metric(srv.port, "callstream_call_streams_total{event=\"connected\"}") == 1 &&
                 it_metric(srv.port, "callstream_call_streams_total{event=\"ended\"}") == 1,
             "lifecycle counters");
    IT_CHECK(it_metric(srv.port, "callstream_call_stream_frames_resampled_total") > 100,
             "frames resampled: %g",
             it_metric(srv.port, "callstream_call_stream_frames_resampled_total"));
    IT_CHECK(it_metric(srv.port, "callstream_call_stream_odd_frames_total") > 10, "odd frames: %g",
             it_metric(srv.port, "callstream_call_stream_odd_frames_total"));
out:
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the gateway did not stop cleanly");
    it_server_cleanup(&srv);
}

/* The echo agent answers a source in its own format: PCM at 16 kHz comes back as PCM at
 * 16 kHz (even-sized frames); the source closing its socket ends the call. */
static void agent_answers(void)
{
    const char *args[] = {"--echo-mark-ms", "200", NULL};
    if (!it_server_up(&srv, args)) return;
    made m;
    if (!create_ok("{\"format\":\"pcm16\",\"rate\":16000,\"agent\":\"echo\"}", &m)) goto out;
    it_ws w;
    IT_CHECK(connect_with(&w, &m, m.token) == 0, "the source cannot connect");
    size_t len, samples;
    uint8_t *pcm = pcm16_clip("pocketsphinx_cards_001.wav", 0, &len, &samples);
    static const size_t sizes[] = {640};
    IT_CHECK(pcm && it_ws_send_frames(&w, pcm, len, sizes, 1, 20) == 0, "streaming failed");
    free(pcm);
    size_t frames, odd, texts;
    size_t got = it_ws_recv_binary(&w, 3000, &frames, &odd, &texts);
    /* The echo agent says back what it heard: the clip, at the source's rate. */
    IT_CHECK(got > len / 4, "got %zu bytes back of %zu sent", got, len);
    IT_CHECK(frames > 0 && odd == 0, "%zu frames back, %zu of an odd length", frames, odd);
    IT_CHECK(texts > 0, "no marks came with the agent's audio");
    it_ws_send(&w, CS_WS_OP_CLOSE, "\x03\xe8", 2);
    it_ws_close_code(&w, 5000);
    it_ws_close(&w);
    cJSON *call = it_call_recorded(srv.port, m.id, 20000);
    IT_CHECK(call && strcmp(it_str(call, "status"), "completed") == 0, "call not completed");
    IT_CHECK(call && it_call_events(call, "agent", NULL) > 0, "no agent event");
    cJSON_Delete(call);
out:
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the gateway did not stop cleanly");
    it_server_cleanup(&srv);
}

static bool is_expired(void *data)
{
    char st[32];
    stream_status(data, st, sizeof st);
    return strcmp(st, "expired") == 0;
}

/* Every refusal, with a clear status. */
static void refusals(void)
{
    const char *args[] = {"--call-stream-token-s", "5", "--call-stream-max-pending", "2", NULL};
    if (!it_server_up(&srv, args)) return;
    static const char *const bad[] = {
        "{}",
        "{\"format\":\"opus\"}",
        "{\"format\":\"pcm16\",\"rate\":11025}",
        "{\"format\":\"mulaw\",\"rate\":16000}",
        "{\"format\":\"pcm16\",\"rate\":\"16000\"}",
        "{\"format\":\"pcm16\",\"rate\":-1}",
        "{\"format\":\"pcm16\",\"rate\":1e30}",
        "{\"format\":\"mulaw\",\"from\":"
        "\"01234567890123456789012345678901234567890123456789012345678901234\"}",
        "{\"format\":\"mulaw\",\"agent\":\"nobody\"}",
        "{\"format\":\"mulaw\",\"params\":{\"From\":\"x\"}}",
        "{\"format\":\"mulaw\",\"params\":[1]}",
        "[1]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int st = status_of("POST", "/api/v1/call_streams", bad[i]);
        IT_CHECK(st == 400, "%s: %d", bad[i], st);
    }
    it_resp r;
    it_http_browser(srv.port, "POST", "/api/v1/call_streams", JSON, "{\"format\":\"mulaw\"}", &r);
    IT_CHECK(r.status == 401, "without a credential: %d", r.status);
    it_resp_free(&r);
    IT_CHECK(status_of("GET", "/api/v1/call_streams/CS0123456789abcdef0123456789abcdef", NULL) ==
                 404,
             "unknown id");
    IT_CHECK(status_of("GET", "/api/v1/call_streams/nope", NULL) == 404, "malformed id");
    IT_CHECK(status_of("POST", "/api/v1/call_streams/CA0123456789abcdef0123456789abcdef/complete",
                       "{}") == 404,
             "a Twilio call is not a call stream");
    IT_CHECK(connect_code("/call_streams/CS0123456789abcdef0123456789abcdef", "x") == 404,
             "unknown id on the socket");
    it_ws w;

    made a, b, c;
    if (!create_ok("{\"format\":\"mulaw\",\"rate\":8000}", &a) ||
        !create_ok("{\"format\":\"pcm16\"}", &b))
        goto out;
    int st = status_of("POST", "/api/v1/call_streams", "{\"format\":\"mulaw\"}");
    IT_CHECK(st == 429, "over CALL_STREAM_MAX_PENDING: %d", st);
    IT_CHECK(it_metric(srv.port, "callstream_call_streams_limited_total") == 1, "limited counter");

    IT_CHECK(connect_code(a.path, "0000") == 403, "a wrong token");
    IT_CHECK(connect_code(a.path, NULL) == 403, "no token");
    char other[sizeof a.path + 16];
    snprintf(other, sizeof other, "%s?other=1", a.path); /* a query, but no token in it */
    IT_CHECK(connect_code(other, NULL) == 403, "a query without a token");
    IT_CHECK(it_metric(srv.port, "callstream_call_streams_bad_token_total") == 3,
             "bad token counter");

    /* Completed before it connected: canceled, and its token is gone. */
    IT_CHECK(complete(b.id, &r) == 0 && r.status == 200 &&
                 strcmp(it_str(r.json, "status"), "canceled") == 0,
             "complete of a waiting stream: %d %s", r.status, r.body ? r.body : "");
    it_resp_free(&r);
    IT_CHECK(complete(b.id, &r) == 0 && r.status == 409, "complete twice: %d", r.status);
    it_resp_free(&r);
    IT_CHECK(connect_code(b.path, b.token) == 404, "a canceled stream's token");

    /* Never connected: it expires (an event, a status), and its token with it. */
    IT_CHECK(it_until(is_expired, a.id, 20000), "the stream never expired");
    int code = connect_code(a.path, a.token);
    IT_CHECK(code == 404, "an expired token: %d", code);
    /* its loop says so at once; its events are the store's, a moment later on another */
    cJSON *call = it_call_events_at_least(srv.port, a.id, "status", 2, 10000);
    IT_CHECK(call && it_call_events(call, "status", NULL) >= 2, "no status events");
    cJSON_Delete(call);
    IT_CHECK(it_metric(srv.port, "callstream_call_streams_total{event=\"expired\"}") == 1 &&
                 it_metric(srv.port, "callstream_call_streams_total{event=\"canceled\"}") == 1 &&
                 it_metric(srv.port, "callstream_call_streams_pending") == 0,
             "expiry counters");
    /* Room again, and μ-law passes through as sent. */
    if (create_ok("{\"format\":\"mulaw\"}", &c)) {
        /* A request that is no upgrade does not spend the token. */
        char target[512];
        snprintf(target, sizeof target, "%s?token=%s", c.path, c.token);
        st = status_of("GET", target, NULL);
        IT_CHECK(st == 400 || st == 426, "a plain GET with the token: %d", st);
        IT_CHECK(connect_with(&w, &c, c.token) == 0, "the source cannot connect");
        uint8_t ulaw[1603];
        memset(ulaw, 0x7f, sizeof ulaw);
        static const size_t sizes[] = {160, 3, 7};
        it_ws_send_frames(&w, ulaw, sizeof ulaw, sizes, 3, 0);
        it_ws_send_text(&w, "{\"event\":\"dtmf\",\"digit\":\"5\"}");
        it_ws_send_text(&w, "{\"event\":\"dtmf\",\"digit\":\"55\"}");
        it_ws_send(&w, CS_WS_OP_CLOSE, "\x03\xe8", 2);
        it_ws_close_code(&w, 5000);
        it_ws_close(&w);
        cJSON *done = it_call_recorded(srv.port, c.id, 20000);
        const cJSON *rec = cJSON_GetObjectItem(done, "recording");
        IT_CHECK(it_num(rec, "duration_ms") == 200, "μ-law recording %d ms, sent 200.375",
                 it_num(rec, "duration_ms"));
        IT_CHECK(it_call_events(done, "dtmf", NULL) == 1, "dtmf events: %d",
                 it_call_events(done, "dtmf", NULL));
        cJSON_Delete(done);
    }
    /* One left waiting at shutdown: it expires with the gateway. */
    made d;
    create_ok("{\"format\":\"pcm16\",\"rate\":8000}", &d);
out:
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "unclean shutdown (a stream waiting)");
    it_server_cleanup(&srv);
}

/* A stream waiting for its source counts towards MAX_CALLS: one more is refused, and
 * once the first is canceled there is room again. */
static void gateway_full(void)
{
    const char *args[] = {"--max-calls", "1", NULL};
    if (!it_server_up(&srv, args)) return;
    made a, b;
    if (create_ok("{\"format\":\"mulaw\"}", &a)) {
        it_resp r;
        IT_CHECK(create("{\"format\":\"mulaw\"}", &r) == 0 && r.status == 503 &&
                     strstr(r.body, "MAX_CALLS"),
                 "a second stream over MAX_CALLS=1: %d %s", r.status, r.body ? r.body : "");
        it_resp_free(&r);
        IT_CHECK(it_metric(srv.port, "callstream_call_streams_limited_total") == 1,
                 "limited counter");
        IT_CHECK(complete(a.id, &r) == 0 && r.status == 200, "cancel: %d", r.status);
        it_resp_free(&r);
        IT_CHECK(create_ok("{\"format\":\"mulaw\"}", &b), "room again once canceled");
    }
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "unclean shutdown");
    it_server_cleanup(&srv);
}

static const it_case tests[] = {
    {"pcm_source", pcm_source},
    {"agent_answers", agent_answers},
    {"refusals", refusals},
    {"gateway_full", gateway_full},
};

int main(int argc, char **argv)
{
    return it_run("call_streams", tests, sizeof tests / sizeof *tests, argc, argv);
}
