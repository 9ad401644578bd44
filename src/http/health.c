/* Probes and observability: /health for load balancers, /status and /streams for
 * people, /metrics in Prometheus text format for machines. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/prom.h"
#include "http/auth.h"
#include "http/gateway.h"

static double uptime_s(const cs_gateway *gw)
{
    return (double)(cs_wall_ms() - gw->started_ms) / 1000.0;
}

/* Whether the store fails: its writes (what it takes waits in memory and the spill file),
 * or its queries (the API and sign-in answer 503). */
static bool store_failing(const cs_store_stats *st)
{
    return st->failing_since_ms || st->reads_failing_since_ms;
}

/* The store as the process sees it: every loop has its own connection. */
static void store_stats(cs_gateway *gw, cs_store_stats *st)
{
    cs_store_stats_get(gw->store, st);
    if (gw->workers) cs_workers_store_stats(gw, st);
}

/* "ok", "degraded" (calls go on but the store fails), or "draining". */
static const char *state(const cs_gateway *gw, const cs_store_stats *st)
{
    if (gw->draining) return "draining";
    return store_failing(st) ? "degraded" : "ok";
}

/* {"at":…,"message":…} or null. */
static void error_json(cs_json *j, const char *key, int64_t at_ms, const char *message)
{
    cs_json_key(j, key);
    if (!at_ms) {
        cs_json_null(j);
        return;
    }
    cs_json_obj(j);
    cs_json_ktime(j, "at", at_ms);
    cs_json_kstr(j, "message", message);
    cs_json_obj_end(j);
}

void cs_health(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_store_stats st;
    store_stats(gw, &st);
    cs_buf out = CS_BUF_INIT(4096);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "status", state(gw, &st));
    cs_json_kdouble(&j, "uptime_s", uptime_s(gw));
    cs_json_kstr(&j, "store", store_failing(&st) ? "failing" : "ok");
    cs_json_obj_end(&j);
    /* A draining gateway tells load balancers to send new calls elsewhere. A degraded one
     * still takes calls whole (audio, recordings; rows wait and spill, nothing is lost),
     * so it stays in rotation: 200, for monitoring to alert on the body. */
    cs_respond_json(r, gw->draining ? 503 : 200, &out);
    cs_buf_free(&out);
}

/* Whether a load balancer should send this node work: its store and its bus reachable,
 * and not draining. 503 says which is not. */
void cs_ready(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_store_stats st;
    store_stats(gw, &st);
    bool store_ok = !store_failing(&st), bus_ok = gw->bus && cs_bus_ready(gw->bus);
    bool ready = store_ok && bus_ok && !gw->draining;
    cs_buf out = CS_BUF_INIT(4096);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kbool(&j, "ready", ready);
    cs_json_kstr(&j, "store", store_ok ? "ok" : "failing");
    cs_json_kstr(&j, "bus", bus_ok ? "ok" : "unreachable");
    cs_json_kbool(&j, "draining", gw->draining);
    cs_json_obj_end(&j);
    gw->stats.ready_refused += !ready;
    cs_respond_json(r, ready ? 200 : 503, &out);
    cs_buf_free(&out);
}

/* The recorder's state: files failing now, and the room left for them. */
static void recordings_json(cs_json *j, cs_recorders *rec)
{
    cs_recorders_stats rs;
    cs_recorders_stats_get(rec, &rs);
    cs_json_key(j, "recordings_stats");
    cs_json_obj(j);
    cs_json_kuint(j, "open", rs.opened - rs.closed);
    cs_json_kuint(j, "failing", rs.failing);
    cs_json_kdouble(j, "lost_s", (double)rs.lost_frames / CS_REC_RATE);
    if (rs.disk_known) {
        cs_json_kuint(j, "disk_free_bytes", rs.disk_free);
        cs_json_kuint(j, "disk_total_bytes", rs.disk_total);
    }
    cs_json_kuint(j, "disk_low_bytes", rs.disk_low_bytes);
    cs_json_kbool(j, "disk_low", rs.disk_low);
    cs_json_obj_end(j);
    if (rs.disk_low) {
        char w[160];
        snprintf(w, sizeof w, "recordings: %.1f MB free, under RECORDINGS_LOW_DISK_MB",
                 (double)rs.disk_free / 1e6);
        cs_json_key(j, "warnings");
        cs_json_arr(j);
        cs_json_str(j, w);
        cs_json_arr_end(j);
    }
}

static void node_json(cs_json *j, const cs_bus_node *n)
{
    cs_json_obj(j);
    cs_json_kstr(j, "id", n->id);
    cs_json_kstr(j, "url", n->url);
    cs_json_kstr(j, "run", n->run);
    cs_json_kuint(j, "loops", n->loops);
    cs_json_ktime(j, "started_at", n->started_ms);
    cs_json_kuint(j, "calls", n->calls);
    cs_json_kuint(j, "streams", n->streams);
    cs_json_kuint(j, "monitors", n->monitors);
    cs_json_ktime(j, "last_seen", n->seen_ms);
    cs_json_obj_end(j);
}

/* This node and its peers as the directory has them; `partial`: the bus's server is away,
 * so only this node is known. */
static void cluster_json(cs_json *j, const cs_dir_req *q)
{
    const cs_bus_node *self = NULL;
    for (size_t i = 0; i < q->nnodes && !self; i++)
        if (q->nodes[i].self) self = &q->nodes[i];
    cs_json_key(j, "node");
    if (self)
        node_json(j, self);
    else
        cs_json_null(j);
    cs_json_key(j, "peers");
    cs_json_arr(j);
    for (size_t i = 0; i < q->nnodes; i++)
        if (!q->nodes[i].self) node_json(j, &q->nodes[i]);
    cs_json_arr_end(j);
    cs_json_kbool(j, "peers_partial", q->rc < 0 || q->partial);
}

static void status_answer(cs_request *r, const cs_dir_req *nodes);

static void status_nodes(void *data, const cs_dir_req *q)
{
    status_answer(data, q);
}

void cs_status(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_status)) return;
    int rc = cs_cluster_ask(r->app, CS_DIR_NODES, NULL, status_nodes, r);
    if (rc < 0) status_answer(r, &(cs_dir_req){.rc = rc});
}

static void status_answer(cs_request *r, const cs_dir_req *nodes)
{
    cs_gateway *gw = r->app;
    const cs_config *cfg = gw->cfg;
    cs_store_stats st;
    store_stats(gw, &st);
    cs_buf out = CS_BUF_INIT(1 << 20);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "version", CS_VERSION);
    cs_json_kstr(&j, "status", state(gw, &st));
    cs_json_kdouble(&j, "uptime_s", uptime_s(gw));
    cs_json_kstr(&j, "public_url", gw->public_url);
    cs_json_kstr(&j, "stream_url", gw->stream_url);
    cs_json_kstr(&j, "stream_mode", cfg->stream_mode);
    cs_json_kstr(&j, "agent", gw->agent ? gw->agent->name : "none");
    cs_json_kbool(&j, "authenticated", cfg->twilio_auth_token[0] != '\0');
    cs_json_kbool(&j, "recordings", gw->recorders != NULL);
    cs_json_kstr(&j, "transcription", gw->stt_ops ? gw->stt_ops->name : "none");
    cs_json_kstr(&j, "store", cs_store_backend(gw->store));
    cluster_json(&j, nodes);
    uint64_t calls = cs_calls_active(&gw->calls), streams = cs_calls_streams(&gw->calls),
             conns = cs_net_count(gw->net);
    if (gw->workers) cs_workers_totals(gw, &calls, &streams, &conns); /* every loop's */
    cs_json_kuint(&j, "active_calls", calls);
    cs_json_kuint(&j, "active_streams", streams);
    cs_json_kuint(&j, "connections", conns);
    cs_json_kuint(&j, "calls_total", gw->calls.stats.calls_total);
    cs_json_kuint(&j, "streams_total", gw->calls.stats.streams_total);
    cs_json_key(&j, "store_stats");
    cs_json_obj(&j);
    cs_json_kstr(&j, "state", st.failing_since_ms ? "failing" : "ok");
    cs_json_ktime(&j, "failing_since", st.failing_since_ms);
    error_json(&j, "last_error", st.last_error_ms, st.last_error);
    cs_json_kstr(&j, "reads_state", st.reads_failing_since_ms ? "failing" : "ok");
    cs_json_ktime(&j, "reads_failing_since", st.reads_failing_since_ms);
    error_json(&j, "last_read_error", st.last_read_error_ms, st.last_read_error);
    cs_json_kuint(&j, "queued", st.queued);
    cs_json_kuint(&j, "spill_queued", st.spill_queued);
    cs_json_kuint(&j, "written", st.written);
    cs_json_kuint(&j, "failures", st.failures);
    cs_json_kuint(&j, "spilled", st.spilled);
    cs_json_kuint(&j, "replayed", st.replayed);
    cs_json_kuint(&j, "lost", st.lost);
    cs_json_kuint(&j, "reads_pending", st.reads_pending);
    cs_json_kuint(&j, "reads_failed", st.reads_failed);
    cs_json_kuint(&j, "reads_timed_out", st.reads_timed_out);
    cs_json_kuint(&j, "reads_refused", st.reads_refused);
    cs_json_obj_end(&j);
    if (gw->recorders) recordings_json(&j, gw->recorders);
    if (gw->workers) cs_workers_status(gw, &j);
    cs_json_obj_end(&j);
    cs_respond_json(r, 200, &out);
    cs_buf_free(&out);
}

void cs_streams_render(cs_gateway *gw, cs_buf *out)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_arr(&j);
    cs_buf stats = CS_BUF_INIT(1 << 16);
    void *v;
    for (size_t pos = 0; cs_map_next(&gw->calls.by_stream, &pos, NULL, &v);) {
        const cs_stream *s = v;
        char iso[25];
        cs_iso8601(iso, s->started_ms);
        cs_json_obj(&j);
        cs_json_kstr(&j, "stream_sid", s->sid);
        cs_json_kstr(&j, "call_sid", s->call->sid);
        cs_json_kstr(&j, "from", s->call->from);
        cs_json_kstr(&j, "to", s->call->to);
        cs_json_kstr(&j, "mode", s->mode == CS_MODE_TWO_WAY ? "two-way" : "one-way");
        cs_json_kstr(&j, "started_at", iso);
        cs_buf_reset(&stats);
        cs_stream_stats_json(s, &stats);
        cs_json_key(&j, "stats");
        cs_json_raw(&j, stats.data, stats.len);
        cs_json_obj_end(&j);
    }
    cs_buf_free(&stats);
    cs_json_arr_end(&j);
    if (cs_json_end(&j) < 0) cs_buf_free(out); /* too large: an empty buffer says so */
}

void cs_streams_answer(cs_request *r, const cs_buf *streams, uint64_t count)
{
    cs_buf out = CS_BUF_INIT(64u << 20);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_key(&j, "streams");
    if (streams->len) cs_json_raw(&j, streams->data, streams->len);
    cs_json_kuint(&j, "count", count);
    cs_json_obj_end(&j);
    if (!streams->len || cs_json_end(&j) < 0)
        cs_respond_error(r, 500, "answer too large");
    else
        cs_respond_json(r, 200, &out);
    cs_buf_free(&out);
}

void cs_streams(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_streams)) return;
    cs_gateway *gw = r->app;
    cs_buf streams = CS_BUF_INIT(64u << 20);
    cs_streams_render(gw, &streams);
    if (gw->workers)
        cs_workers_streams(r, &streams); /* every loop's, later */
    else
        cs_streams_answer(r, &streams, cs_calls_streams(&gw->calls));
    cs_buf_free(&streams);
}

static double rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

void cs_metrics_render(cs_gateway *gw, cs_buf *into)
{
    const cs_calls_stats *cs = &gw->calls.stats;
    const cs_net_stats *ns = cs_net_stats_get(gw->net);
    const cs_server_stats *hs = cs_server_stats_get(gw->server);
    cs_store_stats st;
    cs_store_stats_get(gw->store, &st);
    cs_buf out = *into; /* appended to, and handed back */

    cs_prom_gauge(&out, "callstream_up", "1 while the gateway runs", 1);
    cs_prom_gauge(&out, "callstream_draining", "1 while shutting down", gw->draining);
    cs_prom_gauge(&out, "callstream_uptime_seconds", "seconds since start", uptime_s(gw));
    cs_prom_gauge(&out, "callstream_connections", "open TCP connections", (double)ns->open);
    cs_prom_counter(&out, "callstream_connections_total", "TCP connections accepted",
                    (double)ns->accepted);
    static const char *const rejected_labels[] = {"max_connections", "max_per_ip",
                                                  "max_heads_per_ip"};
    uint64_t rejected[] = {hs->rejected_total, hs->rejected_per_ip, hs->rejected_heads_per_ip};
    cs_prom_family(&out, "callstream_connections_rejected_total", "counter",
           "connections refused by a limit", "limit", rejected_labels, rejected, 3);
    cs_prom_counter(&out, "callstream_connections_idle_closed_total",
                    "connections closed for idling", (double)ns->idle_closed);
    static const char *const slow_labels[] = {"head_timeout", "body_too_slow", "head_evicted"};
    uint64_t slow[] = {hs->head_timeouts, hs->body_timeouts, hs->heads_evicted};
    cs_prom_family(&out, "callstream_http_slow_closed_total", "counter",
           "HTTP connections closed so slow clients cannot hold the slots", "reason", slow_labels,
           slow, 3);
    cs_prom_counter(&out, "callstream_accept_errors_total",
                    "accept() failures (out of descriptors, ...)", (double)hs->accept_errors);
    cs_prom_gauge(&out, "callstream_accept_paused", "1 while listeners rest after accept() failed",
                  (double)hs->accept_paused);
    cs_prom_counter(&out, "callstream_connections_input_overflow_total",
                    "connections closed for holding too much input", (double)ns->input_overflow);
    cs_prom_counter(&out, "callstream_output_refused_total",
                    "writes refused: a connection's output, or all output, at its cap",
                    (double)ns->output_overflow);
    cs_prom_counter(&out, "callstream_connections_output_paused_total",
                    "times a connection stopped reading until its peer took its answers",
                    (double)ns->output_paused);
    cs_prom_gauge(&out, "callstream_output_buffered_bytes", "output waiting in all connections",
                  (double)ns->buffered);
    static const char *const class_labels[] = {"listener", "default"};
    cs_prom_family(&out, "callstream_output_cap_closed_total", "counter",
           "connections closed because all output passed MAX_OUTPUT_BYTES, slowest first", "class",
           class_labels, ns->cap_closed, CS_CONN_CLASS_COUNT);
    cs_prom_counter(&out, "callstream_tls_failures_total", "failed TLS handshakes",
                    (double)ns->tls_failures);
    cs_prom_counter(&out, "callstream_network_bytes_received_total", "bytes read from sockets",
                    (double)ns->bytes_in);
    cs_prom_counter(&out, "callstream_network_bytes_sent_total", "bytes written to sockets",
                    (double)ns->bytes_out);
    cs_prom_counter(&out, "callstream_network_writes_total", "write system calls",
                    (double)ns->writes);
    cs_prom_counter(&out, "callstream_http_requests_total", "HTTP requests routed",
                    (double)hs->requests);
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    cs_prom_family(&out, "callstream_http_responses_total", "counter", "HTTP answers by status class",
           "code", classes, hs->responses + 1, 5);
    cs_prom_counter(&out, "callstream_http_bad_requests_total", "requests the parser refused",
                    (double)hs->bad_requests);
    cs_prom_counter(&out, "callstream_http_answers_too_large_total",
                    "answers with no room in the output (MAX_OUTPUT_BYTES): a 500 went instead",
                    (double)hs->answers_too_large);
    static const char *const sig_labels[] = {"webhook", "upgrade"};
    uint64_t sig[] = {gw->stats.sig_refused_webhook, gw->stats.sig_refused_upgrade};
    cs_prom_family(&out, "callstream_signature_refused_total", "counter",
           "requests refused for their X-Twilio-Signature", "route", sig_labels, sig, 2);
    cs_prom_counter(&out, "callstream_webhooks_total", "voice webhooks answered",
                    (double)gw->stats.webhooks);
    cs_prom_counter(&out, "callstream_twiml_parameters_dropped_total",
                    "From or To too long for a <Parameter>, left out of the TwiML",
                    (double)gw->stats.twiml_params_dropped);
    cs_prom_counter(&out, "callstream_webhook_params_refused_total",
                    "voice webhooks refused for bringing more than 17 call parameters",
                    (double)gw->stats.webhook_params_refused);
    cs_prom_counter(&out, "callstream_exports_total", "call exports answered",
                    (double)gw->stats.exports);
    cs_prom_counter(&out, "callstream_exports_truncated_total",
                    "call exports with more events or segments than an export holds",
                    (double)gw->stats.exports_truncated);
    cs_prom_counter(&out, "callstream_export_audio_seconds_total",
                    "caller audio embedded in call exports (?audio=1)",
                    (double)gw->stats.export_audio_frames / CS_REC_RATE);
    cs_prom_counter(&out, "callstream_recordings_remote_total",
                    "recordings asked of the node holding them",
                    (double)gw->stats.recordings_remote);
    cs_prom_counter(&out, "callstream_recordings_remote_failed_total",
                    "of those: the holder down, unknown or refusing this node (503, 502)",
                    (double)gw->stats.recordings_remote_failed);
    cs_prom_counter(&out, "callstream_node_signature_refused_total",
                    "requests from another node refused: signature bad, expired or malformed",
                    (double)gw->stats.node_sig_refused);
    cs_prom_counter(&out, "callstream_ready_refused_total",
                    "/ready answered 503 (store or bus unreachable, or draining)",
                    (double)gw->stats.ready_refused);

    cs_prom_gauge(&out, "callstream_active_calls", "calls with a live stream",
                  (double)cs_calls_active(&gw->calls));
    cs_prom_gauge(&out, "callstream_active_streams", "live media streams",
                  (double)cs_calls_streams(&gw->calls));
    cs_prom_counter(&out, "callstream_calls_total", "calls seen on media streams",
                    (double)cs->calls_total);
    cs_prom_counter(&out, "callstream_streams_total", "media streams started",
                    (double)cs->streams_total);
    cs_call_streams_metrics(gw, &out);
    cs_cluster_metrics(gw, &out);
    const char *end_labels[CS_END_COUNT];
    for (int i = 0; i < CS_END_COUNT; i++) end_labels[i] = cs_end_label(i);
    cs_prom_family(&out, "callstream_streams_ended_total", "counter", "media streams ended, by reason",
           "reason", end_labels, cs->ended, CS_END_COUNT);
    static const char *const tracks[] = {"inbound", "outbound"};
    cs_prom_family(&out, "callstream_frames_in_total", "counter", "media messages received, by track",
           "track", tracks, cs->frames_in, 2);
    cs_prom_family(&out, "callstream_audio_bytes_in_total", "counter", "audio bytes received, by track",
           "track", tracks, cs->bytes_in, 2);
    cs_prom_counter(&out, "callstream_frames_out_total", "media messages sent",
                    (double)cs->frames_out);
    cs_prom_counter(&out, "callstream_audio_bytes_out_total", "audio bytes sent",
                    (double)cs->bytes_out);
    const char *bad_labels[CS_BAD_COUNT];
    for (int i = 0; i < CS_BAD_COUNT; i++) bad_labels[i] = cs_bad_label(i);
    cs_prom_family(&out, "callstream_bad_frames_total", "counter",
           "media-socket messages counted and skipped, by kind", "kind", bad_labels, cs->bad,
           CS_BAD_COUNT);
    cs_prom_counter(&out, "callstream_sequence_gaps_total", "sequence numbers never received",
                    (double)cs->seq_gaps);
    cs_prom_counter(&out, "callstream_dtmf_total", "DTMF digits received", (double)cs->dtmf);
    static const char *const mark_labels[] = {"sent", "played", "cleared"};
    uint64_t marks[] = {cs->marks_sent, cs->marks_played, cs->marks_cleared};
    cs_prom_family(&out, "callstream_marks_total", "counter", "marks sent, and echoed by outcome", "state",
           mark_labels, marks, 3);
    cs_prom_counter(&out, "callstream_clears_total", "clear messages sent", (double)cs->clears);
    cs_prom_counter(&out, "callstream_barge_ins_total",
                    "clears for the caller's speech or keys while the agent talked",
                    (double)cs->barge_ins);
    cs_prom_counter(&out, "callstream_agent_utterances_total", "utterances begun by agents",
                    (double)cs->utterances);
    cs_prom_counter(&out, "callstream_playout_underruns_total",
                    "agent audio sent late: a gap inside an utterance", (double)cs->underruns);
    cs_prom_counter(&out, "callstream_playout_refused_total",
                    "agent audio refused: PLAYOUT_MAX_S queued", (double)cs->playout_full);
    cs_prom_counter(&out, "callstream_agent_failures_total", "agents that failed to start",
                    (double)cs->agent_failures);
    static const char *const relay_labels[] = {"prompt", "interrupt", "sent"};
    uint64_t relay[] = {cs->relay_prompts, cs->relay_interrupts, cs->relay_texts_out};
    cs_prom_family(&out, "callstream_relay_messages_total", "counter",
           "relay streams: the caller's words and interrupts received, messages sent", "kind",
           relay_labels, relay, 3);
    cs_prom_counter(&out, "callstream_relay_sockets_total", "relay sockets opened",
                    (double)gw->stats.relay_sockets_total);
    cs_prom_counter(&out, "callstream_relay_actions_total",
                    "the provider's posts after a relay session ended",
                    (double)gw->stats.relay_actions);
    cs_prom_gauge(&out, "callstream_agents", "streams with an agent",
                  (double)gw->calls.talk.ntalkers);
    cs_gather_metrics(gw, &out);
    cs_agents_metrics(&gw->agent_env, &out);
    cs_prom_hist(&out, "callstream_voice_to_voice_seconds",
                 "the caller's end of speech to the agent's first frame of its answer",
                 &cs->voice_to_voice);
    cs_prom_hist(&out, "callstream_barge_in_seconds", "the caller's speech onset to the clear",
                 &cs->barge_in_seconds);
    cs_prom_hist(&out, "callstream_frame_processing_seconds",
                 "time to handle one inbound media message", &cs->frame_seconds);

    cs_prom_gauge(&out, "callstream_store_queue_depth", "store writes waiting", (double)st.queued);
    cs_prom_counter(&out, "callstream_store_written_total", "records committed to the store",
                    (double)st.written);
    cs_prom_counter(&out, "callstream_store_failures_total", "failed store attempts (retried)",
                    (double)st.failures);
    cs_prom_counter(&out, "callstream_store_spilled_total", "records spilled to disk",
                    (double)st.spilled);
    cs_prom_counter(&out, "callstream_store_replayed_total", "spilled records written since",
                    (double)st.replayed);
    cs_prom_counter(&out, "callstream_store_lost_total",
                    "records neither written nor spilled (the spill file failed too)",
                    (double)st.lost);
    cs_prom_gauge(&out, "callstream_store_spill_queue_depth", "records waiting for the spill file",
                  (double)st.spill_queued);
    cs_prom_gauge(&out, "callstream_store_failing", "1 while store writes fail or stall",
                  st.failing_since_ms != 0);
    cs_prom_gauge(&out, "callstream_store_failing_seconds", "for how long writes have failed",
                  st.failing_since_ms ? (double)(cs_wall_ms() - st.failing_since_ms) / 1000 : 0);
    cs_prom_gauge(&out, "callstream_store_reads_pending", "store queries not answered yet",
                  (double)st.reads_pending);
    static const char *const read_labels[] = {"failed", "timeout", "refused"};
    uint64_t reads[] = {st.reads_failed, st.reads_timed_out, st.reads_refused};
    cs_prom_family(&out, "callstream_store_reads_failed_total", "counter",
           "store queries answered with an error, by cause", "cause", read_labels, reads, 3);
    cs_prom_gauge(&out, "callstream_store_reads_failing",
                  "1 while store queries fail (none answered since)",
                  st.reads_failing_since_ms ? 1 : 0);
    if (gw->bus) {
        const cs_bus_stats *bs = cs_bus_stats_get(gw->bus);
        const struct {
            const char *name, *help;
            uint64_t value;
        } bus[] = {
            {"callstream_bus_published_total", "listen-in messages published that someone listened to",
             bs->published},
            {"callstream_bus_delivered_total", "deliveries to subscribers here", bs->delivered},
            {"callstream_bus_sent_total", "messages handed on for other nodes", bs->sent},
            {"callstream_bus_received_total", "messages from other nodes", bs->received},
            {"callstream_bus_dropped_total",
             "messages for other nodes lost (the bus's server away, too many in flight)",
             bs->dropped},
            {"callstream_bus_bad_total", "messages received that were not ones, skipped", bs->bad},
            {"callstream_bus_outages_total", "times the bus's server went away", bs->outages},
            {"callstream_bus_reconnects_total", "times it came back", bs->reconnects},
            {"callstream_bus_nodes_lost_total", "nodes this one declared lost", bs->nodes_lost},
            {"callstream_bus_commands_in_total", "commands from other nodes", bs->commands_in},
            {"callstream_bus_commands_out_total", "commands to other nodes", bs->commands_out},
            {"callstream_bus_commands_unknown_total",
             "commands refused at once: no such node, or no such loop of it", bs->commands_unknown},
            {"callstream_bus_held_total",
             "calls' ends held while the bus's server was away, sent when it came back", bs->held},
            {"callstream_bus_held_dropped_total",
             "of those, dropped past their bound (1000 messages, 16 MiB)", bs->held_dropped},
        };
        for (size_t i = 0; i < sizeof bus / sizeof *bus; i++)
            cs_prom_counter(&out, bus[i].name, bus[i].help, (double)bus[i].value);
        cs_prom_gauge(&out, "callstream_bus_up", "1 while the bus's server is reachable",
                      cs_bus_ready(gw->bus));
    }
    if (gw->recorders) {
        cs_recorders_stats rs;
        cs_recorders_stats_get(gw->recorders, &rs);
        cs_prom_gauge(&out, "callstream_recordings_open", "recordings being written",
                      (double)(rs.opened - rs.closed));
        cs_prom_gauge(&out, "callstream_recorder_backlog_bytes", "audio waiting for the disk",
                      (double)rs.backlog_bytes);
        cs_prom_counter(&out, "callstream_recorder_dropped_chunks_total",
                        "audio chunks dropped because the disk fell behind",
                        (double)rs.dropped_chunks);
        cs_prom_counter(&out, "callstream_recorder_errors_total",
                        "times a recording file stopped being writable", (double)rs.errors);
        cs_prom_counter(&out, "callstream_recorder_retries_total",
                        "attempts to write a failing recording file again", (double)rs.retries);
        cs_prom_gauge(&out, "callstream_recordings_failing", "recordings that cannot write now",
                      (double)rs.failing);
        cs_prom_counter(&out, "callstream_recorder_lost_seconds_total",
                        "audio lost to file errors (silence in the recordings)",
                        (double)rs.lost_frames / CS_REC_RATE);
        cs_prom_counter(&out, "callstream_recorder_refused_total",
                        "audio placed past what a WAV can hold, skipped", (double)rs.refused);
        if (rs.disk_known) {
            cs_prom_gauge(&out, "callstream_recordings_disk_free_bytes",
                          "free space on the recordings' filesystem", (double)rs.disk_free);
            cs_prom_gauge(&out, "callstream_recordings_disk_low",
                          "1 while that is under RECORDINGS_LOW_DISK_MB", rs.disk_low);
        }
    }
    if (gw->stt) {
        cs_stt_stats ss;
        gw->stt_ops->stats(gw->stt, &ss);
        cs_prom_gauge(&out, "callstream_stt_sessions", "speakers being transcribed",
                      (double)ss.sessions_open);
        cs_prom_counter(&out, "callstream_stt_sessions_total", "transcription sessions opened",
                        (double)ss.sessions_total);
        cs_prom_counter(&out, "callstream_stt_refused_total",
                        "speakers left without a transcript: no engine free", (double)ss.refused);
        cs_prom_counter(&out, "callstream_stt_failures_total", "transcription sessions that failed",
                        (double)ss.failures);
        static const char *const kinds[] = {"interim", "final", "refined"};
        uint64_t segs[] = {ss.interims, ss.finals, ss.refined};
        cs_prom_family(&out, "callstream_stt_segments_total", "counter", "transcript segments", "kind",
               kinds, segs, 3);
        static const char *const why[] = {"queue_full", "too_long"};
        uint64_t skipped[] = {ss.refine_full, ss.refine_too_long};
        cs_prom_family(&out, "callstream_stt_refine_skipped_total", "counter",
               "finals left as they were, not refined (STT_REFINE_QUEUE, STT_REFINE_MAX_MS)",
               "reason", why, skipped, 2);
        cs_prom_gauge(&out, "callstream_stt_refine_pending", "utterances waiting to be refined",
                      (double)ss.refine_pending);
        cs_prom_counter(&out, "callstream_stt_audio_seconds_total", "audio transcribed",
                        (double)ss.audio_ms / 1000);
        cs_prom_counter(&out, "callstream_stt_dropped_audio_seconds_total",
                        "audio dropped because transcription fell behind",
                        (double)ss.dropped_ms / 1000);
        cs_prom_counter(&out, "callstream_stt_reconnects_total",
                        "connections to the engine tried again after a failure",
                        (double)ss.reconnects);
        cs_prom_counter(&out, "callstream_stt_close_timeouts_total",
                        "sessions ended at the call's end before their last results came",
                        (double)ss.close_timeouts);
        cs_prom_counter(&out, "callstream_stt_keywords_cut_total",
                        "keywords of calls past the engine's limit, not sent",
                        (double)ss.keywords_cut);
    }
    if (gw->tts) {
        cs_tts_stats ts;
        gw->tts_ops->stats(gw->tts, &ts);
        cs_prom_counter(&out, "callstream_tts_jobs_total", "texts given to the speech engine",
                        (double)ts.jobs);
        cs_prom_gauge(&out, "callstream_tts_jobs", "texts waiting or being spoken",
                      (double)ts.jobs_live);
        cs_prom_counter(&out, "callstream_tts_refused_total",
                        "texts refused: TTS_QUEUE_MAX were live", (double)ts.refused);
        cs_prom_counter(&out, "callstream_tts_failures_total", "texts the engine failed",
                        (double)ts.failures);
        cs_prom_counter(&out, "callstream_tts_cancels_total", "texts cancelled before their end",
                        (double)ts.cancels);
        cs_prom_counter(&out, "callstream_tts_sentences_total", "sentences spoken",
                        (double)ts.sentences);
        cs_prom_counter(&out, "callstream_tts_sentences_cut_total",
                        "sentences whose audio passed the limit and was cut",
                        (double)ts.sentences_cut);
        cs_prom_counter(&out, "callstream_tts_audio_seconds_total", "speech made",
                        (double)ts.audio_ms / 1000);
        cs_prom_counter(&out, "callstream_tts_synthesis_seconds_total",
                        "worker time spent making it (over audio seconds: the real-time factor)",
                        (double)ts.synth_us / 1e6);
        cs_prom_counter(&out, "callstream_tts_wait_seconds_total",
                        "time texts waited for a free worker before their first sentence",
                        (double)ts.wait_us / 1e6);
        /* Per engine: the cloud voice's, and its local fallback's. */
        char label[64];
        cs_prom_header(&out, "callstream_tts_first_audio_seconds", "histogram",
                       "from a text given to the engine to its first audio (ours and, for a "
                       "cloud engine, the network's)");
        snprintf(label, sizeof label, "engine=\"%s\"", gw->tts_ops->name);
        cs_prom_hist_series(&out, "callstream_tts_first_audio_seconds", label, &ts.first_audio);
        const cs_tts_fallback *fb = &gw->tts_fallback;
        if (fb->tts) {
            cs_tts_stats fs;
            fb->ops->stats(fb->tts, &fs);
            snprintf(label, sizeof label, "engine=\"%s\"", fb->ops->name);
            cs_prom_hist_series(&out, "callstream_tts_first_audio_seconds", label,
                                &fs.first_audio);
            cs_prom_counter(&out, "callstream_tts_fallbacks_total",
                            "utterances the cloud voice failed, spoken (the rest) by TTS_FALLBACK",
                            (double)fb->utterances);
            cs_prom_counter(&out, "callstream_tts_fallback_failures_total",
                            "texts the fallback engine failed too", (double)fs.failures);
        }
    }
    if (gw->webhook) {
        const cs_webhook_stats *ws = cs_webhook_stats_get(gw->webhook);
        static const char *const outcomes[] = {"delivered", "retried", "failed", "dropped"};
        uint64_t counts[] = {ws->delivered, ws->retries, ws->failed, ws->dropped};
        cs_prom_family(&out, "callstream_transcript_webhook_total", "counter",
               "transcript webhook deliveries, by outcome", "outcome", outcomes, counts, 4);
        cs_prom_gauge(&out, "callstream_transcript_webhook_pending", "deliveries waiting",
                      (double)cs_webhook_pending(gw->webhook));
    }
    if (gw->summary) cs_summary_metrics(gw->summary, &out);
    if (gw->control) {
        const cs_control_stats *cst = cs_control_stats_get(gw->control);
        const char *ops[CS_REST_OP_COUNT];
        for (int i = 0; i < CS_REST_OP_COUNT; i++) ops[i] = cs_rest_op_label((enum cs_rest_op)i);
        cs_prom_family(&out, "callstream_control_requests_total", "counter",
                       "call-control requests sent to the provider, by action", "action", ops,
                       cst->requests, CS_REST_OP_COUNT);
        cs_prom_counter(&out, "callstream_control_failed_total",
                        "call-control requests refused by the provider or not answered",
                        (double)cst->failed);
        cs_prom_counter(&out, "callstream_control_retries_total",
                        "call-control requests sent again after a refused connection",
                        (double)cst->retries);
        cs_prom_counter(&out, "callstream_control_full_total",
                        "call-control requests refused: too many in flight", (double)cst->full);
        cs_prom_gauge(&out, "callstream_control_pending", "call-control requests in flight",
                      (double)cs_control_pending(gw->control));
    }
    if (gw->fetch) {
        const cs_fetch_stats *fs = cs_fetch_stats_get(gw->fetch);
        cs_prom_counter(&out, "callstream_http_client_requests_total",
                        "outbound HTTP requests started", (double)fs->requests);
        static const char *const ends[] = {"answered", "failed", "cancelled"};
        uint64_t ended[] = {fs->answered, fs->failed, fs->cancelled};
        cs_prom_family(&out, "callstream_http_client_ended_total", "counter",
               "outbound HTTP requests ended, by outcome", "outcome", ends, ended, 3);
        static const char *const whys[] = {"timeout", "too_large", "too_many"};
        uint64_t limited[] = {fs->timeouts, fs->too_large, fs->refused};
        cs_prom_family(&out, "callstream_http_client_limited_total", "counter",
               "outbound HTTP requests failed or refused by a limit: time (whole or idle), an "
               "answer over its size, too many in flight",
               "limit", whys, limited, 3);
        cs_prom_counter(&out, "callstream_http_client_connections_total",
                        "outbound connections opened (fewer than requests: kept alive)",
                        (double)fs->connections);
        cs_prom_gauge(&out, "callstream_http_client_in_flight", "outbound HTTP requests in flight",
                      (double)cs_fetch_count(gw->fetch));
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    cs_prom_counter(&out, "process_cpu_seconds_total", "user and system CPU time",
                    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    cs_prom_gauge(&out, "process_resident_memory_bytes", "resident memory", rss_bytes());
    *into = out;
}

void cs_metrics(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_metrics)) return;
    cs_gateway *gw = r->app;
    cs_buf out = CS_BUF_INIT(1 << 20);
    cs_metrics_render(gw, &out);
    if (gw->workers)
        cs_workers_metrics(r, &out); /* every loop's, summed, later */
    else
        cs_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len, NULL);
    cs_buf_free(&out);
}
