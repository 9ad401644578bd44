/* The media socket (GET /twilio/media) and the relay socket (GET /twilio/relay, text
 * both ways): one WebSocket per stream, signed on the upgrade. Messages are rate
 * limited, parsed by the provider, and handed to the call layer (which owns the stream's
 * agent); a bad message is counted and skipped and the call goes on. Closing without
 * `stop` ends a media stream as abnormal; a relay has no stop: its socket closing ends
 * it. A source of binary audio (call_streams.c) is attached here once its token is
 * checked: its stream starts at once, and its socket closing cleanly is its stop. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/limiter.h"
#include "core/log.h"
#include "http/gateway.h"
#include "provider/twilio_sig.h"

struct media_sock {
    cs_gateway *gw;
    cs_wsconn ws;
    cs_stream *stream; /* after start, until the stream ends */
    char sid[CS_SID_MAX + 1];
    cs_str sid_str;                 /* sid as a view, measured once */
    cs_stream_stats pre;            /* refusals before start */
    uint32_t pre_logged;            /* kinds logged before start */
    bool connected;                 /* `connected` seen */
    bool ended;                     /* the stream ended; the socket is closing */
    enum cs_end_reason closing_why; /* why we close it, when we do */
    bool we_close;
    bool relay; /* the relay socket: text, its setup starts the stream */
    const cs_provider_ops *prov;
    cs_pcodec *codec; /* a source of binary audio: its format */
    uint64_t opened_ms;
    cs_bucket rate; /* MAX_MESSAGES_PER_S, with a one-second burst */
    char peer[46];
    media_sock *prev, *next;
};

/* ---- refusals ---- */

static void bad(media_sock *m, enum cs_bad kind, const char *why)
{
    if (m->stream) {
        cs_stream_bad(m->stream, kind, why);
        return;
    }
    m->pre.bad[kind]++;
    m->gw->calls.stats.bad[kind]++;
    if (m->pre_logged & (1u << kind)) return;
    m->pre_logged |= 1u << kind;
    cs_warn("media: skipped a bad message from %s before start (%s): %s", m->peer,
            cs_bad_label(kind), why);
}

static bool rate_ok(media_sock *m)
{
    return cs_bucket_take(&m->rate, (double)m->gw->cfg->max_messages_per_s, 1000,
                          (int64_t)uv_now(m->gw->loop));
}

/* ---- what goes back to the provider ---- */

static int send_built(media_sock *m, int rc, enum cs_ws_op op)
{
    cs_gateway *gw = m->gw;
    if (rc == 0) rc = cs_wsconn_send(&m->ws, op, gw->out.data, gw->out.len);
    cs_buf_reset(&gw->out);
    return rc;
}

static int sink_media(void *data, const uint8_t *ulaw, size_t n)
{
    media_sock *m = data;
    cs_buf *out = &m->gw->out;
    if (!m->codec)
        return send_built(m, m->prov->write_media(out, m->sid_str, ulaw, n), CS_WS_OP_TEXT);
    int rc = m->prov->write_binary(m->codec, out, ulaw, n);
    /* The resampler may hold a short piece back for the next one. */
    if (rc == 0 && out->len == 0) return 0;
    return send_built(m, rc, CS_WS_OP_BINARY);
}

static int sink_mark(void *data, cs_str name)
{
    media_sock *m = data;
    return send_built(m, m->prov->write_mark(&m->gw->out, m->sid_str, name), CS_WS_OP_TEXT);
}

static int sink_clear(void *data)
{
    media_sock *m = data;
    return send_built(m, m->prov->write_clear(&m->gw->out, m->sid_str), CS_WS_OP_TEXT);
}

static int sink_relay(void *data, const cs_relay_out *msg)
{
    media_sock *m = data;
    return send_built(m, m->prov->write_relay(&m->gw->out, msg), CS_WS_OP_TEXT);
}

static void hang_up(media_sock *m, enum cs_end_reason why, uint16_t code, const char *reason);

static void sink_close(void *data)
{
    media_sock *m = data;
    cs_info("media: the agent ends the call");
    hang_up(m, CS_END_HANGUP, CS_WS_CLOSE_NORMAL, "call ended by the agent");
}

/* ---- stream lifecycle ---- */

static void end_stream(media_sock *m, enum cs_end_reason why)
{
    if (!m->stream) return;
    cs_stream_end(m->stream, why);
    m->stream = NULL;
    m->ended = true;
}

/* We end the stream and close the socket. */
static void hang_up(media_sock *m, enum cs_end_reason why, uint16_t code, const char *reason)
{
    m->we_close = true;
    m->closing_why = why;
    end_stream(m, why);
    cs_wsconn_close(&m->ws, code, reason);
}

static enum cs_stream_mode mode_of(const media_sock *m, const cs_pevent *ev)
{
    const cs_gateway *gw = m->gw;
    if (m->relay) return CS_MODE_RELAY;
    if (m->codec) return CS_MODE_TWO_WAY; /* its own source: we may always answer */
    /* Our TwiML says which verb opened the stream; Twilio's start does not. */
    for (size_t i = 0; i < ev->start.nparams; i++) {
        const cs_kv *kv = &ev->start.params[i];
        if (cs_str_eqz(kv->name, "StreamMode"))
            return cs_str_eqz(kv->value, "one-way") ? CS_MODE_ONE_WAY : CS_MODE_TWO_WAY;
    }
    return strcmp(gw->cfg->stream_mode, "start") == 0 ? CS_MODE_ONE_WAY : CS_MODE_TWO_WAY;
}

static void on_start(media_sock *m, const cs_pevent *ev)
{
    cs_gateway *gw = m->gw;
    if (m->stream || m->ended) {
        bad(m, CS_BAD_ORDER, "a second start");
        return;
    }
    const char *account = gw->cfg->twilio_account_sid;
    if (account[0] && !m->codec && !cs_str_eqz(ev->start.account_id, account)) {
        gw->stats.account_refused++;
        cs_warn("media: refused a stream of account %.*s from %s (TWILIO_ACCOUNT_SID is %s)",
                (int)ev->start.account_id.n, ev->start.account_id.p, m->peer, account);
        hang_up(m, CS_END_HANGUP, CS_WS_CLOSE_POLICY, "account not allowed");
        return;
    }
    enum cs_stream_mode mode = mode_of(m, ev);
    bool stereo = ev->start.tracks & CS_TRACK_BIT(CS_TRACK_OUTBOUND);
    m->sid_str = (cs_str){m->sid, cs_str_copy(m->sid, sizeof m->sid, ev->start.stream_id)};
    cs_stream_sink sink = {sink_media, sink_mark, sink_clear, sink_close, m, sink_relay};
    /* The stream's log context while the call layer starts it (and its agent). */
    cs_log_ctx ctx = {.stream = m->sid};
    const cs_log_ctx *prev = cs_log_set_ctx(&ctx);
    int rc = cs_stream_begin(&gw->calls, ev, mode, stereo, &sink, m, &m->pre, &m->stream);
    if (rc < 0) {
        cs_warn("media: cannot start stream %s from %s: %s", m->sid, m->peer,
                rc == CS_ESTATE ? "it is live on another socket" : cs_strerror(rc));
        hang_up(m, CS_END_HANGUP, CS_WS_CLOSE_POLICY,
                rc == CS_ESTATE ? "stream already active" : "cannot start the stream");
        cs_log_set_ctx(prev);
        return;
    }
    cs_log_set_ctx(&m->stream->log);
    if (m->relay)
        cs_info("media: relay session started from %s", m->peer);
    else
        cs_info("media: stream started (%s, tracks %s%s) from %s",
                mode == CS_MODE_TWO_WAY ? "two-way" : "one-way",
                ev->start.tracks & CS_TRACK_BIT(CS_TRACK_INBOUND) ? "inbound" : "",
                ev->start.tracks & CS_TRACK_BIT(CS_TRACK_OUTBOUND) ? " outbound" : "", m->peer);
    cs_log_set_ctx(prev);
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    media_sock *m = ws->data;
    cs_gateway *gw = m->gw;
    uint64_t t0 = cs_mono_ns();
    if (!rate_ok(m)) {
        bad(m, CS_BAD_RATE, "over MAX_MESSAGES_PER_S");
        return;
    }
    cs_pevent ev;
    enum cs_bad kind;
    if (op != CS_WS_OP_TEXT && !m->codec) {
        bad(m, CS_BAD_BINARY, "a binary frame on a JSON text protocol");
        return;
    }
    int rc = op == CS_WS_OP_TEXT ? (m->relay ? m->prov->parse_relay
                                             : m->prov->parse)(data, len, &ev, &gw->scratch, &kind)
                                 : m->prov->parse_binary(m->codec, (const uint8_t *)data, len, &ev,
                                                         &gw->scratch, &kind);
    if (rc < 0) {
        bad(m, kind, cs_bad_label(kind));
        return;
    }
    /* A binary frame of less than a millisecond: held back for the next one. */
    if (ev.type == CS_PEV_MEDIA && ev.media.len == 0) return;
    if (ev.type == CS_PEV_CONNECTED) {
        if (m->connected || m->stream) bad(m, CS_BAD_ORDER, "connected after the stream began");
        m->connected = true;
        return;
    }
    if (ev.type == CS_PEV_START) {
        on_start(m, &ev);
        return;
    }
    cs_stream *s = m->stream;
    if (!s) {
        bad(m, CS_BAD_ORDER, m->ended ? "a message after stop" : "a message before start");
        return;
    }
    if (!m->relay && !m->codec && !cs_str_eq(ev.stream_id, m->sid_str)) {
        cs_stream_bad(s, CS_BAD_STREAM, "streamSid differs from the one this socket started");
        return;
    }
    const cs_log_ctx *prev = cs_log_set_ctx(&s->log);
    cs_stream_event(s, &ev, NULL);
    if (ev.type == CS_PEV_STOP) {
        cs_info("media: stream stopped by the provider");
        hang_up(m, CS_END_STOP, CS_WS_CLOSE_NORMAL, NULL);
    } else if (ev.type == CS_PEV_MEDIA || m->relay) {
        if (ev.type == CS_PEV_MEDIA)
            cs_hist_observe(&gw->calls.stats.frame_seconds, (double)(cs_mono_ns() - t0) / 1e9);
        if (uv_now(gw->loop) - m->opened_ms > (uint64_t)gw->cfg->max_call_s * 1000) {
            cs_warn("media: stream reached MAX_CALL_S (%lld s); ending it",
                    (long long)gw->cfg->max_call_s);
            hang_up(m, CS_END_MAX_DURATION, CS_WS_CLOSE_NORMAL, "maximum call duration");
        }
    }
    cs_log_set_ctx(prev);
}

static void on_oversize(cs_wsconn *ws, enum cs_ws_op op, uint64_t bytes)
{
    (void)op;
    media_sock *m = ws->data;
    char why[96];
    snprintf(why, sizeof why, "a %llu-byte message over MAX_MESSAGE_BYTES",
             (unsigned long long)bytes);
    bad(m, CS_BAD_OVERSIZE, why);
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    media_sock *m = ws->data;
    cs_gateway *gw = m->gw;
    if (m->stream) {
        /* A relay's session, or a binary source, ends with its socket closing cleanly:
         * that is its stop. */
        bool relay_done =
            (m->relay || m->codec) && !m->we_close && !err && code == CS_WS_CLOSE_NORMAL;
        enum cs_end_reason why = m->we_close         ? m->closing_why
                                 : relay_done        ? CS_END_STOP
                                 : err == -ETIMEDOUT ? CS_END_IDLE
                                                     : CS_END_ABNORMAL;
        const cs_log_ctx *prev = cs_log_set_ctx(&m->stream->log);
        if (relay_done)
            cs_info("media: the %s ended", m->relay ? "relay session" : "source's stream");
        else
            cs_warn("media: socket closed without stop (code %u%s%s); stream ends as %s", code,
                    err ? ", " : "", err ? cs_strerror(err) : "", cs_end_label(why));
        cs_log_set_ctx(prev);
        end_stream(m, why);
    }
    if (m->prev)
        m->prev->next = m->next;
    else
        gw->sockets = m->next;
    if (m->next) m->next->prev = m->prev;
    gw->nsockets--;
    cs_quota_give(&gw->shared->calls);
    if (m->codec) m->prov->codec_free(m->codec);
    free(m);
}

static const cs_wsconn_ops media_ops = {
    .on_message = on_message,
    .on_oversize = on_oversize,
    .on_close = on_close,
};

/* The socket of an upgrade whose credential was checked: NULL once answered. */
static media_sock *sock_open(cs_request *r, bool relay, cs_pcodec *codec)
{
    cs_gateway *gw = r->app;
    media_sock *m = calloc(1, sizeof *m);
    if (!m) {
        cs_respond_error(r, 503, "out of memory");
        return NULL;
    }
    m->gw = gw;
    m->relay = relay;
    m->prov = codec ? &cs_provider_binary : gw->provider;
    snprintf(m->peer, sizeof m->peer, "%s", r->conn ? r->conn->peer_ip : "?");
    m->opened_ms = uv_now(gw->loop);
    m->rate = cs_bucket_full((double)gw->cfg->max_messages_per_s, (int64_t)m->opened_ms);
    if (cs_request_upgrade(r, &m->ws, (size_t)gw->cfg->max_message_bytes, &media_ops, m) < 0) {
        free(m);
        return NULL;
    }
    m->codec = codec; /* ours from here: freed with the socket */
    m->ws.conn->idle_timeout_ms = (uint32_t)gw->cfg->idle_timeout_s * 1000;
    m->next = gw->sockets;
    if (gw->sockets) gw->sockets->prev = m;
    gw->sockets = m;
    gw->nsockets++;
    cs_quota_add(&gw->shared->calls); /* MAX_CALLS is asked at the webhook, not here */
    if (relay)
        gw->stats.relay_sockets_total++;
    else
        gw->stats.media_sockets_total++;
    return m;
}

/* Both sockets: signed over the URL our TwiML gave (`url`), then the same limits. */
static void upgrade(cs_request *r, const char *url, bool relay)
{
    cs_gateway *gw = r->app;
    if (gw->draining) {
        cs_respond_error(r, 503, "shutting down");
        return;
    }
    const char *token = gw->cfg->twilio_auth_token;
    if (token[0]) {
        const cs_str *sig = cs_request_header(r, "X-Twilio-Signature");
        char sigz[CS_TWILIO_SIG_LEN + 8] = "";
        if (sig) cs_str_copy(sigz, sizeof sigz, *sig);
        if (!sig || cs_twilio_sig_check_upgrade(token, url, sigz) < 0) {
            gw->stats.sig_refused_upgrade++;
            cs_warn("media: refused a%s upgrade from %s: %s X-Twilio-Signature",
                    relay ? " relay" : "n", r->conn ? r->conn->peer_ip : "?", sig ? "wrong" : "no");
            cs_respond_error(r, 403, "invalid X-Twilio-Signature");
            return;
        }
    }
    sock_open(r, relay, NULL);
}

int cs_media_attach(cs_request *r, cs_pcodec *codec, const cs_pevent *start)
{
    media_sock *m = sock_open(r, false, codec);
    if (!m) return -1;
    on_start(m, start);
    return 0;
}

void cs_media_upgrade(cs_request *r)
{
    cs_gateway *gw = r->app;
    upgrade(r, gw->stream_url, false);
}

void cs_relay_upgrade(cs_request *r)
{
    cs_gateway *gw = r->app;
    upgrade(r, gw->relay_url, true);
}

int cs_media_end_call(cs_gateway *gw, const char *call_sid, const char *reason)
{
    cs_call *call = cs_calls_call(&gw->calls, cs_str_of(call_sid));
    if (!call) return CS_ENOTFOUND;
    /* Ending its last stream ends the call: take the sockets first. */
    media_sock *socks[CS_CALL_MAX_STREAMS];
    size_t n = call->nstreams;
    for (size_t i = 0; i < n; i++) socks[i] = call->streams[i]->owner;
    for (size_t i = 0; i < n; i++)
        if (!socks[i]->we_close) hang_up(socks[i], CS_END_HANGUP, CS_WS_CLOSE_NORMAL, reason);
    return 0;
}

void cs_media_close_all(cs_gateway *gw)
{
    for (media_sock *m = gw->sockets; m; m = m->next)
        if (!m->we_close) hang_up(m, CS_END_SHUTDOWN, CS_WS_CLOSE_GOING_AWAY, "shutting down");
}
