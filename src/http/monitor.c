/* Live listen-in (docs/monitor.md): the publisher — a call observer that turns calls,
 * events and audio into bus messages once, whoever listens — and the /monitor socket,
 * which subscribes browsers to them. A browser that cannot keep up loses audio frames
 * (counted, and told), never the call's time or another listener's. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/auth.h"
#include "http/gateway.h"
#include "http/monitor_msg.h"
#include "provider/twilio.h"

#define MAX_WATCHES      8           /* calls one socket follows at once */
#define MAX_CONTROL      16384       /* largest message a browser may send */
#define AUDIO_HIGH_WATER (64u << 10) /* unsent bytes past which audio is dropped */
#define OUTPUT_MAX       (1u << 20)  /* unsent bytes past which the socket is closed */
#define SEND_BUFFER      (32 << 10)  /* kernel send buffer of a monitor socket */
#define PING_MS          15000
#define SILENT_MAX_MS    45000
#define FRAME_HEADER     20
/* The credential the socket was opened with has ended (private range, RFC 6455 §7.4.2;
 * as HTTP's 401). */
#define CLOSE_SIGNED_OUT 4401

/* ---- the publisher ---- */

static void call_summary(cs_json *j, const cs_call *call, bool is_live)
{
    char iso[25];
    cs_iso8601(iso, call->started_ms);
    cs_json_obj(j);
    cs_json_kstr(j, "sid", call->sid);
    cs_json_kstr(j, "from", call->from);
    cs_json_kstr(j, "to", call->to);
    cs_json_kstr(j, "started_at", iso);
    cs_json_kint(j, "duration_ms",
                 (call->ended_ms ? call->ended_ms : cs_wall_ms()) - call->started_ms);
    cs_json_kbool(j, "live", is_live);
    cs_json_kstr(j, "status", is_live ? "in-progress" : "completed");
    cs_json_key(j, "streams");
    cs_json_arr(j);
    for (size_t i = 0; i < call->nstreams; i++) {
        const cs_stream *s = call->streams[i];
        cs_json_obj(j);
        cs_json_kstr(j, "sid", s->sid);
        cs_json_kstr(j, "mode", cs_stream_mode_label(s->mode));
        cs_json_key(j, "tracks");
        cs_json_arr(j);
        if (s->tracks & CS_TRACK_BIT(CS_TRACK_INBOUND)) cs_json_str(j, "inbound");
        if (s->tracks & CS_TRACK_BIT(CS_TRACK_OUTBOUND)) cs_json_str(j, "outbound");
        cs_json_arr_end(j);
        cs_json_obj_end(j);
    }
    cs_json_arr_end(j);
    cs_json_obj_end(j);
}

static void publish_text(cs_gateway *gw, const char *topic, const char *text, size_t n,
                         bool final)
{
    cs_bus_msg m = {.kind = CS_BUS_TEXT, .topic = topic, .text = text, .len = n, .final = final};
    cs_bus_publish(gw->bus, &m);
}

/* {"type":<type>,"call":<summary>} to the list feed and to the call's own topic; the
 * summary is the call's directory entry while it lives. A call's end reaches the other
 * nodes' followers even if the bus's server is away now: held, and sent when it is back. */
static void publish_call(cs_gateway *gw, const char *sid, const char *type, const char *summary,
                         size_t n, bool final)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    if (cs_buf_printf(&b, "{\"type\":\"%s\",\"call\":", type) >= 0 &&
        cs_buf_append(&b, summary, n) >= 0 && cs_buf_putc(&b, '}') >= 0) {
        cs_bus_msg m = {
            .kind = CS_BUS_TEXT, .topic = CS_BUS_ALL, .text = b.data, .len = b.len, .hold = final};
        cs_bus_publish(gw->bus, &m);
        m.topic = sid;
        m.final = final;
        cs_bus_publish(gw->bus, &m);
    }
    cs_buf_free(&b);
}

/* The call's summary into the directory, and `type` (NULL: none) to those who follow. */
static void call_changed(cs_gateway *gw, const cs_call *call, const char *type, bool is_live)
{
    if (!gw->bus) return; /* stopped: nobody follows */
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_json j;
    cs_json_init(&j, &b);
    call_summary(&j, call, is_live);
    if (cs_json_end(&j) == 0) {
        if (is_live) cs_dir_put(gw->bus, call->sid, b.data, b.len);
        if (type) publish_call(gw, call->sid, type, b.data, b.len, !is_live);
    }
    cs_buf_free(&b);
    if (!is_live) cs_dir_end(gw->bus, call->sid);
}

void cs_monitor_call_lost(cs_gateway *gw, const char *sid, const char *summary, size_t n)
{
    if (!gw->bus) return;
    /* Its last summary, no longer live: the call's page and list see it end. */
    cJSON *o = summary ? cJSON_ParseWithLength(summary, n) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
        if (o) cJSON_AddStringToObject(o, "sid", sid);
    }
    char *text = NULL;
    if (o) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "live");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "status");
        cJSON_AddBoolToObject(o, "live", false);
        cJSON_AddStringToObject(o, "status", cs_end_label(CS_END_ABNORMAL));
        text = cJSON_PrintUnformatted(o);
    }
    if (text)
        publish_call(gw, sid, "call_ended", text, strlen(text), true);
    else
        cs_error("monitor: no memory to tell that call %s ended", sid);
    cJSON_free(text);
    cJSON_Delete(o);
}

static void on_call_started(void *o, const cs_call *call)
{
    call_changed(o, call, "call_started", true);
}

static void on_call_ended(void *o, const cs_call *call)
{
    call_changed(o, call, "call_ended", false);
}

/* A stream came or went: the summary lists them. */
static void on_stream_started(void *o, const cs_stream *s)
{
    call_changed(o, s->call, NULL, true);
}

static void event_object(cs_json *j, const cs_stream *s, enum cs_event_type type, int64_t at,
                         const char *detail)
{
    char iso[25];
    cs_iso8601(iso, at);
    cs_json_obj(j);
    cs_json_kstr(j, "type", cs_event_label(type));
    cs_json_kstr(j, "at", iso);
    cs_json_kstr(j, "stream_sid", s ? s->sid : NULL);
    cs_json_key(j, "detail");
    if (detail)
        cs_json_raw(j, detail, strlen(detail));
    else
        cs_json_null(j);
    cs_json_obj_end(j);
}

static void on_event(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                     int64_t at, const char *detail)
{
    cs_gateway *gw = o;
    if (!gw->bus || !cs_calls_call(&gw->calls, cs_str_of(call->sid))) return; /* nobody follows */
    cs_buf ev = CS_BUF_INIT(1 << 16);
    cs_json j;
    cs_json_init(&j, &ev);
    event_object(&j, s, type, at, detail);
    if (cs_json_end(&j) < 0) {
        cs_buf_free(&ev);
        return;
    }
    cs_buf msg = CS_BUF_INIT(1 << 17);
    if (cs_buf_printf(&msg, "{\"type\":\"event\",\"call\":\"%s\",\"event\":%s}", call->sid,
                      ev.data) >= 0)
        publish_text(gw, call->sid, msg.data, msg.len, false);
    cs_buf_free(&msg);
    cs_dir_event(gw->bus, call->sid, ev.data, ev.len);
    cs_buf_free(&ev);
}

static void on_audio(void *o, const cs_stream *s, enum cs_speaker who, uint64_t pos,
                     const uint8_t *ulaw, size_t n)
{
    cs_gateway *gw = o;
    const char *sid = s->call->sid;
    if (!gw->bus) return;
    cs_bus_msg m = {.kind = CS_BUS_AUDIO,
                    .topic = sid,
                    .track = who,
                    .pos_ms = (uint32_t)(pos / CS_FRAMES_PER_MS),
                    .ulaw = ulaw,
                    .n = n};
    cs_bus_publish(gw->bus, &m);
}

int cs_monitor_attach(cs_gateway *gw)
{
    cs_call_observer o = {
        .call_started = on_call_started,
        .call_ended = on_call_ended,
        .stream_started = on_stream_started,
        .event = on_event,
        .audio = on_audio,
        .data = gw,
    };
    return cs_calls_observe(&gw->calls, &o);
}

/* ---- the socket ---- */

typedef struct monitor monitor;

typedef struct watch {
    cs_bus_sub sub;
    cs_dir_req ask; /* the call's summary and last events, from the directory */
    monitor *m;
    char call[CS_SID_MAX + 1];
    bool joined;     /* the browser had them: what follows goes out */
    unsigned audio;  /* bit 0: caller, bit 1: agent */
    uint32_t seq[2]; /* per track: frames we had for this browser */
    uint64_t sent, dropped;
    bool used;
} watch;

struct monitor {
    cs_gateway *gw;
    cs_wsconn ws;
    char user[64];
    char cred[65]; /* hash of the session or token it was opened with: it lives as long */
    bool bearer;
    cs_bus_sub feed;  /* the list of calls, after watch_calls */
    cs_dir_req list;  /* the calls live now, from the directory */
    watch watches[MAX_WATCHES];
    uint64_t seen_ms; /* last sign of life */
    uint64_t pinged_ms;
    uint64_t slow_since_ms; /* 0 while audio goes out */
    bool closing;
    monitor *prev, *next;
};

static void close_slow(monitor *m, const char *why)
{
    if (m->closing) return;
    m->closing = true;
    cs_warn("monitor: closing %s's socket from %s: %s", m->user,
            m->ws.conn ? m->ws.conn->peer_ip : "?", why);
    cs_wsconn_close(&m->ws, CS_WS_CLOSE_POLICY, "too slow");
}

static void send_text(monitor *m, const char *text, size_t n)
{
    if (m->closing) return;
    if (cs_wsconn_pending(&m->ws) > OUTPUT_MAX) {
        close_slow(m, "more than 1 MiB waiting unsent");
        return;
    }
    if (cs_wsconn_send(&m->ws, CS_WS_OP_TEXT, text, n) == -ENOBUFS) close_slow(m, "output full");
}

static void send_json(monitor *m, cs_json *j, cs_buf *b)
{
    if (cs_json_end(j) == 0) send_text(m, b->data, b->len);
    cs_buf_free(b);
}

static bool idle(const monitor *m)
{
    if (m->feed.active || m->list.pending) return false;
    for (size_t i = 0; i < MAX_WATCHES; i++)
        if (m->watches[i].used) return false;
    return true;
}

static void unwatch(monitor *m, watch *w)
{
    cs_bus_unsubscribe(m->gw->bus, &w->sub);
    cs_dir_cancel(&w->ask);
    w->used = false;
}

static void deliver_audio(watch *w, const cs_bus_msg *msg)
{
    monitor *m = w->m;
    unsigned t = msg->track & 1;
    if (!(w->audio & (1u << t)) || m->closing) return;
    uint32_t seq = ++w->seq[t];
    uint64_t now = uv_now(m->gw->loop);
    if (cs_wsconn_pending(&m->ws) > AUDIO_HIGH_WATER) {
        w->dropped++;
        if (!m->slow_since_ms) m->slow_since_ms = now;
        if (now - m->slow_since_ms > (uint64_t)m->gw->cfg->monitor_slow_s * 1000)
            close_slow(m, "dropping audio for MONITOR_SLOW_S");
        return;
    }
    m->slow_since_ms = 0;
    uint8_t *p = (uint8_t *)cs_wsconn_reserve(&m->ws, CS_WS_OP_BINARY, FRAME_HEADER + msg->n);
    if (!p) {
        w->dropped++;
        return;
    }
    /* when the call's node had it: with a cluster's hop, what a listener hears is as late */
    uint64_t sent = (uint64_t)(msg->at_ms ? msg->at_ms : cs_wall_ms());
    p[0] = 1;
    p[1] = (uint8_t)t;
    p[2] = p[3] = 0;
    for (int i = 0; i < 4; i++) p[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
    for (int i = 0; i < 4; i++) p[8 + i] = (uint8_t)(msg->pos_ms >> (24 - 8 * i));
    for (int i = 0; i < 8; i++) p[12 + i] = (uint8_t)(sent >> (56 - 8 * i));
    memcpy(p + FRAME_HEADER, msg->ulaw, msg->n);
    cs_wsconn_commit(&m->ws);
    w->sent++;
}

static void deliver_watch(cs_bus_sub *sub, const cs_bus_msg *msg)
{
    watch *w = sub->data;
    monitor *m = w->m;
    if (msg->kind == CS_BUS_AUDIO) {
        deliver_audio(w, msg);
        return;
    }
    /* Before the directory answered, what comes is in its answer (it was read later). */
    if (!w->joined && !msg->final) return;
    send_text(m, msg->text, msg->len);
    if (!msg->final) return;
    unwatch(m, w);
    /* A socket that only followed this call has nothing more to do. */
    if (idle(m) && !m->closing) cs_wsconn_close(&m->ws, CS_WS_CLOSE_NORMAL, "call ended");
}

static void deliver_feed(cs_bus_sub *sub, const cs_bus_msg *msg)
{
    monitor *m = sub->data;
    /* Before the directory answered, what comes is in its answer (it was read later). */
    if (msg->kind == CS_BUS_TEXT && !m->list.pending) send_text(m, msg->text, msg->len);
}

/* `call` names the call the refused message was about (or NULL). */
static void error_message(monitor *m, const char *call, const char *message)
{
    cs_buf b = CS_BUF_INIT(1024);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "error");
    if (call) cs_json_kstr(&j, "call", call);
    cs_json_kstr(&j, "message", message);
    cs_json_obj_end(&j);
    send_json(m, &j, &b);
}

static void listed(cs_dir_req *q)
{
    monitor *m = q->data;
    if (q->rc < 0) {
        error_message(m, NULL, "cannot list the calls now");
        return;
    }
    cs_buf b = CS_BUF_INIT(16u << 20);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "calls");
    if (q->partial) cs_json_kbool(&j, "partial", true);
    cs_json_key(&j, "calls");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->ncalls; i++)
        if (q->calls[i].summary) cs_json_raw(&j, q->calls[i].summary, q->calls[i].summary_len);
    cs_json_arr_end(&j);
    cs_json_obj_end(&j);
    send_json(m, &j, &b);
}

static void watch_calls(monitor *m)
{
    cs_gateway *gw = m->gw;
    m->feed.deliver = deliver_feed;
    m->feed.data = m;
    cs_dir_cancel(&m->list);
    m->list.what = CS_DIR_LIST;
    m->list.done = listed;
    m->list.data = m;
    if (cs_bus_subscribe(gw->bus, &m->feed, CS_BUS_ALL) < 0 || cs_dir_ask(gw->bus, &m->list) < 0) {
        cs_bus_unsubscribe(gw->bus, &m->feed);
        error_message(m, NULL, "cannot follow the calls now");
    }
}

static watch *find_watch(monitor *m, const char *call)
{
    for (size_t i = 0; i < MAX_WATCHES; i++)
        if (m->watches[i].used && strcmp(m->watches[i].call, call) == 0) return &m->watches[i];
    return NULL;
}

/* The directory's answer for a call a browser subscribed to: live (the browser follows
 * it from its summary and last events on), or not (the page reads the API). */
static void joined(cs_dir_req *q)
{
    watch *w = q->data;
    monitor *m = w->m;
    if (q->rc < 0) {
        error_message(m, w->call, "cannot follow this call now");
        if (!w->joined) unwatch(m, w);
        return;
    }
    cs_buf b = CS_BUF_INIT(16u << 20);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "subscribed");
    cs_json_key(&j, "call");
    if (q->ncalls && q->calls[0].summary) {
        cs_json_raw(&j, q->calls[0].summary, q->calls[0].summary_len);
    } else {
        cs_json_obj(&j);
        cs_json_kstr(&j, "sid", w->call);
        cs_json_kbool(&j, "live", false);
        cs_json_obj_end(&j);
    }
    cs_json_key(&j, "events");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->nevents; i++) cs_json_raw(&j, q->events[i], q->event_lens[i]);
    cs_json_arr_end(&j);
    cs_json_obj_end(&j);
    send_json(m, &j, &b);
    if (q->ncalls)
        w->joined = true;
    else
        unwatch(m, w);
}

static void subscribe(monitor *m, const char *call, unsigned audio)
{
    cs_gateway *gw = m->gw;
    if (!call || !cs_call_sid_valid(cs_str_of(call))) {
        error_message(m, call, "subscribe needs a call SID");
        return;
    }
    watch *w = find_watch(m, call);
    if (!w) {
        for (size_t i = 0; i < MAX_WATCHES && !w; i++)
            if (!m->watches[i].used) w = &m->watches[i];
        if (!w) {
            error_message(m, call, "following too many calls on one socket");
            return;
        }
        memset(w, 0, sizeof *w);
        w->m = m;
        w->sub.deliver = deliver_watch;
        w->sub.data = w;
        snprintf(w->call, sizeof w->call, "%s", call);
        /* Following first: what happens after the directory is read comes through. */
        if (cs_bus_subscribe(gw->bus, &w->sub, call) < 0) {
            error_message(m, call, "cannot follow this call now");
            return;
        }
        w->used = true;
    }
    w->audio = audio;
    cs_dir_cancel(&w->ask);
    snprintf(w->ask.sid, sizeof w->ask.sid, "%s", call);
    w->ask.what = CS_DIR_GET;
    w->ask.done = joined;
    w->ask.data = w;
    if (cs_dir_ask(gw->bus, &w->ask) < 0) {
        error_message(m, call, "cannot follow this call now");
        if (!w->joined) unwatch(m, w);
    }
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    monitor *m = ws->data;
    m->seen_ms = uv_now(m->gw->loop);
    cs_monitor_msg msg;
    cs_monitor_msg_parse(&msg, op == CS_WS_OP_TEXT, data, len);
    if (msg.type == CS_MONITOR_BAD) {
        error_message(m, NULL, "expected a JSON object with a type");
    } else if (msg.type == CS_MONITOR_WATCH_CALLS) {
        watch_calls(m);
    } else if (msg.type == CS_MONITOR_SUBSCRIBE) {
        subscribe(m, msg.call, msg.audio);
    } else if (msg.type == CS_MONITOR_AUDIO) {
        watch *w = msg.call ? find_watch(m, msg.call) : NULL;
        if (w)
            w->audio = msg.audio;
        else
            error_message(m, msg.call, "not subscribed to that call");
    } else if (msg.type == CS_MONITOR_UNSUBSCRIBE) {
        watch *w = msg.call ? find_watch(m, msg.call) : NULL;
        if (w) unwatch(m, w);
    } else if (msg.type == CS_MONITOR_PING) {
        cs_buf b = CS_BUF_INIT(256);
        cs_json j;
        cs_json_init(&j, &b);
        cs_json_obj(&j);
        cs_json_kstr(&j, "type", "pong");
        cs_json_key(&j, "t");
        if (msg.has_t)
            cs_json_double(&j, msg.t);
        else
            cs_json_null(&j);
        cs_json_kint(&j, "server_time", cs_wall_ms());
        cs_json_obj_end(&j);
        send_json(m, &j, &b);
    } else {
        error_message(m, NULL, "unknown message type");
    }
    cs_monitor_msg_free(&msg);
}

static void on_pong(cs_wsconn *ws, const char *data, size_t len)
{
    (void)data;
    (void)len;
    monitor *m = ws->data;
    m->seen_ms = uv_now(m->gw->loop);
}

/* Nothing more reaches the socket from the bus. */
static void stop_following(monitor *m)
{
    cs_bus_unsubscribe(m->gw->bus, &m->feed);
    cs_dir_cancel(&m->list);
    for (size_t i = 0; i < MAX_WATCHES; i++)
        if (m->watches[i].used) unwatch(m, &m->watches[i]);
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    (void)code;
    (void)err;
    monitor *m = ws->data;
    cs_gateway *gw = m->gw;
    stop_following(m);
    if (m->prev)
        m->prev->next = m->next;
    else
        gw->monitors = m->next;
    if (m->next) m->next->prev = m->prev;
    gw->nmonitors--;
    free(m);
}

static const cs_wsconn_ops monitor_ops = {
    .on_message = on_message,
    .on_pong = on_pong,
    .on_close = on_close,
};

void cs_monitor_upgrade(cs_request *r)
{
    cs_gateway *gw = r->app;
    if (!cs_auth_check(r, CS_ACCESS_API, cs_monitor_upgrade)) return;
    if (!cs_auth_origin_ok(r)) {
        cs_warn("monitor: refused %s's socket from %s: Origin is not this gateway's", r->user,
                r->conn ? r->conn->peer_ip : "?");
        cs_respond_error(r, 403, "the monitor socket is for this gateway's own pages");
        return;
    }
    if (gw->draining) {
        cs_respond_error(r, 503, "shutting down");
        return;
    }
    monitor *m = calloc(1, sizeof *m);
    if (!m) {
        cs_respond_error(r, 503, "out of memory");
        return;
    }
    m->gw = gw;
    snprintf(m->user, sizeof m->user, "%s", r->user);
    cs_auth_credential(r, m->cred, &m->bearer);
    if (cs_request_upgrade(r, &m->ws, MAX_CONTROL, &monitor_ops, m) < 0) {
        free(m);
        return;
    }
    m->seen_ms = m->pinged_ms = uv_now(gw->loop);
    cs_conn_set_send_buffer(m->ws.conn, SEND_BUFFER);
    m->ws.conn->cls = CS_CONN_CLASS_LISTENER; /* closed first when output piles up */
    m->next = gw->monitors;
    if (gw->monitors) gw->monitors->prev = m;
    gw->monitors = m;
    gw->nmonitors++;
    cs_buf b = CS_BUF_INIT(512);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "hello");
    cs_json_kint(&j, "version", 1);
    cs_json_kstr(&j, "user", m->user);
    cs_json_kint(&j, "server_time", cs_wall_ms());
    cs_json_obj_end(&j);
    send_json(m, &j, &b);
}

/* Once a second: stats to each browser, pings, and the end of silent sockets. */
static void stats_of(monitor *m, const watch *w)
{
    const cs_call *c = cs_calls_call(&m->gw->calls, cs_str_of(w->call));
    uint64_t frames = 0;
    for (size_t i = 0; c && i < c->nstreams; i++)
        frames += c->streams[i]->stats.frames[CS_TRACK_INBOUND];
    cs_buf b = CS_BUF_INIT(512);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "stats");
    cs_json_kstr(&j, "call", w->call);
    cs_json_kuint(&j, "sent", w->sent);
    cs_json_kuint(&j, "dropped", w->dropped);
    cs_json_kuint(&j, "frames", frames);
    cs_json_obj_end(&j);
    send_json(m, &j, &b);
}

static void on_tick(uv_timer_t *t)
{
    cs_gateway *gw = t->data;
    uint64_t now = uv_now(gw->loop);
    for (monitor *m = gw->monitors, *next; m; m = next) {
        next = m->next;
        if (m->closing) continue;
        if (now - m->seen_ms > SILENT_MAX_MS) {
            cs_warn("monitor: %s's socket went silent; closing it", m->user);
            m->closing = true;
            cs_wsconn_abort(&m->ws, -ETIMEDOUT);
            continue;
        }
        if (now - m->pinged_ms >= PING_MS) {
            cs_wsconn_send(&m->ws, CS_WS_OP_PING, NULL, 0);
            m->pinged_ms = now;
        }
        cs_auth_keep(gw->auth, m->cred, m->bearer);
        for (size_t i = 0; i < MAX_WATCHES; i++)
            if (m->watches[i].used) stats_of(m, &m->watches[i]);
    }
}

int cs_monitor_start(cs_gateway *gw)
{
    uv_timer_init(gw->loop, &gw->monitor_timer);
    gw->monitor_timer.data = gw;
    return uv_timer_start(&gw->monitor_timer, on_tick, 1000, 1000);
}

void cs_monitor_close_all(cs_gateway *gw)
{
    uv_timer_stop(&gw->monitor_timer);
    for (monitor *m = gw->monitors; m; m = m->next) {
        m->closing = true;
        cs_wsconn_close(&m->ws, CS_WS_CLOSE_GOING_AWAY, "shutting down");
    }
}

void cs_monitor_revoke(cs_gateway *gw, const char *cred, const char *why)
{
    for (monitor *m = gw->monitors; m; m = m->next) {
        if (m->closing || strcmp(m->cred, cred) != 0) continue;
        cs_info("monitor: closing %s's socket from %s: %s", m->user,
                m->ws.conn ? m->ws.conn->peer_ip : "?", why);
        m->closing = true;
        stop_following(m);
        cs_wsconn_close(&m->ws, CLOSE_SIGNED_OUT, why);
    }
}


