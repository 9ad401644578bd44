/* `callstream serve`: start-up, the route table, and graceful shutdown.
 * Shutdown order matters: stop accepting → let calls run out the grace period → close
 * sockets → finish recordings (their completions become store writes) → flush the
 * store → exit. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/path.h"
#include "http/auth.h"
#include "http/gateway.h"
#include "net/url.h"
#include "provider/twilio.h"

#define SHUTDOWN_TICK_MS 50
#define HEAP_STEP        (16 << 20) /* bytes the main heap grows by at least */

/* Twilio's routes check signatures; /health, /ready and the login page are open; everything
 * else needs a signed-in user (cs_auth_check, first thing in each handler). */
static const cs_route routes[] = {
    {CS_HTTP_POST, "/twilio/voice", cs_twilio_voice},
    {CS_HTTP_POST, "/twilio/status", cs_twilio_status},
    {CS_HTTP_POST, "/twilio/stream-status", cs_twilio_stream_status},
    {CS_HTTP_GET, "/twilio/media", cs_media_upgrade},
    {CS_HTTP_GET, "/twilio/relay", cs_relay_upgrade},
    {CS_HTTP_POST, "/twilio/relay-action", cs_twilio_relay_action},
    {CS_HTTP_POST, "/twilio/gather", cs_twilio_gather},
    {CS_HTTP_GET, "/monitor", cs_monitor_upgrade},
    {CS_HTTP_GET, "/", cs_web_root},
    {CS_HTTP_GET, "/login", cs_web_login},
    {CS_HTTP_POST, "/login", cs_auth_login},
    {CS_HTTP_POST, "/logout", cs_auth_logout},
    {CS_HTTP_GET, "/calls_monitoring", cs_web_calls},
    {CS_HTTP_GET, "/calls_monitoring/{}", cs_web_call},
    {CS_HTTP_GET, "/static/{*}", cs_web_static},
    {CS_HTTP_GET, "/api/v1/me", cs_auth_me},
    {CS_HTTP_GET, "/health", cs_health},
    {CS_HTTP_GET, "/ready", cs_ready},
    {CS_HTTP_GET, "/status", cs_status},
    {CS_HTTP_GET, "/streams", cs_streams},
    {CS_HTTP_GET, "/metrics", cs_metrics},
    {CS_HTTP_GET, "/api/v1/calls", cs_api_calls},
    {CS_HTTP_GET, "/api/v1/calls/{}", cs_api_call},
    {CS_HTTP_GET, "/api/v1/calls/{}/events", cs_api_events},
    {CS_HTTP_GET, "/api/v1/calls/{}/recording.wav", cs_api_recording},
    {CS_HTTP_GET, "/api/v1/calls/{}/transcript", cs_api_transcript},
    {CS_HTTP_GET, "/api/v1/calls/{}/export", cs_api_export},
    {CS_HTTP_GET, "/api/v1/calls/{}/summary", cs_api_summary},
    {CS_HTTP_POST, "/api/v1/calls", cs_api_call_create},
    {CS_HTTP_POST, "/api/v1/calls/{}/hangup", cs_api_hangup},
    {CS_HTTP_POST, "/api/v1/calls/{}/transfer", cs_api_transfer},
    {CS_HTTP_POST, "/api/v1/calls/{}/say", cs_api_say},
    {CS_HTTP_POST, "/api/v1/calls/{}/streams", cs_api_stream_start},
    {CS_HTTP_POST, "/api/v1/calls/{}/streams/{}/stop", cs_api_stream_stop},
    {CS_HTTP_POST, "/api/v1/call_streams", cs_api_call_stream_create},
    {CS_HTTP_GET, "/api/v1/call_streams/{}", cs_api_call_stream_get},
    {CS_HTTP_POST, "/api/v1/call_streams/{}/complete", cs_api_call_stream_complete},
    {CS_HTTP_GET, "/call_streams/{}", cs_call_stream_upgrade},
};

/* ---- configuration checks and derived values ---- */

static int one_of(const char *what, const char *v, const char *const *allowed, size_t n,
                  cs_buf *err)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, allowed[i]) == 0) return 0;
    cs_buf_printf(err, "%s: '%s' is not one of", what, v);
    for (size_t i = 0; i < n; i++) cs_buf_printf(err, "%s %s", i ? "," : "", allowed[i]);
    return CS_ECONFIG;
}

static int derive_urls(cs_gateway *gw, cs_buf *err)
{
    const cs_config *cfg = gw->cfg;
    bool tls = cfg->tls_cert[0] != '\0';
    if (cfg->public_url[0]) {
        snprintf(gw->public_url, sizeof gw->public_url, "%s", cfg->public_url);
    } else {
        const char *host = cfg->bind;
        if (strcmp(host, "0.0.0.0") == 0) host = "127.0.0.1";
        if (strcmp(host, "::") == 0) host = "::1";
        bool v6 = strchr(host, ':') != NULL;
        snprintf(gw->public_url, sizeof gw->public_url, "%s://%s%s%s:%lld", tls ? "https" : "http",
                 v6 ? "[" : "", host, v6 ? "]" : "", (long long)cfg->port);
    }
    size_t n = strlen(gw->public_url);
    while (n && gw->public_url[n - 1] == '/') gw->public_url[--n] = '\0';
    cs_url u;
    if (cs_url_parse(&u, gw->public_url) < 0 ||
        (strcmp(u.scheme, "http") && strcmp(u.scheme, "https"))) {
        cs_buf_printf(err, "PUBLIC_URL: '%s' is not an http(s) URL", gw->public_url);
        return CS_ECONFIG;
    }
    if (u.query[0]) {
        cs_buf_printf(err, "PUBLIC_URL: no query string allowed ('%s')", gw->public_url);
        return CS_ECONFIG;
    }
    /* The stream URL is the public URL with ws(s) for http(s): Twilio signs it as such. */
    const char *rest = strstr(gw->public_url, "://");
    const char *path = strchr(rest + 3, '/');
    snprintf(gw->origin, sizeof gw->origin, "%.*s",
             (int)(path ? path - gw->public_url : (long)strlen(gw->public_url)), gw->public_url);
    int a = snprintf(gw->stream_url, sizeof gw->stream_url, "%s%s/twilio/media",
                     u.tls ? "wss" : "ws", rest);
    int b =
        snprintf(gw->status_url, sizeof gw->status_url, "%s/twilio/stream-status", gw->public_url);
    int c = snprintf(gw->relay_url, sizeof gw->relay_url, "%s%s/twilio/relay", u.tls ? "wss" : "ws",
                     rest);
    int d = snprintf(gw->relay_action_url, sizeof gw->relay_action_url, "%s/twilio/relay-action",
                     gw->public_url);
    int e = snprintf(gw->gather_url, sizeof gw->gather_url, "%s/twilio/gather", gw->public_url);
    if (a < 0 || b < 0 || c < 0 || d < 0 || e < 0 || (size_t)e >= sizeof gw->gather_url ||
        (size_t)a >= sizeof gw->stream_url || (size_t)b >= sizeof gw->status_url ||
        (size_t)c >= sizeof gw->relay_url || (size_t)d >= sizeof gw->relay_action_url) {
        cs_buf_printf(err, "PUBLIC_URL: longer than %zu characters", sizeof gw->public_url - 32);
        return CS_ECONFIG;
    }
    return 0;
}

static int check_config(cs_gateway *gw, cs_buf *err)
{
    const cs_config *cfg = gw->cfg;
    static const char *const modes[] = {"connect", "start", "relay", "gather"};
    static const char *const tracks[] = {"inbound_track", "outbound_track", "both_tracks"};
    int rc = one_of("STREAM_MODE", cfg->stream_mode, modes, 4, err);
    if (rc == 0) rc = one_of("STREAM_TRACK", cfg->stream_track, tracks, 3, err);
    if (rc == 0 && cs_log_level_parse(cfg->log_level) < 0) {
        cs_buf_printf(err, "LOG_LEVEL: '%s' is not debug, info, warn or error", cfg->log_level);
        rc = CS_ECONFIG;
    }
    if (rc == 0 && cs_agent_find(cfg->agent, &gw->agent) < 0) {
        cs_buf_printf(err, "AGENT: '%s' is not one of %s", cfg->agent, cs_agent_names());
        rc = CS_ECONFIG;
    }
    if (rc == 0 && !gw->agent && strcmp(cfg->stream_mode, "gather") == 0) {
        cs_buf_printf(err, "STREAM_MODE=gather: an AGENT talks in the turns (it is none)");
        rc = CS_ECONFIG;
    }
    if (rc == 0 && (cfg->tls_cert[0] != '\0') != (cfg->tls_key[0] != '\0')) {
        cs_buf_printf(err, "TLS_CERT and TLS_KEY go together");
        rc = CS_ECONFIG;
    }
    if (rc == 0 && cfg->twilio_account_sid[0] &&
        !cs_twilio_sid_valid(cs_str_of(cfg->twilio_account_sid), "AC")) {
        cs_buf_printf(err, "TWILIO_ACCOUNT_SID: '%s' is not an account SID",
                      cfg->twilio_account_sid);
        rc = CS_ECONFIG;
    }
    if (rc == 0 &&
        cs_form_parse(&gw->stream_params, cfg->stream_params, strlen(cfg->stream_params)) < 0) {
        cs_buf_printf(err, "STREAM_PARAMS: not form-encoded (a=1&b=2): '%s'", cfg->stream_params);
        rc = CS_ECONFIG;
    }
    if (rc == 0) rc = derive_urls(gw, err);
    return rc == 0 ? cs_twilio_twiml_check(gw, err) : rc;
}

/* Thousands of calls need thousands of descriptors. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- shutdown ---- */

static void handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* The speech engine agents speak with: TTS, with its voices loaded now. */
static int start_speech(cs_gateway *gw, cs_buf *err)
{
    int rc = cs_tts_find(gw->cfg->tts, &gw->tts_ops);
    if (rc < 0) {
        cs_buf_printf(err, "TTS: '%s' is not %s", gw->cfg->tts, cs_tts_names());
        return rc;
    }
    cs_tts_env env = {gw->cfg, gw->loop, gw->mb, gw->fetch};
    if (gw->tts_ops && (rc = gw->tts_ops->create(&gw->tts, &env, err)) < 0) return rc;
    if (!gw->tts_ops || !gw->tts_ops->cloud) return 0;
    cs_tts_fallback *fb = &gw->tts_fallback;
    if (cs_tts_find(gw->cfg->tts_fallback, &fb->ops) < 0 || (fb->ops && fb->ops->cloud)) {
        cs_buf_printf(err, "TTS_FALLBACK: '%s' is not espeak, flite or none",
                      gw->cfg->tts_fallback);
        return CS_ECONFIG;
    }
    if (!fb->ops) return 0;
    gw->fallback_cfg = *gw->cfg;
    gw->fallback_cfg.tts_voice = ""; /* TTS_VOICE names the cloud voice */
    env.cfg = &gw->fallback_cfg;
    if ((rc = fb->ops->create(&fb->tts, &env, err)) < 0) fb->ops = NULL;
    return rc;
}

/* After the calls: a job still live ends through the mailbox, which runs after this. */
static void stop_speech(cs_gateway *gw)
{
    if (gw->tts) gw->tts_ops->destroy(gw->tts);
    gw->tts = NULL;
    if (gw->tts_fallback.tts) gw->tts_fallback.ops->destroy(gw->tts_fallback.tts);
    gw->tts_fallback.tts = NULL;
}

static void finish(cs_gateway *gw)
{
    if (gw->workers) cs_workers_loop_end(gw);
    uv_timer_stop(&gw->shutdown_timer);
    uv_close((uv_handle_t *)&gw->shutdown_timer, handle_closed);
    uv_close((uv_handle_t *)&gw->monitor_timer, handle_closed);
    cs_call_streams_stop(gw);
    uv_close((uv_handle_t *)&gw->sigterm, handle_closed);
    uv_close((uv_handle_t *)&gw->sigint, handle_closed);
    /* Sign-ins in progress, transcription and recordings first: finishing them produces
     * store writes. */
    cs_auth_stop(gw->auth);
    cs_transcribe_stop(gw);
    cs_summary_free(gw->summary);
    gw->summary = NULL;
    cs_agents_stop(&gw->agent_env);
    stop_speech(gw);
    cs_control_free(gw->control);
    gw->control = NULL;
    gw->calls.talk.control = NULL;
    cs_fetch_close(gw->fetch);
    gw->fetch = NULL;
    cs_recorders_free(gw->recorders);
    gw->recorders = NULL;
    cs_mailbox_run(gw->mb);
    /* Every monitor socket has closed: nothing follows the bus any more. */
    cs_cluster_stop(gw);
    cs_bus_close(gw->bus);
    gw->bus = NULL;
    cs_store_close(gw->store);
    gw->store = NULL;
    cs_mailbox_close(gw->mb);
    gw->mb = NULL;
    if (!gw->workers) cs_info("callstream: stopped"); /* else once every loop has */
}

static void close_calls(cs_gateway *gw)
{
    if (gw->nsockets) cs_info("shutdown: closing %zu media stream(s)", gw->nsockets);
    cs_media_close_all(gw);
    cs_gather_stop(gw->gather); /* waiting turns are answered <Hangup/> */
    cs_gather_reads_stop(gw);
    cs_cluster_answer_all(gw);
    cs_monitor_close_all(gw);
    cs_net_close_all(gw->net, true);
}

static void on_shutdown_tick(uv_timer_t *t)
{
    cs_gateway *gw = t->data;
    uint64_t now = uv_now(gw->loop);
    if (now < gw->shutdown_deadline_ms && gw->nsockets + cs_gather_active(gw->gather) > 0) return;
    if (gw->shutdown_deadline_ms != 0) {
        gw->shutdown_deadline_ms = 0; /* from here on: waiting for sockets to close */
        close_calls(gw);
    }
    /* Requests in flight (the last transcript segments) end within their timeouts; agents
     * closing finish theirs. */
    if (cs_net_count(gw->net) != 0 || !cs_transcribe_idle(gw) || gw->calls.talk.closing != 0)
        return;
    /* Summaries not made yet stay pending in the store: the next start makes them. */
    cs_summary_free(gw->summary);
    gw->summary = NULL;
    if (cs_fetch_count(gw->fetch) == 0) finish(gw);
}

void cs_gateway_drain(cs_gateway *gw, int signum)
{
    if (gw->draining) return;
    gw->draining = true;
    cs_info("shutdown: %s: no new calls; %zu live stream(s) get up to %lld s", strsignal(signum),
            gw->nsockets, (long long)gw->cfg->shutdown_grace_s);
    cs_server_stop_listening(gw->server);
    gw->shutdown_deadline_ms = uv_now(gw->loop) + (uint64_t)gw->cfg->shutdown_grace_s * 1000 + 1;
    uv_timer_start(&gw->shutdown_timer, on_shutdown_tick, 0, SHUTDOWN_TICK_MS);
}

/* Every loop has its own watchers: libuv tells each of them once, so one SIGTERM drains
 * them all, and a second one here is the operator's second (another loop's drain may
 * have begun this one's already: that is no signal). */
static void on_signal(uv_signal_t *h, int signum)
{
    cs_gateway *gw = h->data;
    if (++gw->signals == 1) {
        cs_gateway_drain(gw, signum);
        return;
    }
    cs_warn("shutdown: %s again: closing calls now", strsignal(signum));
    if (gw->shutdown_deadline_ms) gw->shutdown_deadline_ms = 1;
    cs_webhook_stop(gw->webhook); /* deliveries in flight too: they stay in the store */
}

/* ---- start-up ---- */

/* The heartbeat's load: what this node holds. */
static void node_load(void *data, cs_bus_node *self)
{
    cs_gateway *gw = data;
    self->calls = (uint32_t)cs_calls_active(&gw->calls);
    self->streams = (uint32_t)cs_calls_streams(&gw->calls);
    self->monitors = (uint32_t)gw->nmonitors;
    self->started_ms = gw->started_ms;
}

/* The bus REDIS_URL names (in-process without it). */
static int open_bus(cs_gateway *gw, cs_buf *err)
{
    const cs_config *cfg = gw->cfg;
    char host[CS_BUS_NODE_MAX + 1] = "";
    const char *node = cfg->node_id;
    if (!node[0]) {
        if (gethostname(host, sizeof host) < 0 || !host[0]) snprintf(host, sizeof host, "local");
        host[sizeof host - 1] = '\0';
        node = host;
    }
    cs_bus_config bc = {
        .loop = gw->loop,
        .url = cfg->redis_url,
        .node = node,
        .node_url = cfg->node_url,
        .run = cs_store_run(gw->store),
        .hub = gw->workers ? cs_workers_hub(gw->workers) : NULL,
        .loop_index = gw->loop_index,
        .loops = gw->workers ? cs_workers_count(gw->workers) : 1,
        .heartbeat_ms = (uint32_t)cfg->node_heartbeat_ms,
        .node_ttl_ms = (uint32_t)cfg->node_ttl_ms,
        .data = gw,
        .on_health = cs_cluster_on_health,
        .on_node_lost = cs_cluster_on_node_lost,
        .on_command = cs_cluster_on_command,
        .load = node_load,
    };
    int rc = cs_cluster_start(gw);
    return rc < 0 ? rc : cs_bus_open(&gw->bus, &bc, err);
}

/* A two-way stream gets the agent its TwiML names (<Parameter name="Agent">, e.g. from
 * STREAM_PARAMS: one gateway serving several numbers), else AGENT. */
/* The agent named `name`, else AGENT (NULL: unknown; the caller says so). */
static const cs_agent_ops *named_agent(const cs_gateway *gw, cs_str name, bool *known)
{
    char buf[32];
    const cs_agent_ops *ops;
    *known = false;
    if (name.n < sizeof buf) {
        cs_str_copy(buf, sizeof buf, name);
        *known = cs_agent_find(buf, &ops) == 0;
        if (*known) return ops;
    }
    return gw->agent;
}

const cs_agent_ops *cs_gateway_agent(const cs_gateway *gw, const cs_kv *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cs_kv *kv = &params[i];
        if (!cs_str_eqz(kv->name, "Agent")) continue;
        bool known;
        const cs_agent_ops *ops = named_agent(gw, kv->value, &known);
        if (!known)
            cs_warn("media: the stream asks for agent '%.*s', which is not one of %s; AGENT "
                    "(%s) answers",
                    (int)(kv->value.n < 64 ? kv->value.n : 64), kv->value.p, cs_agent_names(),
                    gw->agent ? gw->agent->name : "none");
        return ops;
    }
    return gw->agent;
}

const cs_agent_ops *cs_gateway_webhook_agent(const cs_gateway *gw, const cs_form *call_params)
{
    const cs_form *forms[] = {call_params, &gw->stream_params}; /* in the TwiML's order */
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; forms[k] && i < forms[k]->n; i++) {
            if (strcmp(forms[k]->pairs[i].name, "Agent") != 0) continue;
            bool known; /* the stream's start warns about an unknown one */
            return named_agent(gw, cs_str_of(forms[k]->pairs[i].value), &known);
        }
    }
    return gw->agent;
}

static const cs_agent_ops *agent_for(void *data, const cs_pevent *start)
{
    return cs_gateway_agent(data, start->start.params, start->start.nparams);
}

void cs_gateway_prepare(cs_gateway *gw, const char *call_sid, const cs_form *call_params)
{
    if (strcmp(gw->cfg->stream_mode, "connect") != 0) return; /* no agent on a fork */
    cs_agents_prepare(&gw->agent_env, cs_gateway_webhook_agent(gw, call_params), call_sid);
}

typedef struct boot {
    bool done;
    int err;
} boot;

static void booted(void *data, int err)
{
    boot *b = data;
    b->done = true;
    b->err = err;
}

/* A call's summary is stored: the operator's webhook gets it as call.summary. */
static void summary_made(void *data, const char *call_sid, const char *json)
{
    cs_gateway *gw = data;
    if (!gw->webhook) return;
    cs_buf body = CS_BUF_INIT(CS_SUMMARY_ANSWER_MAX * 2);
    cs_json j;
    cs_json_init(&j, &body);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "call.summary");
    cs_json_kstr(&j, "call_sid", call_sid);
    cs_json_key(&j, "summary");
    cs_json_raw(&j, json, strlen(json));
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) cs_webhook_send(gw->webhook, "call.summary", body.data, body.len);
    cs_buf_free(&body);
}

static void say_listening(cs_gateway *gw, bool tls);

static int start(cs_gateway *gw, cs_buf *err)
{
    const cs_config *cfg = gw->cfg;
    int rc = check_config(gw, err);
    if (rc < 0) return rc;
    if (gw->loop_index == 0) /* before the other loops' threads read it */
        cs_log_min = cs_log_level_parse(cfg->log_level);
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit fails the write (EFBIG), like a full disk */
    if ((rc = cs_mkdir_p(cfg->data_dir, 0750)) < 0) {
        cs_buf_printf(err, "cannot create %s: %s", cfg->data_dir, cs_strerror(rc));
        return rc;
    }

    gw->provider = cs_provider_find("twilio");
    cs_pscratch_init(&gw->scratch);
    cs_buf_init(&gw->out, (size_t)cfg->max_message_bytes * 2);
    gw->started_ms = cs_wall_ms();
    if ((rc = cs_mailbox_open(&gw->mb, gw->loop)) < 0) return rc;
    if ((rc = cs_fetch_open(&gw->fetch, gw->loop)) < 0) {
        cs_buf_printf(err, "cannot start the HTTP client: %s", cs_strerror(rc));
        return rc;
    }

    char url[4200];
    if (cfg->database_url[0])
        snprintf(url, sizeof url, "%s", cfg->database_url);
    else
        snprintf(url, sizeof url, "sqlite:%s/callstream.db", cfg->data_dir);
    /* Each loop its store, all of one run; each spills into its own directory, whose lock
     * it holds (the first loop: DATA_DIR, as with one). */
    char spill[4200];
    snprintf(spill, sizeof spill, "%s", cfg->data_dir);
    if (gw->loop_index > 0 &&
        (size_t)snprintf(spill, sizeof spill, "%s/loop-%u", cfg->data_dir,
                         (unsigned)gw->loop_index) < sizeof spill &&
        (rc = cs_mkdir_p(spill, 0750)) < 0) {
        cs_buf_printf(err, "cannot create %s: %s", spill, cs_strerror(rc));
        return rc;
    }
    rc = cs_store_open(&gw->store, url, gw->mb, (size_t)cfg->store_queue_max, spill, err);
    if (rc < 0) return rc;
    if (gw->loop_index > 0) cs_store_join_run(gw->store, cs_workers_run(gw->workers));
    if (cfg->recordings) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/recordings", cfg->data_dir);
        rc = cs_recorders_new(&gw->recorders, gw->mb, dir, (unsigned)cfg->recording_header_s);
        if (rc == 0)
            rc = cs_recorders_watch_disk(gw->recorders, gw->loop,
                                         (uint64_t)cfg->recordings_low_disk_mb * 1000000,
                                         gw->loop_index == 0);
        if (rc < 0) {
            cs_buf_printf(err, "cannot start the recorder in %s: %s", dir, cs_strerror(rc));
            return rc;
        }
    }
    cs_calls_init(&gw->calls, gw->recorders);
    gw->calls.max_ts_ms = (uint64_t)cfg->max_call_s * 1000;
    gw->calls.ts_tolerance_ms = (uint64_t)cfg->timestamp_tolerance_s * 1000;
    gw->calls.talk.agent_for = agent_for;
    gw->calls.talk.agent_data = gw;
    gw->calls.talk.env = &gw->agent_env;
    gw->calls.talk.lead_ms = (uint32_t)cfg->playout_lead_ms;
    gw->calls.talk.max_ms = (uint32_t)cfg->playout_max_s * 1000;
    gw->calls.talk.barge_in = cfg->barge_in != 0;
    gw->calls.talk.vad = (cs_vad_opts){.min_speech_ms = (uint32_t)cfg->barge_in_min_ms,
                                       .hangover_ms = (uint32_t)cfg->vad_hangover_ms,
                                       .threshold_db = (int)cfg->vad_threshold_db};
    if ((rc = cs_calls_talk_start(&gw->calls, gw->loop)) < 0 || (rc = cs_gather_start(gw)) < 0)
        return rc;
    if ((rc = open_bus(gw, err)) < 0 || (rc = cs_api_remote_start(gw, err)) < 0) return rc;
    if ((rc = cs_journal_attach(gw)) < 0 || (rc = cs_monitor_attach(gw)) < 0 ||
        (rc = cs_call_streams_start(gw)) < 0)
        return rc;
    if ((rc = cs_auth_new(&gw->auth, gw)) < 0) {
        cs_buf_printf(err, "cannot start sign-in: %s", cs_strerror(rc));
        return rc;
    }
    if ((rc = cs_transcribe_start(gw, err)) < 0 || (rc = start_speech(gw, err)) < 0) return rc;
    gw->agent_env = (cs_agent_env){
        .cfg = cfg,
        .loop = gw->loop,
        .mb = gw->mb,
        .tts_ops = gw->tts_ops,
        .tts = gw->tts,
        .tts_fallback = gw->tts_fallback.tts ? &gw->tts_fallback : NULL,
        .stt_ops = gw->stt_ops,
        .stt = gw->stt,
        .fetch = gw->fetch,
    };
    /* Before the agents: whether they can transfer is checked at their setup. */
    if ((rc = cs_control_setup(gw, err)) < 0) return rc;
    gw->calls.talk.control = gw->control;
    gw->agent_env.control = gw->control != NULL;
    if ((rc = cs_agents_setup(&gw->agent_env, err)) < 0) return rc;
    cs_summary_opts so = {
        .cfg = cfg,
        .loop = gw->loop,
        .fetch = gw->fetch,
        .store = gw->store,
        .done = summary_made,
        .data = gw,
    };
    if ((rc = cs_summary_new(&gw->summary, &so, err)) < 0) return rc;
    /* The first admin exists before anyone can try to sign in. */
    boot b = {0};
    cs_auth_bootstrap(gw->auth, booted, &b);
    while (!b.done) uv_run(gw->loop, UV_RUN_ONCE);
    if (b.err < 0) {
        cs_buf_printf(err, "cannot set up the first user: %s", cs_strerror(b.err));
        return b.err;
    }

    if ((rc = cs_net_new(&gw->net, gw->loop)) < 0) return rc;
    bool tls = cfg->tls_cert[0] != '\0';
    if (tls && cs_net_tls_server(gw->net, cfg->tls_cert, cfg->tls_key) < 0) {
        cs_buf_printf(err, "cannot load TLS_CERT %s / TLS_KEY %s", cfg->tls_cert, cfg->tls_key);
        return CS_ECONFIG;
    }
    cs_server_limits lim = {
        .max_connections = (size_t)cfg->max_connections,
        .max_per_ip = (size_t)cfg->max_connections_per_ip,
        .max_head = (size_t)cfg->max_header_bytes,
        .max_body = (size_t)cfg->max_body_bytes,
        .idle_ms = (uint32_t)cfg->http_idle_s * 1000,
        .head_ms = (uint32_t)cfg->http_head_timeout_s * 1000,
        .body_min_rate = (uint32_t)cfg->http_body_min_bytes_per_s,
        .max_heads_per_ip = (size_t)cfg->max_heads_per_ip,
        .reuse_port = gw->workers != NULL,
        .quota = &gw->shared->net,
    };
    cs_net_set_output_cap(gw->net, (size_t)cfg->max_output_bytes);
    rc = cs_server_new(&gw->server, gw->net, routes, sizeof routes / sizeof *routes, &lim, gw);
    /* PORT=0: the other loops share the port the first one got */
    int port = gw->loop_index ? cs_workers_port(gw->workers) : (int)cfg->port;
    if (rc == 0) rc = cs_server_listen(gw->server, cfg->bind, port, tls);
    if (rc < 0) {
        cs_buf_printf(err, "cannot listen on %s:%lld: %s", cfg->bind, (long long)cfg->port,
                      cs_strerror(rc));
        return rc;
    }

    if ((rc = cs_monitor_start(gw)) < 0) return rc;
    uv_signal_init(gw->loop, &gw->sigterm);
    uv_signal_init(gw->loop, &gw->sigint);
    uv_timer_init(gw->loop, &gw->shutdown_timer);
    gw->sigterm.data = gw->sigint.data = gw->shutdown_timer.data = gw;
    uv_signal_start(&gw->sigterm, on_signal, SIGTERM);
    uv_signal_start(&gw->sigint, on_signal, SIGINT);
    /* The process's, once: the last loop to start says it listens, the first recovers. */
    uint32_t loops = gw->workers ? cs_workers_count(gw->workers) : 1;
    if (gw->loop_index + 1 == loops) say_listening(gw, tls);
    if (gw->loop_index > 0) return 0;
    cs_summary_resume(gw->summary); /* before the recovery's calls are queued themselves */
    cs_journal_recover(gw);
    return 0;
}

static void say_listening(cs_gateway *gw, bool tls)
{
    const cs_config *cfg = gw->cfg;
    char loops[32] = ""; /* the last loop says it: its index tells how many */
    if (gw->loop_index) snprintf(loops, sizeof loops, ", %u loops", (unsigned)gw->loop_index + 1);
    cs_info("callstream %s listening on %s%s%s:%d (%s%s), store %s, agent %s, recordings %s, "
            "transcription %s",
            CS_VERSION, strchr(cfg->bind, ':') ? "[" : "", cfg->bind,
            strchr(cfg->bind, ':') ? "]" : "", cs_server_port(gw->server), tls ? "TLS" : "plain",
            loops, cs_store_backend(gw->store), gw->agent ? gw->agent->name : "none",
            gw->recorders ? "on" : "off", gw->stt_ops ? gw->stt_ops->name : "off");
    cs_info("voice webhook: %s/twilio/voice; %s: %s", gw->public_url,
            strcmp(cfg->stream_mode, "relay") ? "media stream" : "relay",
            strcmp(cfg->stream_mode, "relay") ? gw->stream_url : gw->relay_url);
    if (!cfg->twilio_auth_token[0])
        cs_warn("TWILIO_AUTH_TOKEN is not set: webhooks and media streams are NOT "
                "authenticated; anyone who can reach this port can post calls");
    if (!cfg->public_url[0])
        cs_warn("PUBLIC_URL is not set: TwiML points Twilio at %s, reachable only from here",
                gw->stream_url);
    if (cfg->env_file) cs_info("settings read from %s", cfg->env_file);
}

void cs_gateway_shared_init(cs_gateway_shared *q, const cs_config *cfg)
{
    cs_server_limits lim = {
        .max_connections = (size_t)cfg->max_connections,
        .max_per_ip = (size_t)cfg->max_connections_per_ip,
        .max_heads_per_ip = (size_t)cfg->max_heads_per_ip,
    };
    cs_server_quota_init(&q->net, &lim);
    cs_quota_init(&q->calls, (size_t)cfg->max_calls);
    cs_auth_shared_init(&q->auth, cfg);
    cs_quota_init(&q->remote, CS_REMOTE_MAX);
    cs_quota_init(&q->gather, (size_t)cfg->gather_max_calls);
    cs_quota_init(&q->pending, (size_t)cfg->call_stream_max_pending);
}

void cs_gateway_shared_free(cs_gateway_shared *q)
{
    cs_server_quota_free(&q->net);
    cs_auth_shared_free(&q->auth);
}

int cs_gateway_serve(cs_gateway *gw)
{
    cs_buf err = CS_BUF_INIT(4096);
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw->loop = &loop;
    int rc = start(gw, &err);
    if (gw->workers) cs_workers_started(gw, rc);
    if (rc == 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
    } else {
        cs_error("callstream: %s", err.data ? err.data : cs_strerror(rc));
        if (gw->server) cs_server_stop_listening(gw->server);
        cs_auth_stop(gw->auth);
        cs_transcribe_stop(gw);
        cs_summary_free(gw->summary);
        stop_speech(gw);
        cs_control_free(gw->control);
        cs_fetch_close(gw->fetch);
        cs_recorders_free(gw->recorders);
        cs_store_close(gw->store);
        cs_mailbox_close(gw->mb);
        cs_gather_stop(gw->gather);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (gw->workers) cs_workers_loop_free(gw);
    cs_calls_free(&gw->calls, CS_END_SHUTDOWN);
    cs_gather_free(gw->gather);
    cs_agents_cleanup(&gw->agent_env);
    cs_transcribe_free(gw);
    cs_cluster_stop(gw);
    cs_bus_close(gw->bus);
    uv_run(&loop, UV_RUN_NOWAIT); /* the bus's handles close */
    cs_api_remote_free(gw);
    cs_auth_free(gw->auth);
    cs_server_free(gw->server);
    cs_net_free(gw->net);
    uv_loop_close(&loop);
    cs_pscratch_free(&gw->scratch);
    cs_buf_free(&gw->out);
    cs_form_free(&gw->stream_params);
    cs_buf_free(&err);
    return rc;
}

int cs_gateway_main(int argc, char **argv)
{
    cs_config cfg;
    cs_buf err = CS_BUF_INIT(4096);
    int help = 0, argi = 1;
    int rc = cs_config_load(&cfg, NULL, argc, argv, &argi, &help, &err);
    if (rc == 0 && help) {
        printf("usage: callstream serve [--setting value ...]\n\n");
        cs_config_usage(stdout);
        cs_config_free(&cfg);
        cs_buf_free(&err);
        return 0;
    }
    if (rc == 0 && argi < argc) {
        cs_buf_printf(&err, "unexpected argument '%s' (see --help)", argv[argi]);
        rc = CS_ECONFIG;
    }
    if (rc < 0) {
        fprintf(stderr, "callstream: %s\n", err.data ? err.data : cs_strerror(rc));
        cs_config_free(&cfg);
        cs_buf_free(&err);
        return 2;
    }

    /* The loop allocates from the main heap: it grows in large steps and is given back
     * only in large ones, so the loop seldom calls brk(), which can wait in the kernel
     * behind the memory manager's locks (seen: 0.5 to 4 s on a loaded machine). */
    mallopt(M_TOP_PAD, HEAP_STEP);
    mallopt(M_TRIM_THRESHOLD, 4 * HEAP_STEP);
    uint32_t loops = cs_workers_wanted(&cfg);
    if (loops > 1) {
        rc = cs_workers_main(&cfg, loops);
    } else {
        cs_gateway_shared shared;
        cs_gateway_shared_init(&shared, &cfg);
        cs_gateway gw = {.cfg = &cfg, .shared = &shared};
        rc = cs_gateway_serve(&gw);
        cs_gateway_shared_free(&shared);
    }
    cs_config_free(&cfg);
    cs_buf_free(&err);
    return rc == 0 ? 0 : 1;
}
