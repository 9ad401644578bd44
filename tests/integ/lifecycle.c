/* Stopping and crashing. SIGTERM drains: no new calls, live calls run out the grace
 * period (or finish first), then their sockets close, recordings are finalized, the
 * store is flushed and the process exits 0. A second signal closes at once. After
 * kill -9, the next start repairs the recordings left unfinished and ends the calls left
 * live, at their last recorded frame, with those recordings attached. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audio/g711.h"
#include "audio/wav.h"
#include "integ_util.h"
#include "sim/sim.h"

#define WAV "wav/jfk_inaugural_1961.wav"

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool start(it_server *s, const char *const *args)
{
    bool ok = it_server_start(s, args) == 0;
    IT_CHECK(ok, "the server did not start");
    return ok;
}

/* Waits until /streams shows `n` live streams. */
static bool streams_live(const it_server *s, int n)
{
    for (int i = 0; i < 250; i++) {
        cJSON *j = it_get_json(s->port, "/streams");
        int count = num(j, "count");
        cJSON_Delete(j);
        if (count == n) return true;
        it_sleep_ms(20);
    }
    return false;
}

/* Every recording is finalized: its header agrees with its size. */
static int finalized_recordings(const it_server *s, long min_frames)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s/recordings", s->data);
    FILE *f = popen(cmd, "r");
    char name[256];
    int ok = 0;
    while (f && fgets(name, sizeof name, f)) {
        name[strcspn(name, "\n")] = '\0';
        char path[700];
        snprintf(path, sizeof path, "%s/recordings/%s", s->data, name);
        unsigned ch;
        long hdr, size;
        bool good = it_wav_info(path, &ch, &hdr, &size) == 0 && hdr == size && size >= min_frames;
        IT_CHECK(good, "%s: header %ld frames, file %ld (want ≥ %ld)", path, hdr, size, min_frames);
        ok += good;
    }
    if (f) pclose(f);
    return ok;
}

/* Calls longer than the grace period: closed by the gateway when it runs out. */
static void drain_past_grace(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--shutdown-grace-s", "1", NULL};
    if (!start(&s, args)) return;
    pid_t sim = it_sim_spawn(&s, "--calls 3 --duration 20");
    IT_CHECK(streams_live(&s, 3), "the calls did not start");
    it_sleep_ms(1000);
    long long t0 = now_ms();
    int rc = it_server_stop(&s, SIGTERM, 15000);
    long long took = now_ms() - t0;
    IT_CHECK(rc == 0, "exit status %d after SIGTERM", rc);
    IT_CHECK(took >= 900 && took < 6000, "stopped after %lld ms with a 1 s grace", took);
    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    /* Each stream is closed by the gateway; the <Connect action> after it meets a gateway
     * stopping or gone (an answered <Hangup/> or a failed fetch). 20 s would be 3000 frames. */
    IT_CHECK(num(sum, "completed") + num(sum, "failed") == 3 && num(sum, "frames_sent") < 1500,
             "the calls were not closed by the gateway: %d frames sent", num(sum, "frames_sent"));
    cJSON_Delete(sum);
    IT_CHECK(finalized_recordings(&s, 8000) == 3, "recordings not finalized");
    /* the store was flushed: a new process sees everything */
    const char *db = it_db(&s);
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM streams WHERE end_reason = 'shutdown'") == 3,
             "streams ended by shutdown are not stored");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM calls WHERE recording IS NOT NULL") == 3,
             "recording paths are not stored");
    IT_CHECK(it_log_count(&s, "callstream: stopped") == 1, "no clean stop in the log");
    it_server_cleanup(&s);
}

/* Calls shorter than the grace period finish normally before the gateway exits. */
static void drain_within_grace(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--shutdown-grace-s", "30", NULL};
    if (!start(&s, args)) return;
    pid_t sim = it_sim_spawn(&s, "--calls 2 --duration 2");
    IT_CHECK(streams_live(&s, 2), "the calls did not start");
    long long t0 = now_ms();
    int rc = it_server_stop(&s, SIGTERM, 20000);
    long long took = now_ms() - t0;
    IT_CHECK(rc == 0 && took < 10000, "exit %d after %lld ms", rc, took);
    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    IT_CHECK(exit_status == 0 && num(sum, "completed") == 2 && num(sum, "missing") == 0,
             "calls did not finish during the drain");
    cJSON_Delete(sum);
    IT_CHECK(it_sql(it_db(&s), "SELECT COUNT(*) FROM streams WHERE end_reason = 'stop'") == 2,
             "streams that finished are not stored as stopped");
    it_server_cleanup(&s);
}

/* A second signal does not wait for the grace period. */
static void second_signal(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--shutdown-grace-s", "300", NULL};
    if (!start(&s, args)) return;
    pid_t sim = it_sim_spawn(&s, "--calls 1 --duration 30");
    IT_CHECK(streams_live(&s, 1), "the call did not start");
    kill(s.pid, SIGTERM);
    it_sleep_ms(300);
    long long t0 = now_ms();
    int rc = it_server_stop(&s, SIGINT, 10000);
    IT_CHECK(rc == 0 && now_ms() - t0 < 5000, "exit %d, %lld ms after the second signal", rc,
             now_ms() - t0);
    IT_CHECK(it_log_count(&s, "again: closing calls now") == 1, "no word of the second signal");
    cJSON_Delete(it_sim_wait(sim, NULL));
    it_server_cleanup(&s);
}

/* Once the call `sim` makes is live, kills the server `ms` later: the call's sid, and
 * the time of the kill. */
static long long kill_mid_call(it_server *s, pid_t sim, int ms, char sid[64])
{
    IT_CHECK(streams_live(s, 1), "the call did not start");
    cJSON *live = it_get_json(s->port, "/streams");
    snprintf(sid, 64, "%s",
             it_str(cJSON_GetArrayItem(cJSON_GetObjectItem(live, "streams"), 0), "call_sid"));
    cJSON_Delete(live);
    it_sleep_ms(ms);
    long long at = it_wall_ms();
    it_server_stop(s, SIGKILL, 5000);
    cJSON_Delete(it_sim_wait(sim, NULL));
    return at;
}

typedef struct ended {
    int port;
    char target[128];
    cJSON *call; /* once it is */
} ended;

static bool call_ended(void *data)
{
    ended *e = data;
    cJSON *j = it_get_json(e->port, e->target);
    if (strcmp(it_str(cJSON_GetObjectItem(j, "call"), "status"), "abnormal") == 0) {
        e->call = j;
        return true;
    }
    cJSON_Delete(j);
    return false;
}

/* The recording served for `sid` is the file on disk, a valid stereo WAV whose caller
 * channel is, sample for sample, the audio the simulator sent. The file may end in a
 * stretch of the echo alone: our audio is placed by the gateway's clock, the caller's by
 * the media timestamps, and a simulator slowed by a busy machine sends behind its
 * timestamps; a stretch of up to a second of caller silence at the end is allowed. */
static void served_recording(const it_server *s, const char *sid, const char *path)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/recording.wav", sid);
    it_resp r;
    IT_CHECK(it_http(s->port, "GET", target, NULL, NULL, &r) == 0 && r.status == 200, "GET %s: %d",
             target, r.status);
    FILE *f = fopen(path, "rb");
    char *disk = malloc(r.body_len + 1);
    size_t n = f && disk ? fread(disk, 1, r.body_len + 1, f) : 0;
    if (f) fclose(f);
    IT_CHECK(n == r.body_len && memcmp(disk, r.body, n) == 0, "%s is not the file on disk", target);
    free(disk);
    cs_wav_info info;
    bool wav = r.body_len > CS_WAV_HEADER_LEN &&
               cs_wav_parse((const uint8_t *)r.body, r.body_len, &info) == 0 &&
               info.format == CS_WAV_PCM && info.rate == 8000 && info.channels == 2 &&
               info.bits == 16 && info.data_offset + info.data_len == r.body_len;
    IT_CHECK(wav, "%s is not a whole 8 kHz stereo WAV", target);
    if (!wav) {
        it_resp_free(&r);
        return;
    }
    uint8_t *sent = NULL;
    size_t nsent = 0;
    IT_CHECK(cs_sim_audio(it_corpus(WAV), &sent, &nsent) == 0 && nsent > 0, "cannot load %s", WAV);
    size_t frames = info.data_len / 4, wrong = 0, first_wrong = 0, heard = frames;
    const uint8_t *data = (const uint8_t *)r.body + info.data_offset;
#define CALLER(i) ((int16_t)(data[4 * (i)] | data[4 * (i) + 1] << 8))
    while (heard > 0 && CALLER(heard - 1) == 0) heard--;
    for (size_t i = 0; sent && i < heard; i++)
        if (CALLER(i) != cs_ulaw_to_pcm[sent[i % nsent]] && !wrong++) first_wrong = i;
#undef CALLER
    IT_CHECK(frames > 8000 && wrong == 0,
             "%zu of %zu recorded frames are not what was sent (the first at %zu)", wrong, frames,
             first_wrong);
    IT_CHECK(frames - heard <= 8000, "the recording ends in %zu frames of the echo alone",
             frames - heard);
    free(sent);
    it_resp_free(&r);
}

/* kill -9 mid-call: the next start repairs the WAV it left, and ends the call as
 * abnormal at its last recorded frame with the recording attached. The header interval
 * is an hour, so the header still says "empty" when the process dies. */
static void crash_repair(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--recording-header-s", "3600", NULL};
    if (!start(&s, args)) return;
    char sid[64];
    pid_t sim = it_sim_spawn(&s, "--calls 1 --duration 30 --wav %s", it_corpus(WAV));
    long long killed_at = kill_mid_call(&s, sim, 2000, sid);

    char path[700];
    snprintf(path, sizeof path, "%s", it_recording(&s, sid));
    unsigned ch;
    long hdr, size;
    IT_CHECK(it_wav_info(path, &ch, &hdr, &size) == 0 && size > 8000 && hdr < size,
             "after the crash: header %ld frames, file %ld (%s)", hdr, size, path);
    const char *restart[] = {"--agent", "echo", NULL};
    IT_CHECK(it_server_restart(&s, restart) == 0, "no restart");
    for (int i = 0; i < 250 && it_log_count(&s, "unfinished recording(s) repaired") == 0; i++)
        it_sleep_ms(20);
    IT_CHECK(it_log_count(&s, "unfinished recording(s) repaired") == 1, "no repair reported");
    IT_CHECK(it_wav_info(path, &ch, &hdr, &size) == 0 && hdr == size && ch == 2,
             "after the restart: header %ld frames, file %ld", hdr, size);

    ended e = {.port = s.port};
    snprintf(e.target, sizeof e.target, "/api/v1/calls/%s", sid);
    IT_CHECK(it_until(call_ended, &e, 10000), "the call left live was not ended");
    const cJSON *call = cJSON_GetObjectItem(e.call, "call");
    const cJSON *rec = cJSON_GetObjectItem(call, "recording");
    const cJSON *dur = cJSON_GetObjectItem(rec, "duration_ms");
    long long rec_ms = cJSON_IsNumber(dur) ? (long long)dur->valuedouble : -1;
    IT_CHECK(rec_ms == size / 8, "recording of %lld ms attached, the file holds %ld frames", rec_ms,
             size);
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(call, "streams"), 0);
    IT_CHECK(strcmp(it_str(st, "end_reason"), "abnormal") == 0 &&
                 strcmp(it_str(st, "ended_at"), it_str(call, "ended_at")) == 0,
             "stream ended %s at %s", it_str(st, "end_reason"), it_str(st, "ended_at"));
    const cJSON *ev;
    int stops = 0;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(ev, "detail");
        if (strcmp(it_str(ev, "type"), "stop") == 0 &&
            cJSON_IsTrue(cJSON_GetObjectItem(d, "recovered")))
            stops += strcmp(it_str(d, "endedBy"), "recording") == 0 &&
                     strstr(it_str(d, "message"), "killed");
    }
    IT_CHECK(stops == 1, "no event says the call was ended after a crash");
    cJSON_Delete(e.call);

    /* the end: the last frame recorded, or the last stored time if later, before the kill */
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT ended_at FROM calls WHERE sid = '%s'", sid);
    long long end = it_sql(it_db(&s), sql);
    snprintf(sql, sizeof sql,
             "SELECT MAX(c.started_at + %lld, (SELECT MAX(at) FROM events WHERE call_sid = c.sid "
             "AND detail NOT LIKE '%%\"recovered\":true%%')) FROM calls c WHERE sid = '%s'",
             rec_ms, sid);
    long long want = it_sql(it_db(&s), sql);
    IT_CHECK(end == want && end <= killed_at && end > killed_at - 5000,
             "ended at %lld, want %lld (killed at %lld)", end, want, killed_at);
    served_recording(&s, sid, path);
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&s);
}

/* kill -9 with recordings off: the stream is ended at the last time the store holds for
 * the call. A status callback had ended the call itself (written here while the server is
 * down): that end stays. A call whose stream row never made it is ended too. */
static void crash_without_recording(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--recordings", "0", "--echo-mark-ms", "100", NULL};
    if (!start(&s, args)) return;
    char sid[64];
    pid_t sim = it_sim_spawn(&s, "--calls 1 --duration 30");
    kill_mid_call(&s, sim, 1500, sid);

    char sql[1024], db[1024];
    snprintf(db, sizeof db, "%s", it_db(&s));
    snprintf(sql, sizeof sql,
             "UPDATE calls SET status = 'completed', ended_at = started_at + 999 WHERE sid = '%s';"
             "INSERT INTO calls (sid, status, created_at, started_at, updated_at) VALUES "
             "('CA00000000000000000000000000000001', 'in-progress', 1000, 1000, 1000)",
             sid);
    IT_CHECK(it_sql_exec(db, sql) == 0, "cannot change the database");
    snprintf(sql, sizeof sql, "SELECT MAX(at) FROM events WHERE call_sid = '%s'", sid);
    long long last = it_sql(db, sql);
    const char *restart[] = {"--agent", "echo", "--recordings", "0", NULL};
    IT_CHECK(it_server_restart(&s, restart) == 0, "no restart");
    ended e = {.port = s.port};
    snprintf(e.target, sizeof e.target, "/api/v1/calls/CA00000000000000000000000000000001");
    IT_CHECK(it_until(call_ended, &e, 10000), "the call without a stream was not ended");
    cJSON_Delete(e.call);

    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM streams t JOIN calls c ON c.sid = t.call_sid WHERE c.sid = '%s' "
             "AND t.end_reason = 'abnormal' AND t.ended_at = %lld AND c.status = 'completed' AND "
             "c.ended_at = c.started_at + 999 AND c.recording IS NULL",
             sid, last);
    IT_CHECK(it_sql(db, sql) == 1, "the stream did not end at the last stored time (%lld)", last);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM events WHERE call_sid = '%s' AND type = 'stop' AND "
             "detail LIKE '%%\"endedBy\":\"store\"%%'",
             sid);
    IT_CHECK(it_sql(db, sql) == 1, "no event says how the call ended");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM events WHERE call_sid = "
                        "'CA00000000000000000000000000000001' AND type = 'stop' AND stream_sid IS "
                        "NULL AND at = 1000") == 1,
             "no event for the call without a stream");
    IT_CHECK(it_log_count(&s, "at its last stored update") == 2, "the log does not say why");
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&s);
}

int main(void)
{
    drain_past_grace();
    drain_within_grace();
    second_signal();
    crash_repair();
    crash_without_recording();
    return it_done("lifecycle");
}
