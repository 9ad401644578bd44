/* Wild media timestamps in a real call: a frame stamped 100,000,000 ms or 2^40 ms is
 * counted as a bad frame and placed by arrival; the recording stays the call's length
 * (not gigabytes of silence) and goes on recording after it, even when such frames come
 * faster than real time. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"

#define CALL   "CA70000000000000000000000000000001"
#define STREAM "MZ70000000000000000000000000000001"
#define FRAMES 150  /* 3 s */
#define CODE   0x20 /* μ-law that is not silence */

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* The call once its recording is attached (caller frees), and its stream's stats. */
static cJSON *recorded(int port, const char *sid, const cJSON **stats)
{
    cJSON *call = it_call_recorded(port, sid, 20000);
    IT_CHECK(call != NULL, "the recording was not attached to the call");
    *stats =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(call, "streams"), 0), "stats");
    return call;
}

/* The timestamp frame k is sent with: its own, or a wild one. */
static uint64_t stamp(int k)
{
    switch (k) {
    case 30:
        return 100000000; /* 27.8 hours in */
    case 60:
        return 1ull << 40; /* past what a WAV can hold */
    case 61:
        return 1ull << 40;
    default:
        return (uint64_t)k * 20;
    }
}

static void wild_timestamps(void)
{
    it_server s;
    if (it_server_start(&s, NULL) < 0) {
        IT_CHECK(0, "the server did not start");
        return;
    }
    it_ws w;
    int rc = it_media_start(&w, s.port, CALL, STREAM);
    IT_CHECK(rc == 0, "upgrade refused (%d)", rc);
    /* In real time, as Twilio sends them: the stream's clock and the stamps agree. */
    for (int k = 0; k < FRAMES && rc == 0; k++) {
        rc = it_media_frame(&w, STREAM, (uint64_t)k + 2, stamp(k), CODE, 160);
        it_sleep_ms(20);
    }
    IT_CHECK(it_media_stop(&w, CALL, STREAM, FRAMES + 2) == 1000, "stop did not end with 1000");
    it_ws_close(&w);

    const cJSON *st;
    cJSON *call = recorded(s.port, CALL, &st);
    const cJSON *bad = cJSON_GetObjectItem(st, "badFrames");
    IT_CHECK(num(bad, "bad_timestamp") == 3, "bad_timestamp %d", num(bad, "bad_timestamp"));
    IT_CHECK(num(cJSON_GetObjectItem(st, "frames"), "inbound") == FRAMES, "%d frames taken",
             num(cJSON_GetObjectItem(st, "frames"), "inbound"));
    IT_CHECK(it_call_events(call, "error", NULL) == 1, "%d error events",
             it_call_events(call, "error", NULL));
    IT_CHECK(it_metric(s.port, "callstream_bad_frames_total{kind=\"bad_timestamp\"}") == 3,
             "the metric says %.0f",
             it_metric(s.port, "callstream_bad_frames_total{kind=\"bad_timestamp\"}"));
    cJSON_Delete(call);

    /* The recording: the call's length, every frame of it heard, the header right. */
    unsigned ch;
    long hdr, size;
    IT_CHECK(it_wav_info(it_recording(&s, CALL), &ch, &hdr, &size) == 0, "no recording file");
    IT_CHECK(size == FRAMES * 160 && hdr == size,
             "the file holds %ld frames (header %ld), the "
             "call %d",
             size, hdr, FRAMES * 160);
    it_resp r;
    IT_CHECK(it_http(s.port, "GET", "/api/v1/calls/" CALL "/recording.wav", NULL, NULL, &r) == 0 &&
                 r.status == 200,
             "GET recording.wav: %d", r.status);
    const int16_t *pcm = NULL;
    long frames = it_wav_frames(r.body, r.body_len, &ch, &pcm);
    IT_CHECK(frames == FRAMES * 160 && ch == 1, "served %ld frames, %u channels", frames, ch);
    long silent = 0;
    for (long i = 0; i < frames; i++) silent += pcm[i] == 0;
    IT_CHECK(frames > 0 && silent == 0, "%ld of %ld frames silent", silent, frames);
    it_resp_free(&r);

    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

/* Bad timestamps sent far faster than real time (128 ms of audio every 10 ms, under
 * MAX_MESSAGES_PER_S) until MAX_CALL_S ends the stream: what the timeline has room for is
 * placed by arrival, the rest is counted as audio_overrun and skipped, by the recording
 * and the echo agent alike. The recording stays within the time the audio took to arrive
 * (plus the tolerance) and within MAX_CALL_S. */
#define RUN_CALL   "CA70000000000000000000000000000002"
#define RUN_STREAM "MZ70000000000000000000000000000002"
#define RUN_BYTES  1024 /* 128 ms */
#define RUN_MAX_MS 3000 /* --max-call-s */
#define RUN_TOL_MS 1000 /* --timestamp-tolerance-s */

static void faster_than_real_time(void)
{
    /* RUN_MAX_MS and RUN_TOL_MS, in seconds */
    const char *args[] = {"--agent", "echo", "--max-call-s", "3", "--timestamp-tolerance-s",
                          "1",       NULL};
    it_server s;
    if (!it_server_up(&s, args)) return;
    long long t0 = it_now_ms();
    it_ws w;
    int rc = it_media_start(&w, s.port, RUN_CALL, RUN_STREAM);
    IT_CHECK(rc == 0, "upgrade refused (%d)", rc);
    /* 51 s of audio in 4 s or more: past MAX_CALL_S, which ends the stream. */
    for (int k = 0; k < 400 && rc == 0; k++) {
        rc = it_media_frame(&w, RUN_STREAM, (uint64_t)k + 2, 1ull << 40, CODE, RUN_BYTES);
        it_sleep_ms(10);
    }
    long long took_ms = it_now_ms() - t0;
    it_ws_close(&w);

    const cJSON *st;
    cJSON *call = recorded(s.port, RUN_CALL, &st);
    const cJSON *bad = cJSON_GetObjectItem(st, "badFrames");
    int frames = num(cJSON_GetObjectItem(st, "frames"), "inbound");
    int placed = num(bad, "bad_timestamp"), skipped = num(bad, "audio_overrun");
    IT_CHECK(frames > 0 && placed > 0 && skipped > 0 && placed + skipped == frames,
             "%d frames: %d placed by arrival, %d skipped", frames, placed, skipped);
    /* The agent heard what was placed, no more; what it said back is paced in real time,
     * so no more than the call lasted went out. */
    int out = num(st, "bytesOut");
    IT_CHECK(out > 0 && out <= placed * RUN_BYTES, "the agent echoed %d bytes of %d placed", out,
             placed * RUN_BYTES);
    IT_CHECK(out <= (took_ms + 1000) * 8, "%d bytes echoed in a %lld ms call", out, took_ms);
    IT_CHECK(it_call_events(call, "error", NULL) == 2, "%d error events",
             it_call_events(call, "error", NULL));
    IT_CHECK(it_metric(s.port, "callstream_bad_frames_total{kind=\"audio_overrun\"}") == skipped,
             "the metric says %.0f",
             it_metric(s.port, "callstream_bad_frames_total{kind=\"audio_overrun\"}"));
    cJSON_Delete(call);

    /* The caller's audio ends by arrival + tolerance and by MAX_CALL_S; the echo of its
     * last frame plays after it. */
    long limit_ms = took_ms + RUN_TOL_MS < RUN_MAX_MS ? (long)took_ms + RUN_TOL_MS : RUN_MAX_MS;
    unsigned ch;
    long hdr, size;
    IT_CHECK(it_wav_info(it_recording(&s, RUN_CALL), &ch, &hdr, &size) == 0, "no recording file");
    IT_CHECK(size == hdr && size > 0 && size <= limit_ms * 8 + RUN_BYTES,
             "the recording holds %ld ms (header %ld ms) of a stream %lld ms long", size / 8,
             hdr / 8, took_ms);

    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

int main(void)
{
    wild_timestamps();
    faster_than_real_time();
    return it_done("timestamps");
}
