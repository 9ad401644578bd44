/* Twenty concurrent calls against the echo agent: every call completes with nothing
 * missing, each leaves a stereo recording of the right length, rows in the store, and
 * answers in the API; then one-way streams (<Start>) record mono and get nothing back. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio/wav.h"

#include "integ_util.h"

#define CALLS 20
#define WAV   "wav/librivox_sense_sensibility_01-0880.wav" /* 2.99 s at 16 kHz */

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Every call in the API, following next_cursor pages of 7. */
static int api_calls(const it_server *s, char sids[][40], int max)
{
    int n = 0;
    char target[256] = "/api/v1/calls?limit=7";
    for (int page = 0; page < 10; page++) {
        cJSON *j = it_get_json(s->port, target);
        IT_CHECK(j != NULL, "GET %s", target);
        if (!j) return n;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "calls")) if (n < max)
            snprintf(sids[n++], 40, "%.39s", str(c, "sid"));
        const cJSON *next = cJSON_GetObjectItem(j, "next_cursor");
        if (!cJSON_IsString(next)) {
            cJSON_Delete(j);
            return n;
        }
        snprintf(target, sizeof target, "/api/v1/calls?limit=7&cursor=%s", next->valuestring);
        cJSON_Delete(j);
    }
    return n;
}

static void check_call(const it_server *s, const char *sid, int frames)
{
    char target[256];
    snprintf(target, sizeof target, "/api/v1/calls/%.40s", sid);
    /* The recording is attached once the recorder has finished its file, a moment after
     * the call ended. */
    cJSON *j = NULL;
    for (int i = 0; i < 500; i++) {
        cJSON_Delete(j);
        j = it_get_json(s->port, target);
        if (!j || cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "call"), "recording")))
            break;
        it_sleep_ms(20);
    }
    IT_CHECK(j != NULL, "GET %s", target);
    if (!j) return;
    const cJSON *call = cJSON_GetObjectItem(j, "call");
    IT_CHECK(strcmp(str(call, "status"), "completed") == 0, "%s status %s", sid,
             str(call, "status"));
    IT_CHECK(strcmp(str(call, "from"), "+15550001111") == 0, "from %s", str(call, "from"));
    const cJSON *streams = cJSON_GetObjectItem(call, "streams");
    IT_CHECK(cJSON_GetArraySize(streams) == 1, "%s has %d streams", sid,
             cJSON_GetArraySize(streams));
    const cJSON *st = cJSON_GetArrayItem(streams, 0);
    IT_CHECK(strcmp(str(st, "end_reason"), "stop") == 0, "end_reason %s", str(st, "end_reason"));
    const cJSON *stats = cJSON_GetObjectItem(st, "stats");
    int in = num(cJSON_GetObjectItem(stats, "frames"), "inbound");
    IT_CHECK(in == frames, "%s: %d inbound frames stored, %d sent", sid, in, frames);
    IT_CHECK(num(stats, "framesOut") == frames, "framesOut %d", num(stats, "framesOut"));
    IT_CHECK(num(stats, "dtmf") == 2, "dtmf %d", num(stats, "dtmf"));
    IT_CHECK(num(stats, "marksSent") >= 2, "marksSent %d", num(stats, "marksSent"));
    int types[6] = {0};
    static const char *const names[] = {"webhook", "start", "dtmf", "mark", "stop", "recording"};
    const cJSON *e;
    cJSON_ArrayForEach(
        e, cJSON_GetObjectItem(call, "events")) for (int k = 0; k < 6;
                                                     k++) if (strcmp(str(e, "type"), names[k]) == 0)
        types[k]++;
    for (int k = 0; k < 6; k++)
        IT_CHECK(types[k] > 0 || (k == 5), "%s has no %s event", sid, names[k]);
    IT_CHECK(types[2] == 2, "%s: %d dtmf events", sid, types[2]);
    cJSON_Delete(j);

    /* the recording, through the API once it is attached (the file is synced first): a
     * WAV of the call's length */
    cJSON_Delete(it_call_recorded(s->port, sid, 10000));
    snprintf(target, sizeof target, "/api/v1/calls/%.40s/recording.wav", sid);
    it_resp r;
    IT_CHECK(it_http(s->port, "GET", target, NULL, NULL, &r) == 0 && r.status == 200, "GET %s: %d",
             target, r.status);
    IT_CHECK(r.body_len > 44 && memcmp(r.body, "RIFF", 4) == 0, "recording is not a WAV");
    it_resp_free(&r);
}

static void concurrent_calls(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--echo-mark-ms", "500", NULL};
    if (it_server_start(&s, args) < 0) {
        IT_CHECK(0, "the server did not start");
        return;
    }
    int exit_status;
    cJSON *sum =
        it_sim(&s, &exit_status, "--calls %d --ramp 1 --wav %s --dtmf 12", CALLS, it_corpus(WAV));
    IT_CHECK(sum != NULL, "no summary from the simulator");
    IT_CHECK(exit_status == 0, "sim exit %d", exit_status);
    int frames = num(sum, "frames_per_call");
    IT_CHECK(num(sum, "completed") == CALLS, "completed %d", num(sum, "completed"));
    IT_CHECK(num(sum, "missing") == 0, "missing %d", num(sum, "missing"));
    IT_CHECK(num(sum, "frames_sent") == CALLS * frames, "frames_sent %d", num(sum, "frames_sent"));
    IT_CHECK(num(sum, "marks_echoed") == num(sum, "marks_received"), "marks %d of %d echoed",
             num(sum, "marks_echoed"), num(sum, "marks_received"));
    cJSON_Delete(sum);

    /* live state is gone once the calls ended */
    cJSON *streams = it_get_json(s.port, "/streams");
    IT_CHECK(num(streams, "count") == 0, "live streams left: %d", num(streams, "count"));
    cJSON_Delete(streams);
    IT_CHECK(it_metric(s.port, "callstream_frames_in_total{track=\"inbound\"}") == CALLS * frames,
             "metric frames_in");
    IT_CHECK(it_metric(s.port, "callstream_streams_ended_total{reason=\"stop\"}") == CALLS,
             "metric streams ended by stop");
    IT_CHECK(it_metric(s.port, "callstream_frame_processing_seconds_count") == CALLS * frames,
             "frame processing histogram count");

    char sids[CALLS + 5][40];
    int n = api_calls(&s, sids, CALLS + 5);
    IT_CHECK(n == CALLS, "the API lists %d calls", n);
    for (int i = 0; i < n; i++) check_call(&s, sids[i], frames);

    /* the files: stereo, caller + echo one frame later: frames + 1 (±1) frames of 160 */
    for (int i = 0; i < n; i++) {
        const char *path = it_recording(&s, sids[i]);
        unsigned ch;
        long hdr, size;
        IT_CHECK(it_wav_info(path, &ch, &hdr, &size) == 0, "no recording %s", path);
        IT_CHECK(ch == 2, "%s: %u channels", path, ch);
        IT_CHECK(hdr == size, "%s: header says %ld frames, file holds %ld", path, hdr, size);
        long want = (long)frames * 160 + 160;
        IT_CHECK(size >= want - 160 && size <= want + 160, "%s: %ld frames, want %ld±160", path,
                 size, want);
    }

    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    const char *db = it_db(&s);
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM calls WHERE status = 'completed'") == CALLS,
             "calls rows");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM streams WHERE end_reason = 'stop'") == CALLS,
             "stream rows");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM events WHERE type = 'dtmf'") == 2 * CALLS,
             "dtmf rows");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM calls WHERE recording IS NOT NULL") == CALLS,
             "recording paths stored");
    it_server_cleanup(&s);
}

/* <Start><Stream track="both_tracks">: one-way, two tracks, nothing sent back. */
static void one_way_calls(void)
{
    it_server s;
    const char *args[] = {"--agent",     "echo", "--stream-mode", "start", "--stream-track",
                          "both_tracks", NULL};
    if (it_server_start(&s, args) < 0) {
        IT_CHECK(0, "the server did not start");
        return;
    }
    int exit_status;
    cJSON *sum = it_sim(&s, &exit_status, "--calls 3 --duration 2");
    IT_CHECK(exit_status == 0 && num(sum, "completed") == 3, "one-way calls did not complete");
    IT_CHECK(num(sum, "media_received") == 0, "a one-way stream got %d media back",
             num(sum, "media_received"));
    int frames = num(sum, "frames_per_call");
    cJSON_Delete(sum);
    char sids[8][40];
    int n = api_calls(&s, sids, 8);
    IT_CHECK(n == 3, "the API lists %d calls", n);
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    for (int i = 0; i < n; i++) {
        const char *path = it_recording(&s, sids[i]);
        unsigned ch;
        long hdr, size;
        IT_CHECK(it_wav_info(path, &ch, &hdr, &size) == 0 && ch == 2 && size == (long)frames * 160,
                 "%s: %u channels, %ld frames (both tracks: stereo, %d frames)", path, ch, size,
                 frames * 160);
    }
    it_server_cleanup(&s);
}

/* A recording larger than what the gateway buffers per connection goes out at the pace
 * of its reader, whole; a reader that leaves half-way costs nothing after. */
static void large_recording(void)
{
    it_server s;
    if (it_server_start(&s, NULL) < 0) {
        IT_CHECK(0, "the server did not start");
        return;
    }
    int exit_status;
    cJSON *sum = it_sim(&s, &exit_status, "--calls 1 --duration 1");
    cJSON_Delete(sum);
    char sids[2][40];
    IT_CHECK(api_calls(&s, sids, 2) == 1, "no call");
    cJSON_Delete(it_call_recorded(s.port, sids[0], 10000));
    /* The call's file becomes 6 MB of audio, every byte known. */
    enum { FRAMES = 3u << 20 };
    size_t size = CS_WAV_HEADER_LEN + 2 * (size_t)FRAMES;
    uint8_t *wav = malloc(size);
    cs_wav_header(wav, 8000, 1, 2 * FRAMES);
    for (size_t i = CS_WAV_HEADER_LEN; i < size; i++) wav[i] = (uint8_t)(i * 7 + i / 4096);
    FILE *f = fopen(it_recording(&s, sids[0]), "wb");
    IT_CHECK(f && fwrite(wav, 1, size, f) == size && fclose(f) == 0, "cannot write the WAV");
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/calls/%s/recording.wav HTTP/1.1\r\nHost: x\r\n%s\r\n",
                     sids[0], it_auth);

    /* a slow reader: a small receive buffer, read a little at a time */
    int fd = it_tcp(s.port, NULL, 4096);
    IT_CHECK(fd >= 0 && write(fd, req, (size_t)n) == n, "cannot send the request");
    cs_buf in = CS_BUF_INIT(size + 4096);
    char chunk[8192];
    char *body = NULL;
    for (long long deadline = it_now_ms() + 60000; it_now_ms() < deadline;) {
        ssize_t k = read(fd, chunk, sizeof chunk);
        if (k <= 0 || cs_buf_append(&in, chunk, (size_t)k) < 0) break;
        body = in.len > 4 ? memmem(in.data, in.len, "\r\n\r\n", 4) : NULL;
        if (body && in.len - (size_t)(body + 4 - in.data) >= size) break;
        it_sleep_ms(1);
    }
    size_t got = body ? in.len - (size_t)(body + 4 - in.data) : 0;
    IT_CHECK(got == size && memcmp(body + 4, wav, size) == 0,
             "the slow reader got %zu of %zu bytes, or other bytes", got, size);
    cs_buf_free(&in);
    close(fd);

    /* a reader that leaves after the first bytes */
    fd = it_tcp(s.port, NULL, 4096);
    IT_CHECK(fd >= 0 && write(fd, req, (size_t)n) == n && read(fd, chunk, sizeof chunk) > 0,
             "the second download did not start");
    close(fd);
    cJSON *health = it_get_json(s.port, "/health");
    IT_CHECK(health != NULL, "/health does not answer after a reader left");
    cJSON_Delete(health);
    free(wav);
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&s);
}

/* A call's TwiML picks its agent (<Parameter name="Agent">, here from STREAM_PARAMS): one
 * gateway, several numbers. A name that is not an agent leaves AGENT in charge. */
static void a_call_picks_its_agent(void)
{
    static const char *const picks[] = {"Agent=echo", "Agent=nosuch"};
    for (int k = 0; k < 2; k++) {
        it_server s;
        const char *args[] = {"--agent", "none", "--stream-params", picks[k], NULL};
        if (it_server_start(&s, args) < 0) {
            IT_CHECK(0, "the server did not start");
            return;
        }
        int exit_status;
        cJSON *sum = it_sim(&s, &exit_status, "--wav %s --duration 2", it_corpus(WAV));
        IT_CHECK(sum && exit_status == 0, "sim exit %d", exit_status);
        int back = num(sum, "media_received");
        if (k == 0)
            IT_CHECK(back > 0, "%s: nothing echoed", picks[k]);
        else
            IT_CHECK(back == 0 && it_log_count(&s, "is not one of") == 1,
                     "%s: %d frames back, %d warnings", picks[k], back,
                     it_log_count(&s, "is not one of"));
        cJSON_Delete(sum);
        IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
        it_server_cleanup(&s);
    }
}

int main(void)
{
    a_call_picks_its_agent();
    concurrent_calls();
    one_way_calls();
    large_recording();
    return it_done("calls");
}
