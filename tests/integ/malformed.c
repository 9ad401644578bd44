/* Bad input, case by case, while a real call streams next to it: every malformed HTTP
 * request gets the right status, every WebSocket protocol violation the right close
 * code, every bad media message is counted and skipped with the stream going on — and
 * the call in the background completes with nothing missing. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "integ_util.h"
#include "provider/twilio.h"

#define STREAM "MZ11111111111111111111111111111111"
#define CALL   "CA22222222222222222222222222222222"
#define ACCT   "AC33333333333333333333333333333333"

static it_server srv;
static int cases;

/* ---- HTTP ---- */

typedef struct http_case {
    const char *name;
    const char *request; /* NULL: built by `build` */
    void (*build)(cs_buf *out);
    int status;
} http_case;

static void long_header(cs_buf *out)
{
    cs_buf_puts(out, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 20000; i++) cs_buf_putc(out, 'a');
    cs_buf_puts(out, "\r\n\r\n");
}

static void long_target(cs_buf *out)
{
    cs_buf_puts(out, "GET /");
    for (int i = 0; i < 5000; i++) cs_buf_putc(out, 'a');
    cs_buf_puts(out, " HTTP/1.1\r\nHost: x\r\n\r\n");
}

static void many_headers(cs_buf *out)
{
    cs_buf_puts(out, "GET /health HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 70; i++) cs_buf_printf(out, "X-H%d: v\r\n", i);
    cs_buf_puts(out, "\r\n");
}

static void big_body(cs_buf *out)
{
    cs_buf_puts(out, "POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/x-www-form-urlencoded\r\nContent-Length: 200000\r\n\r\n");
    for (int i = 0; i < 200000; i++) cs_buf_putc(out, 'a');
}

static const http_case http_cases[] = {
    {"garbage request line", "HELLO\r\n\r\n", NULL, 400},
    {"bare LF line ends", "GET /health HTTP/1.1\nHost: x\n\n", NULL, 400},
    {"HTTP/2.0", "GET /health HTTP/2.0\r\nHost: x\r\n\r\n", NULL, 505},
    {"no Host on HTTP/1.1", "GET /health HTTP/1.1\r\n\r\n", NULL, 400},
    {"header over MAX_HEADER_BYTES", NULL, long_header, 431},
    {"target over 4096 bytes", NULL, long_target, 414},
    {"70 header fields", NULL, many_headers, 431},
    {"Content-Length and Transfer-Encoding",
     "POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     NULL, 400},
    {"Transfer-Encoding gzip",
     "POST /twilio/voice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", NULL, 501},
    {"body over MAX_BODY_BYTES", NULL, big_body, 413},
    {"malformed chunked body",
     "POST /twilio/voice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", NULL,
     400},
    {"header with obsolete line folding",
     "GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", NULL, 400},
    {"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 404},
    {"GET on the webhook", "GET /twilio/voice HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 405},
    {"webhook with a JSON body",
     "POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     "Content-Length: 2\r\n\r\n{}",
     NULL, 415},
    {"webhook with a bad percent escape",
     "POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: "
     "application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\nCallSid=%",
     NULL, 400},
    {"webhook without CallSid",
     "POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: "
     "application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nFrom=+1",
     NULL, 400},
    {"status callback with a bad CallSid",
     "POST /twilio/status HTTP/1.1\r\nHost: x\r\nContent-Type: "
     "application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\nCallSid=CA1",
     NULL, 400},
    {"API call with an invalid sid", "GET /api/v1/calls/nope HTTP/1.1\r\nHost: x\r\n\r\n", NULL,
     404},
    {"API limit out of range", "GET /api/v1/calls?limit=100000 HTTP/1.1\r\nHost: x\r\n\r\n", NULL,
     400},
    {"API cursor not ours", "GET /api/v1/calls?cursor=abc HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 400},
    {"recording of an unknown call",
     "GET /api/v1/calls/CA00000000000000000000000000000000/recording.wav HTTP/1.1\r\nHost: "
     "x\r\n\r\n",
     NULL, 404},
    {"media without an upgrade", "GET /twilio/media HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 400},
    {"media upgrade of version 8",
     "GET /twilio/media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
     NULL, 426},
    {"media upgrade with a short key",
     "GET /twilio/media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: abc=\r\nSec-WebSocket-Version: 13\r\n\r\n",
     NULL, 400},
};

static void run_http_cases(void)
{
    for (size_t i = 0; i < sizeof http_cases / sizeof *http_cases; i++) {
        const http_case *c = &http_cases[i];
        cs_buf raw = CS_BUF_INIT(1u << 22), req = CS_BUF_INIT(1u << 22);
        if (c->request)
            cs_buf_puts(&raw, c->request);
        else
            c->build(&raw);
        /* signed in, so the API's answers are about the request, not about who asks */
        const char *host = strstr(raw.data, "Host: x\r\n");
        if (host) {
            cs_buf_append(&req, raw.data, (size_t)(host - raw.data) + 9);
            cs_buf_puts(&req, it_auth);
            cs_buf_puts(&req, host + 9);
        } else {
            cs_buf_append(&req, raw.data, raw.len);
        }
        cs_buf_free(&raw);
        it_resp r;
        int rc = it_http_raw(srv.port, req.data, req.len, &r);
        IT_CHECK(rc == 0 && r.status == c->status, "%s: got %d, want %d", c->name, r.status,
                 c->status);
        if (c->status >= 400 && c->status != 426) /* errors are JSON with a message */
            IT_CHECK(r.json && cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "error"), "message"),
                     "%s: not a JSON error: %s", c->name, r.body ? r.body : "");
        if (c->status == 405) IT_CHECK(it_header(&r, "Allow") != NULL, "405 without Allow");
        if (c->status == 426)
            IT_CHECK(it_header(&r, "Sec-WebSocket-Version") != NULL, "426 without the version");
        it_resp_free(&r);
        cs_buf_free(&req);
        cases++;
    }
}

/* ---- WebSocket protocol violations: the socket is failed with a close code ---- */

/* A frame with the given first byte, masked or not, and a 7-bit or 64-bit length. */
static void raw_frame(it_ws *w, uint8_t b0, const void *payload, size_t n, bool masked,
                      uint64_t claimed)
{
    uint8_t h[14];
    size_t k = 0;
    h[k++] = b0;
    uint64_t len = claimed ? claimed : n;
    if (len < 126) {
        h[k++] = (uint8_t)((masked ? 0x80 : 0) | len);
    } else {
        h[k++] = (uint8_t)((masked ? 0x80 : 0) | 127);
        for (int i = 7; i >= 0; i--) h[k++] = (uint8_t)(len >> (8 * i));
    }
    uint8_t mask[4] = {1, 2, 3, 4};
    if (masked) memcpy(h + k, mask, 4), k += 4;
    it_ws_send_raw(w, h, k);
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, payload, n);
    if (masked) cs_ws_mask(p, n, mask, 0);
    it_ws_send_raw(w, p, n);
    free(p);
}

typedef struct ws_case {
    const char *name;
    uint8_t b0;
    const char *payload;
    size_t n;
    bool masked;
    uint64_t claimed;
    int code;
} ws_case;

static const ws_case ws_cases[] = {
    {"unmasked frame from a client", 0x81, "hi", 2, false, 0, 1002},
    {"invalid UTF-8 in a text message", 0x81, "\xc3\x28", 2, true, 0, 1007},
    {"reserved bit set", 0xc1, "hi", 2, true, 0, 1002},
    {"unknown opcode 3", 0x83, "hi", 2, true, 0, 1002},
    {"fragmented ping", 0x09, "hi", 2, true, 0, 1002},
    {"continuation without a message", 0x80, "hi", 2, true, 0, 1002},
    {"close with a reserved code", 0x88, "\x03\xed", 2, true, 0, 1002},
    {"message past the skip limit", 0x81, "", 0, true, 65536ull * 64 + 1, 1009},
};

static void run_ws_cases(void)
{
    for (size_t i = 0; i < sizeof ws_cases / sizeof *ws_cases; i++) {
        const ws_case *c = &ws_cases[i];
        it_ws w;
        int st = it_ws_connect(&w, srv.port, "/twilio/media", NULL);
        IT_CHECK(st == 0, "%s: upgrade refused (%d)", c->name, st);
        if (st == 0) {
            raw_frame(&w, c->b0, c->payload, c->n, c->masked, c->claimed);
            int code = it_ws_close_code(&w, 5000);
            IT_CHECK(code == c->code, "%s: closed with %d, want %d", c->name, code, c->code);
        }
        it_ws_close(&w);
        cases++;
    }
}

/* ---- bad media-stream messages: counted and skipped, the stream goes on ---- */

static void send_built(it_ws *w, cs_buf *b)
{
    it_ws_send_text(w, b->data);
    cs_buf_reset(b);
}

static void media(it_ws *w, cs_buf *b, uint64_t seq, uint64_t k)
{
    uint8_t audio[160];
    memset(audio, 0x55, sizeof audio);
    cs_twilio_peer_media(b, STREAM, seq, CS_TRACK_INBOUND, k + 1, k * 20, audio, sizeof audio);
    send_built(w, b);
}

typedef struct skip_case {
    const char *name;
    const char *kind; /* metric label */
    bool after_start;
    const char *text; /* NULL: binary frame / oversize, built below */
} skip_case;

static const skip_case skip_cases[] = {
    {"not JSON", "json", false, "{\"event\":"},
    {"a JSON array", "json", false, "[1,2,3]"},
    {"an unknown event", "unknown_event", false,
     "{\"event\":\"dance\",\"streamSid\":\"" STREAM "\"}"},
    {"media before start", "out_of_order", false,
     "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\",\"chunk\":"
     "\"1\",\"timestamp\":\"0\",\"payload\":\"AAAA\"},\"streamSid\":\"" STREAM "\"}"},
    {"a binary frame", "binary", false, NULL},
    {"a message over MAX_MESSAGE_BYTES", "oversize", false, NULL},
    {"payload that is not base64", "base64", true,
     "{\"event\":\"media\",\"sequenceNumber\":\"3\",\"media\":{\"track\":\"inbound\",\"chunk\":"
     "\"1\",\"timestamp\":\"0\",\"payload\":\"!!!!\"},\"streamSid\":\"" STREAM "\"}"},
    {"sequenceNumber as a number", "bad_field", true,
     "{\"event\":\"dtmf\",\"sequenceNumber\":4,\"dtmf\":{\"track\":\"inbound_track\",\"digit\":"
     "\"1\"},\"streamSid\":\"" STREAM "\"}"},
    {"another stream's media", "wrong_stream", true,
     "{\"event\":\"media\",\"sequenceNumber\":\"5\",\"media\":{\"track\":\"inbound\",\"chunk\":"
     "\"1\",\"timestamp\":\"0\",\"payload\":\"AAAA\"},\"streamSid\":"
     "\"MZ99999999999999999999999999999999\"}"},
    {"a second start", "out_of_order", true, NULL},
};

static void send_skip_case(it_ws *w, const skip_case *c, const char *start_msg)
{
    if (c->text) {
        it_ws_send_text(w, c->text);
    } else if (strcmp(c->kind, "binary") == 0) {
        it_ws_send(w, CS_WS_OP_BINARY, "\x01\x02\x03", 3);
    } else if (strcmp(c->kind, "oversize") == 0) {
        size_t n = 70000;
        char *big = malloc(n);
        memset(big, 'a', n);
        it_ws_send(w, CS_WS_OP_TEXT, big, n);
        free(big);
    } else {
        it_ws_send_text(w, start_msg);
    }
}

static bool took_ten_frames(const cJSON *stream)
{
    const cJSON *frames = cJSON_GetObjectItem(cJSON_GetObjectItem(stream, "stats"), "frames");
    const cJSON *in = cJSON_GetObjectItem(frames, "inbound");
    return cJSON_IsNumber(in) && in->valueint == 10;
}

static double bad_metric(const char *kind)
{
    char series[96];
    snprintf(series, sizeof series, "callstream_bad_frames_total{kind=\"%s\"}", kind);
    return it_metric(srv.port, series);
}

static void run_skip_cases(void)
{
    it_ws w;
    int st = it_ws_connect(&w, srv.port, "/twilio/media", NULL);
    IT_CHECK(st == 0, "upgrade refused (%d)", st);
    if (st) return;
    cs_buf b = CS_BUF_INIT(1 << 20);
    cs_twilio_peer_connected(&b);
    send_built(&w, &b);
    cs_kv params[] = {{CS_STR("From"), CS_STR("+15550009999")}};
    cs_twilio_start start = {ACCT, CALL, STREAM, CS_TRACK_BIT(CS_TRACK_INBOUND), params, 1};
    cs_twilio_peer_start(&b, 1, &start);
    char *start_msg = strdup(b.data);
    cs_buf_reset(&b);

    size_t n = sizeof skip_cases / sizeof *skip_cases;
    double before[16];
    for (size_t i = 0; i < n; i++) before[i] = bad_metric(skip_cases[i].kind);
    for (size_t i = 0; i < n; i++) {
        if (skip_cases[i].after_start && (i == 0 || !skip_cases[i - 1].after_start))
            it_ws_send_text(&w, start_msg);
        send_skip_case(&w, &skip_cases[i], start_msg);
    }
    /* the stream still works: media flows, then a clean stop */
    for (uint64_t k = 0; k < 10; k++) media(&w, &b, 10 + k, k);
    cJSON *mine = it_live_stream(srv.port, STREAM, took_ten_frames, 5000);
    IT_CHECK(mine != NULL, "the stream did not take its 10 frames after the bad messages");
    const cJSON *stats = cJSON_GetObjectItem(mine, "stats");
    const cJSON *bad = cJSON_GetObjectItem(stats, "badFrames");
    for (size_t i = 0; i < n; i++) {
        const skip_case *c = &skip_cases[i];
        const cJSON *v = cJSON_GetObjectItem(bad, c->kind);
        IT_CHECK(v && v->valueint >= 1, "%s: not counted as %s on the stream", c->name, c->kind);
        double after = bad_metric(c->kind);
        IT_CHECK(after >= before[i] + 1, "%s: metric %s %.0f → %.0f", c->name, c->kind, before[i],
                 after);
        cases++;
    }
    cJSON_Delete(mine);
    cs_twilio_peer_stop(&b, STREAM, 30, ACCT, CALL);
    send_built(&w, &b);
    IT_CHECK(it_ws_close_code(&w, 5000) == 1000, "stop did not end with 1000");
    it_ws_close(&w);
    cs_buf_free(&b);
    free(start_msg);
}

/* A socket that goes away without stop ends its stream as abnormal. */
static void abnormal_end(void)
{
    it_ws w;
    if (it_ws_connect(&w, srv.port, "/twilio/media", NULL) != 0) {
        IT_CHECK(0, "upgrade refused");
        return;
    }
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_start start = {ACCT,
                             "CA44444444444444444444444444444444",
                             "MZ44444444444444444444444444444444",
                             CS_TRACK_BIT(CS_TRACK_INBOUND),
                             NULL,
                             0};
    cs_twilio_peer_start(&b, 1, &start);
    send_built(&w, &b);
    it_sleep_ms(200);
    it_ws_close(&w); /* no stop, no close frame */
    cs_buf_free(&b);
    double abnormal = 0;
    for (int tries = 0; tries < 50 && abnormal < 1; tries++) {
        it_sleep_ms(20);
        abnormal = it_metric(srv.port, "callstream_streams_ended_total{reason=\"abnormal\"}");
    }
    IT_CHECK(abnormal == 1, "streams ended abnormal: %.0f", abnormal);
    cases++;
}

int main(void)
{
    const char *args[] = {"--agent", "echo", NULL};
    if (it_server_start(&srv, args) < 0) {
        IT_CHECK(0, "the server did not start");
        return it_done("malformed");
    }
    /* A real call flows next to everything below and must not notice. */
    pid_t sim = it_sim_spawn(&srv, "--wav %s --dtmf 5", it_corpus("wav/jfk_inaugural_1961.wav"));
    run_http_cases();
    run_ws_cases();
    run_skip_cases();
    abnormal_end();
    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    const cJSON *missing = cJSON_GetObjectItem(sum, "missing");
    IT_CHECK(exit_status == 0 && missing && missing->valueint == 0,
             "the call next to the bad input: exit %d, missing %d", exit_status,
             missing ? missing->valueint : -1);
    cJSON_Delete(sum);
    IT_CHECK(cases >= 25, "only %d cases", cases);
    printf("malformed: %d cases\n", cases);
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
    return it_done("malformed");
}
