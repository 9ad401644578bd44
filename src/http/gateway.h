/* The gateway: one process serving Twilio's webhooks and media sockets, the API and
 * the probes. It wires the loop, the HTTP server, the call registry, the store and the
 * recorder together, and runs start-up and graceful shutdown. Route handlers live in
 * the files next to this one and share this context. */
#ifndef CS_GATEWAY_H
#define CS_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "agent/agent.h"
#include "audio/recorder.h"
#include "bus/bus.h"
#include "call/call.h"
#include "call/gather.h"
#include "call/control.h"
#include "core/config.h"
#include "core/json.h"
#include "core/worker.h"
#include "http/auth.h"
#include "net/conn.h"
#include "net/fetch.h"
#include "net/form.h"
#include "net/server.h"
#include "provider/provider.h"
#include "store/store.h"
#include "summary/summary.h"
#include "stt/stt.h"
#include "tts/tts.h"

#define CS_URL_CAP 2048

typedef struct media_sock media_sock;
typedef struct monitor monitor;
typedef struct cs_auth cs_auth;
typedef struct cs_webhook cs_webhook;
typedef struct cs_call_streams cs_call_streams;
struct cs_cmd; /* a command between loops and nodes (cluster_msg.h) */
typedef struct cs_cluster cs_cluster;
typedef struct cs_gather_read cs_gather_read;
typedef struct cs_workers cs_workers;
typedef struct cJSON cJSON;

/* Why a call talks in <Gather> turns (gather.c). */
enum cs_gather_why {
    CS_GATHER_WHY_NONE = 0,      /* it streams */
    CS_GATHER_WHY_MODE,          /* STREAM_MODE=gather */
    CS_GATHER_WHY_FULL,          /* MAX_CALLS calls stream already */
    CS_GATHER_WHY_STREAM_FAILED, /* its stream ended abnormally (<Connect action>) */
    CS_GATHER_WHY_NEVER_STARTED, /* its stream never started (<Connect action>) */
    CS_GATHER_WHY_COUNT
};

typedef struct cs_webhook_stats {
    uint64_t delivered, retries, failed, dropped;
} cs_webhook_stats;

/* Transcription counters (transcribe.c). */
typedef struct cs_transcripts {
    uint64_t open;        /* sessions not yet closed */
    uint64_t segments;    /* interim and final */
    uint64_t unavailable; /* speakers left without a transcript: no engine free */
    uint64_t failed;      /* sessions the engine failed */
} cs_transcripts;

/* Counters kept by the handlers. */
typedef struct cs_gateway_stats {
    uint64_t sig_refused_webhook; /* webhooks with a bad X-Twilio-Signature */
    uint64_t sig_refused_upgrade; /* media and relay upgrades with a bad signature */
    uint64_t relay_sockets_total;
    uint64_t relay_actions;       /* the provider's posts after a relay session ended */
    uint64_t account_refused;     /* streams of another account */
    uint64_t media_sockets_total;
    uint64_t webhooks;
    uint64_t status_callbacks;
    uint64_t twiml_params_dropped; /* From/To too long for a <Parameter> */
    uint64_t gather_begun[CS_GATHER_WHY_COUNT]; /* conversations in <Gather> turns */
    uint64_t gather_no_agent;                   /* calls that could not talk in turns: no agent */
    uint64_t gather_bad_input;                  /* turns refused: Digits not keys */
    uint64_t gather_account_refused;            /* calls of another account (TWILIO_ACCOUNT_SID) */
    uint64_t gather_actions;                    /* <Connect action> requests after a media stream */
    uint64_t gather_unanswered;                 /* requests the call's loop did not reply to */
    uint64_t gather_reads_full;                 /* actions hung up: GATHER_READS_MAX reading */
    uint64_t webhook_params_refused; /* voice webhooks with more than CS_CALL_PARAMS_MAX */
    uint64_t exports;              /* call exports begun (api_export.c) */
    uint64_t exports_truncated;    /* of those: events or segments past the store's bounds */
    uint64_t export_audio_frames;  /* caller audio sent in exports (8 kHz frames) */
    uint64_t recordings_remote;        /* recordings asked of the node holding them */
    uint64_t recordings_remote_failed; /* of those: the holder down, unknown or refusing */
    uint64_t node_sig_refused;         /* requests with a bad node signature (401, 403) */
    uint64_t ready_refused;            /* /ready answered 503 */
} cs_gateway_stats;

/* Parameters a call may bring in the voice webhook's query (an outbound call's agent and
 * its params): the start-up check of the TwiML's size counts this many, in as long a query
 * as a request target holds (CS_HTTP_MAX_TARGET). */
#define CS_CALL_PARAMS_MAX 17

#define CS_REMOTE_MAX 256 /* recordings asked of other nodes at once; more: 503 */

/* What the loops of a process count together (core/quota.h), so that its limits are the
 * process's whichever loop a connection, a call or a request lands on: made once, for
 * the one loop or in workers.c for several. */
typedef struct cs_gateway_shared {
    cs_server_quota net; /* MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, MAX_HEADS_PER_IP */
    cs_quota calls;      /* media and relay sockets open (MAX_CALLS, asked at the webhook) */
    cs_auth_shared auth; /* LOGIN_ATTEMPTS_PER_MIN, sessions just made */
    cs_quota remote;     /* recordings being fetched from other nodes (CS_REMOTE_MAX) */
    cs_quota gather;     /* conversations in <Gather> turns (GATHER_MAX_CALLS) */
    cs_quota pending;    /* API streams waiting for their source (CALL_STREAM_MAX_PENDING) */
} cs_gateway_shared;

void cs_gateway_shared_init(cs_gateway_shared *q, const cs_config *cfg);
void cs_gateway_shared_free(cs_gateway_shared *q);

typedef struct cs_gateway {
    const cs_config *cfg;
    uv_loop_t *loop;
    cs_net *net;
    cs_fetch *fetch; /* outbound HTTP (the transcript webhook) */
    cs_control *control;           /* call control; NULL without TWILIO_ACCOUNT_SID */
    char api_url[CS_URL_CAP];      /* TWILIO_API_URL without a trailing slash */
    char call_status_url[CS_URL_CAP]; /* …/twilio/status: outbound calls' StatusCallback */
    cs_server *server;
    cs_mailbox *mb;
    cs_store *store;
    cs_recorders *recorders;
    cs_calls calls;
    const cs_agent_ops *agent; /* NULL: listen only */
    cs_agent_env agent_env;
    const cs_provider_ops *provider;
    cs_pscratch scratch;         /* the loop's parse scratch */
    cs_buf out;                  /* the loop's scratch for outbound messages */
    char public_url[CS_URL_CAP]; /* without a trailing slash */
    char stream_url[CS_URL_CAP]; /* ws(s)://…/twilio/media, as put in TwiML */
    char relay_url[CS_URL_CAP];  /* ws(s)://…/twilio/relay (STREAM_MODE=relay) */
    char relay_action_url[CS_URL_CAP]; /* …/twilio/relay-action */
    char status_url[CS_URL_CAP]; /* …/twilio/stream-status */
    char gather_url[CS_URL_CAP]; /* …/twilio/gather: <Gather action> and <Connect action> */
    cs_gather *gather;           /* calls talking in <Gather> turns */
    cs_gather_read *gather_reads; /* <Connect action>s reading the store (gather.c) */
    size_t gather_nreads;
    char origin[CS_URL_CAP];     /* PUBLIC_URL's scheme://host[:port] */
    cs_auth *auth;
    cs_bus *bus;               /* listen-in and the call directory; NULL once stopped */
    cs_cluster *cluster;       /* commands between nodes (cluster.c); NULL once stopped */
    struct cs_remote *remote;  /* recordings other nodes hold (api_remote.c) */
    const cs_stt_ops *stt_ops; /* NULL: no transcription */
    cs_stt *stt;
    cs_map transcribing; /* StreamSid → its speakers' sessions */
    cs_map grammars;     /* STT_GRAMMAR_DIR: name → JSGF text */
    /* The speech engine agents speak with (TTS); NULL with TTS=none. */
    const cs_tts_ops *tts_ops;
    cs_tts *tts;
    cs_tts_fallback tts_fallback; /* for a cloud TTS (ops NULL: none) */
    cs_config fallback_cfg;       /* what it was made with: its own default voice */
    cs_webhook *webhook;          /* NULL without TRANSCRIPT_WEBHOOK_URL */
    cs_summary *summary;          /* NULL with SUMMARY=0 or without LLM_URL */
    cs_transcripts transcripts;
    monitor *monitors; /* open monitor sockets */
    size_t nmonitors;
    uv_timer_t monitor_timer;
    cs_form stream_params; /* STREAM_PARAMS */
    cs_call_streams *call_streams; /* binary-audio sources' streams (call_streams.c) */
    media_sock *sockets;   /* live media sockets */
    size_t nsockets;
    int64_t started_ms;
    cs_workers *workers; /* the process's loops when there are several (workers.c), or NULL */
    cs_gateway_shared *shared;   /* the process's, shared by its loops */
    uint32_t loop_index; /* this loop's, 0.. */
    bool draining;
    unsigned signals; /* SIGTERM and SIGINT this loop heard */
    cs_gateway_stats stats;
    uv_signal_t sigterm, sigint;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_deadline_ms;
} cs_gateway;

/* `callstream serve`: returns the process exit code. */
int cs_gateway_main(int argc, char **argv);
/* One loop's gateway (gw->cfg and gw->shared set; workers and loop_index too, for one of
 * several): a
 * loop made, start-up (its error logged), the loop run until it has drained, teardown.
 * 0, or < 0 when it could not start. */
int cs_gateway_serve(cs_gateway *gw);
/* Drains as SIGTERM does: no new calls, the live ones get SHUTDOWN_GRACE_S (loop thread;
 * once: a second SIGTERM is the signal watcher's to count). */
void cs_gateway_drain(cs_gateway *gw, int signum);

/* ---- several loops (workers.c) ---- */
/* WORKERS resolved: one per core for 0, at most CS_BUS_LOOPS_MAX. */
uint32_t cs_workers_wanted(const cs_config *cfg);
/* Runs `n` loops (n > 1), each on its own thread, started one after the other: the
 * first's failure stops the rest from starting and is logged once. 0, or < 0. */
int cs_workers_main(const cs_config *cfg, uint32_t n);
/* For a loop's start-up: the hub its bus joins, how many loops, the first loop's store run
 * and port (loop_index > 0); the start-up's outcome (then the next loop starts); the loop
 * has drained (closes what workers.c opened on it; idempotent). */
cs_bus_hub *cs_workers_hub(const cs_workers *w);
uint32_t cs_workers_count(const cs_workers *w);
const char *cs_workers_run(const cs_workers *w);
int cs_workers_port(const cs_workers *w);
void cs_workers_started(cs_gateway *gw, int rc);
void cs_workers_loop_end(cs_gateway *gw);
/* After the loop has run: frees what workers.c still holds for it. */
void cs_workers_loop_free(cs_gateway *gw);
/* /metrics: asks every other loop for its own (rendered on its loop) and answers `r` with
 * their sum and per-loop series once all have (`mine`, this loop's, is taken over).
 * /status: "loops", each one's load as it last published it (every
 * CS_WORKERS_LOAD_MS). */
#define CS_WORKERS_LOAD_MS 1000
void cs_workers_metrics(cs_request *r, cs_buf *mine);
/* /streams: every loop's streams (cs_streams_render's arrays; `mine` taken over). */
void cs_workers_streams(cs_request *r, cs_buf *mine);
void cs_workers_status(cs_gateway *gw, cs_json *j);
/* The process's live calls, streams and open connections: this loop's now, the others' as
 * they last published them. */
void cs_workers_totals(cs_gateway *gw, uint64_t *calls, uint64_t *streams, uint64_t *conns);
/* The process's store: `st` (this loop's) merged with the other loops' — failing since
 * the earliest, the latest errors, the counts summed. */
void cs_workers_store_stats(cs_gateway *gw, cs_store_stats *st);
/* Prometheus texts summed: `first`'s series in its order, each the sum of its values in
 * `texts` (`first` among them; the process's own gauges — up, uptime, memory… — take the
 * largest instead); series `first` lacks are left out. */
void cs_workers_sum(const cs_buf *first, const cs_buf *texts, size_t n, cs_buf *out);

/* ---- handlers (one file each) ---- */
void cs_twilio_voice(cs_request *r);
/* The voice webhook answered call `call_sid` (its own parameters: `call_params`, may be
 * NULL): the agent its stream will get prepares. */
void cs_gateway_prepare(cs_gateway *gw, const char *call_sid, const cs_form *call_params);
void cs_twilio_status(cs_request *r);
void cs_twilio_stream_status(cs_request *r);
void cs_media_upgrade(cs_request *r);
void cs_relay_upgrade(cs_request *r);
void cs_twilio_relay_action(cs_request *r);
/* <Gather> turns (gather.c): POST /twilio/gather, a turn or a stream's <Connect action>. */
void cs_twilio_gather(cs_request *r);
/* Why the voice webhook answers with <Gather> turns instead of a stream (NONE: it does
 * not). */
enum cs_gather_why cs_gather_why_voice(const cs_gateway *gw);
/* Answers `r` (later) with the agent's first turn of a conversation for the call, or at
 * once with <Hangup/> (an event says why) when it cannot talk so. */
void cs_gather_answer(cs_request *r, const cs_form *form, const char *call_sid,
                      const cs_form *call_params, enum cs_gather_why why);
/* A <Gather> request taken here, the call's loop: `r`'s own (its body and query read
 * again), or (`r` NULL) one loop `from` forwarded (`form`, `query`: its body and query
 * string), whose TwiML goes back to it as reply `id` (cluster.c). Never routed again. */
void cs_gather_take(cs_gateway *gw, cs_request *r, const char *from, uint64_t id, const char *form,
                    const char *query);
/* A forwarded request's reply from the call's loop: `body` (TwiML) for 200, else an
 * error `code` with `msg`. */
void cs_gather_respond(cs_request *r, const char *sid, int code, const char *msg, const char *body);
/* A forwarded request with no reply (cluster.c says why): <Hangup/>, and an event of the
 * call with the reason. */
typedef struct cs_cluster_fail cs_cluster_fail;
void cs_gather_unanswered(cs_request *r, const char *sid, const cs_cluster_fail *why);
/* How a call's streams fared by the store's rows (CS_Q_CALL's): its latest stream not
 * in turns ended (*why), is open (LIVE: no end written yet), or there is none (UNKNOWN). */
enum cs_gather_fate cs_gather_fate_of_rows(const cs_stream_row *rows, size_t n,
                                           enum cs_end_reason *why);
/* Shutdown: the <Connect action>s still reading the store hang up. */
void cs_gather_reads_stop(cs_gateway *gw);
/* Start-up: the conversations (0 or a negative code); metrics. */
int cs_gather_start(cs_gateway *gw);
void cs_gather_metrics(const cs_gateway *gw, cs_buf *out);

/* How a turn's TwiML is written. */
typedef struct cs_gather_twiml_opts {
    const char *action;   /* where the caller's turn is POSTed, and the <Redirect> after */
    const char *voice;    /* <Say voice>, or NULL */
    const char *language; /* <Gather> and <Say> language, or NULL */
    unsigned timeout_s;   /* <Gather timeout> */
} cs_gather_twiml_opts;
/* The answer's TwiML: what the agent said (<Say>, <Play>), then <Hangup/>, or inside a
 * <Gather input="speech dtmf"> followed by a <Redirect> to the action (no input). 0, or
 * cs_twiml_verbs_write's error (out unchanged). */
int cs_gather_twiml(cs_buf *out, const cs_gather_reply *reply, const cs_gather_twiml_opts *o);
void cs_api_calls(cs_request *r);
void cs_api_call(cs_request *r);
void cs_api_events(cs_request *r);
void cs_api_recording(cs_request *r);
void cs_api_transcript(cs_request *r);
/* The call as one document, its recording's caller channel embedded on ask (api_export.c). */
void cs_api_export(cs_request *r);
void cs_api_summary(cs_request *r);
/* Call control (control.c): place a call, hang up, transfer, say, fork streams. */
void cs_api_call_create(cs_request *r);
void cs_api_hangup(cs_request *r);
void cs_api_transfer(cs_request *r);
void cs_api_say(cs_request *r);
void cs_api_stream_start(cs_request *r);
void cs_api_stream_stop(cs_request *r);
/* Shared by the API's handlers (api_control.c): the JSON object of the body, or NULL once
 * answered 400/415 (`empty_ok`: an empty body is {}); a string member, NULL when absent,
 * *bad set when present but not a string; `params` (an object of strings, at most
 * CS_API_MAX_PARAMS, none of the gateway's own names) appended to names/values from *n:
 * 0, or < 0 once answered 400. */
#define CS_API_MAX_PARAMS (CS_CALL_PARAMS_MAX - 1) /* besides Agent */
cJSON *cs_api_json_body(cs_request *r, bool empty_ok);
const char *cs_api_jstr(const cJSON *o, const char *key, bool *bad);
int cs_api_params(cs_request *r, const cJSON *body, const char **names, const char **values,
                  size_t *n);
/* The stream lifecycle API (call_streams.c): sources that are not a telephony provider
 * stream binary audio on a socket made for them with a one-time token. */
void cs_api_call_stream_create(cs_request *r);
void cs_api_call_stream_get(cs_request *r);
void cs_api_call_stream_complete(cs_request *r);
void cs_call_stream_upgrade(cs_request *r);
/* Start-up (after the calls' registry): 0 or -ENOMEM. Shutdown: what still waits for its
 * source expires (tokens live in memory only). Its counters for /metrics. */
int cs_call_streams_start(cs_gateway *gw);
void cs_call_streams_stop(cs_gateway *gw);
void cs_call_streams_metrics(const cs_gateway *gw, cs_buf *out);
/* A CLAIM, PEEK or CANCEL another loop sends for stream `c->sid` (cluster.c): an HTTP
 * code, why in `msg`, and the answer's JSON object in `body` (CLAIM: what its source
 * needs to start there; 404: not here). A CLAIM answered 200 is forgotten here with
 * cs_call_stream_handed once the answer is on its way: one that cannot be sent leaves
 * the stream waiting, its token good. */
int cs_call_stream_serve(cs_gateway *gw, const struct cs_cmd *c, cs_buf *body, char *msg,
                         size_t cap);
void cs_call_stream_handed(cs_gateway *gw, const char *id);
/* Starts call control (start-up): CS_ECONFIG with a message for settings that cannot
 * work (an API key without its secret, TWILIO_API_URL not http(s)). */
int cs_control_setup(cs_gateway *gw, cs_buf *err);
void cs_monitor_upgrade(cs_request *r);
void cs_web_root(cs_request *r);
void cs_web_login(cs_request *r);
void cs_web_calls(cs_request *r);
void cs_web_call(cs_request *r);
void cs_web_static(cs_request *r);
void cs_health(cs_request *r);
void cs_ready(cs_request *r);
void cs_status(cs_request *r);
void cs_streams(cs_request *r);
void cs_metrics(cs_request *r);
/* This loop's metrics (Prometheus text) into `out`. */
void cs_metrics_render(cs_gateway *gw, cs_buf *out);
/* This loop's live streams, a JSON array, into `out` (left empty when too large); the
 * answer to /streams with such an array (empty: 500) and the number of streams. */
void cs_streams_render(cs_gateway *gw, cs_buf *out);
void cs_streams_answer(cs_request *r, const cs_buf *streams, uint64_t count);

/* Media and relay sockets (media.c): closes them all (shutdown), with 1001. */
void cs_media_close_all(cs_gateway *gw);
/* Upgrades `r` (its credential checked) to the socket of a binary-audio source whose
 * stream starts at once with `start` (two-way). 0, the codec now the socket's; or < 0
 * once answered, the codec still the caller's. */
int cs_media_attach(cs_request *r, cs_pcodec *codec, const cs_pevent *start);
/* Ends the live call's streams from our side, closing their sockets with 1000 and
 * `reason`: 0, or CS_ENOTFOUND when it is not live here. */
int cs_media_end_call(cs_gateway *gw, const char *call_sid, const char *reason);
/* The agent a stream with these parameters gets (gateway.c): `Agent` among them, else
 * AGENT; NULL: none. */
const cs_agent_ops *cs_gateway_agent(const cs_gateway *gw, const cs_kv *params, size_t n);
/* The agent a call our voice webhook answers will get: `Agent` among the call's own
 * parameters (its webhook's query: an outbound call's), else STREAM_PARAMS', else AGENT. */
const cs_agent_ops *cs_gateway_webhook_agent(const cs_gateway *gw, const cs_form *call_params);

/* Recordings other nodes hold (api_remote.c): NODE_PEERS checked (CS_ECONFIG), and what
 * it keeps; freed once the loop has stopped. */
int cs_api_remote_start(cs_gateway *gw, cs_buf *err);
void cs_api_remote_free(cs_gateway *gw);

/* Listen-in (monitor.c): the observer publishing calls to the bus and the directory, the
 * once-a-second timer, closing every monitor socket (shutdown). */
int cs_monitor_attach(cs_gateway *gw);
int cs_monitor_start(cs_gateway *gw);
void cs_monitor_close_all(cs_gateway *gw);
/* Closes the monitor sockets opened with the credential whose hash is `cred` (it has
 * ended: `why` is the close reason), at once and with nothing more sent. */
void cs_monitor_revoke(cs_gateway *gw, const char *cred, const char *why);

/* Transcription (transcribe.c): the engine named by STT and the observer feeding it
 * (start-up; CS_ECONFIG with a message); whether every session has closed; stopping the
 * engine (after that); freeing what is left. */
int cs_transcribe_start(cs_gateway *gw, cs_buf *err);
bool cs_transcribe_idle(const cs_gateway *gw);
void cs_transcribe_stop(cs_gateway *gw);
void cs_transcribe_free(cs_gateway *gw);

/* The operator's webhook (webhook.c): `json` is copied and POSTed, signed, with retries;
 * `event` (a static string: transcript.final, transcript.refined, call.summary) goes in
 * X-Callstream-Event. new: CS_ECONFIG with a message when TRANSCRIPT_WEBHOOK_URL is not an
 * http(s) URL. */
int cs_webhook_new(cs_webhook **out, cs_gateway *gw, cs_buf *err);
void cs_webhook_send(cs_webhook *h, const char *event, const char *json, size_t len);
size_t cs_webhook_pending(const cs_webhook *h);
const cs_webhook_stats *cs_webhook_stats_get(const cs_webhook *h);
/* Gives up what waits or is in flight, and sends nothing more (shutdown: at once on a
 * second signal, else once the last deliveries are over). */
void cs_webhook_stop(cs_webhook *h);
void cs_webhook_free(cs_webhook *h);

/* `callstream user …` and `callstream token …` (admin.c): exit codes. */
int cs_admin_user(int argc, char **argv);
int cs_admin_token(int argc, char **argv);

/* The store's view of calls (journal.c): registers an observer writing calls, streams
 * and events as they happen. */
int cs_journal_attach(cs_gateway *gw);
/* Upserts a call row (strings copied). */
void cs_journal_call(cs_gateway *gw, const cs_call_row *row);
/* At start-up: ends the calls an earlier run left live (killed or crashed) as abnormal, at
 * their last recorded frame, with their repaired recordings and an event. Asynchronous. */
void cs_journal_recover(cs_gateway *gw);

/* The cluster (cluster.c): what acts on a call live on another node is sent there as a
 * command; a lost node's calls end; outages become events of the live calls. */
typedef struct cs_cluster_stats {
    uint64_t refused;      /* commands received malformed: counted and skipped */
    uint64_t unreachable;  /* commands whose node could not be reached: applied here */
    uint64_t routes_full;  /* commands past CLUSTER_ROUTES_MAX in flight: applied here */
    uint64_t replies_late; /* requests (/say, <Gather>) the owner did not reply to in time */
    uint64_t calls_lost;   /* calls of lost nodes this one ended */
    uint64_t store_outages, health_events;
} cs_cluster_stats;
/* Start-up (before the bus opens: its callbacks are these) and shutdown (before the bus
 * closes: what waits is applied here or answered). 0 or -ENOMEM. */
int cs_cluster_start(cs_gateway *gw);
void cs_cluster_stop(cs_gateway *gw);
void cs_cluster_on_health(void *data, bool up, const char *why);
void cs_cluster_on_node_lost(void *data, const cs_bus_node *lost, const cs_dir_call *calls,
                             size_t n);
void cs_cluster_on_command(void *data, const char *from, const char *json, size_t n);
/* An event of a call not live here: to the node it lives on (its listeners and history
 * get it, and it writes it), else written here. */
void cs_cluster_event(cs_gateway *gw, const char *sid, enum cs_event_type type, int64_t at,
                      const char *detail);
/* A status callback's CallStatus, applied where the call lives (a final one ends it). */
void cs_cluster_status(cs_gateway *gw, const char *sid, const char *status);
/* POST …/say for a call not live here: answered (later) as the node it lives on does. */
void cs_cluster_say(cs_request *r, const char *sid, const char *text);
/* POST /twilio/gather for a call not live here: forwarded to the loop holding it and
 * answered with its TwiML, or taken here (cs_gather_take) when it is nowhere. */
void cs_cluster_gather(cs_request *r, const char *sid);
/* Why a request sent to its call's loop got no reply: the status an API answers with, a
 * reason for events, a message. */
struct cs_cluster_fail {
    int code;
    const char *reason, *message;
};
/* A request to another loop or node (the API's or Twilio's `r` waits for it): how long its
 * reply may take (NULL: 5 s), how `r` is answered with the reply (an HTTP code, why, a
 * body or NULL) or, for one asked of every loop, 404 when none holds it; how without one
 * (NULL: by `answer`, with the failure's code and message); `spread`: asked of every loop
 * of every node when its call is not live. */
typedef struct cs_cluster_kind {
    uint32_t (*wait_ms)(const cs_gateway *gw);
    void (*answer)(cs_request *r, const char *sid, int code, const char *msg, const char *body);
    void (*fail)(cs_request *r, const char *sid, const cs_cluster_fail *why);
    bool spread;
} cs_cluster_kind;
/* `c` (a CLAIM, PEEK or CANCEL of an API stream not known here…) to its call's loop, or to
 * every loop for a spread kind; `r` answered later as `kind` says. */
void cs_cluster_request(cs_request *r, const struct cs_cmd *c, const cs_cluster_kind *kind);
/* Reply `id` to the loop at `to` that sent a request (REPLY: code, msg or NULL, body or
 * NULL): 0, or < 0 when it cannot be sent (counted as unreachable). */
int cs_cluster_reply(cs_gateway *gw, const char *to, uint64_t id, int code, const char *msg,
                     const char *body);
/* Shutdown, before the connections close: the requests still waiting for another loop's
 * reply are answered without it (503, or as their kind says). */
void cs_cluster_answer_all(cs_gateway *gw);
/* Reads the directory for `fn` (what, sid: cs_dir_req's), which runs later with the
 * answer (valid during the call; rc < 0: not known, and at shutdown). 0, or < 0 at once
 * (no bus, CS_EFULL, -ENOMEM): `fn` will not run. */
typedef void (*cs_cluster_ask_fn)(void *data, const cs_dir_req *q);
int cs_cluster_ask(cs_gateway *gw, enum cs_dir_what what, const char *sid, cs_cluster_ask_fn fn,
                   void *data);
/* NULL once stopped. Its counters for /metrics. */
const cs_cluster_stats *cs_cluster_stats_get(const cs_gateway *gw);
void cs_cluster_metrics(const cs_gateway *gw, cs_buf *out);
/* The agent of live call `sid` says `text` (api_control.c): 202, or 409/503 with why in
 * `msg`; the `control` event recorded. And the API's answer for that code. */
int cs_api_say_here(cs_gateway *gw, const char *sid, const char *text, const char *by, char *msg,
                    size_t cap);
void cs_api_say_respond(cs_request *r, const char *sid, int code, const char *msg);
/* A lost node's call, ended (monitor.c): call_ended to those who follow it, from its
 * directory summary. */
void cs_monitor_call_lost(cs_gateway *gw, const char *sid, const char *summary, size_t n);
/* An event row for call `sid`, written here whatever holds the call (journal.c). */
void cs_journal_event(cs_gateway *gw, const char *sid, enum cs_event_type type, int64_t at,
                      const char *detail);

/* Checks X-Twilio-Signature of a form webhook (twilio.c). 0, or answers 403/400 itself
 * and returns < 0. Parsed form into *form (free with cs_form_free). */
int cs_twilio_check_webhook(cs_request *r, cs_form *form);
/* The same, with a valid CallSid: the CallSid, or NULL once answered (and `form` freed). */
const char *cs_twilio_checked_call(cs_request *r, cs_form *form);
/* The same, with the query string parsed into *query too (free both with cs_form_free). */
const char *cs_twilio_checked_query(cs_request *r, cs_form *form, cs_form *query);
/* Whether a CallStatus is one after which nothing more happens (completed, busy, failed,
 * no-answer, canceled). */
bool cs_twilio_final_status(const char *status);
/* A form parameter, NULL when absent or empty. */
const char *cs_twilio_form_get(const cs_form *f, const char *name);
/* An event of `type` with every parameter of the request's form. */
void cs_twilio_form_event(cs_request *r, const cs_form *form, const char *call_sid,
                          enum cs_event_type type);
/* The <Parameter>s a call's stream carries, in order (From, To, CallSid, StreamMode
 * `mode`, Greeting `welcome`: NULL ones left out; the call's own; STREAM_PARAMS) into
 * `params` (CS_PEV_MAX_PARAMS): how many. Views into the arguments. */
size_t cs_twilio_call_params(cs_gateway *gw, cs_kv *params, const char *call_sid, const char *from,
                             const char *to, const char *mode, const char *welcome,
                             const cs_form *call_params);
/* Whether `name` is a <Parameter> the voice webhook gives every stream itself (From, To,
 * CallSid, StreamMode), which a call's own parameters may not take (twilio.c). */
bool cs_twilio_param_taken(const char *name);
/* Whether the settings make TwiML Twilio takes, whatever a webhook brings (twilio.c).
 * 0, or CS_ECONFIG with the reason in `err`. */
int cs_twilio_twiml_check(cs_gateway *gw, cs_buf *err);

#endif
