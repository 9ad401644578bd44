/* Recordings on a failing machine, with the real binary:
 * - disk full: DATA_DIR/recordings on a small tmpfs that the test fills while a call runs.
 *   The free space shows as a metric and a warning before it is full; when it is, the call
 *   gets a `recording` event (failed, ENOSPC) and goes on, the seconds written are served
 *   as a valid WAV; when space comes back, recording resumes (another event), the lost
 *   span is silence and the call's recording is attached with what it holds.
 * - no descriptors left (EMFILE): the recording cannot create its file; the call gets the
 *   event and goes on, and the file is created once descriptors are free again.
 * Mounting needs root (the tests run as root); if it is refused the test fails, it never
 * passes without having tried. The tmpfs lives in a mount namespace of
 * this test's own, so nothing stays mounted whatever happens to it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integ_util.h"

#define TMPFS_BYTES (8u << 20)
#define LOW_MB      "1" /* RECORDINGS_LOW_DISK_MB */
#define CALL_S      40
#define WAIT_MS     20000
#define NOFILE      128 /* the server's descriptors in the EMFILE test */

static const char *call_sid_of(const it_server *s)
{
    static char sid[64];
    cJSON *calls = it_get_json(s->port, "/api/v1/calls");
    const cJSON *sidj =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(calls, "calls"), 0), "sid");
    snprintf(sid, sizeof sid, "%s", cJSON_IsString(sidj) ? sidj->valuestring : "");
    cJSON_Delete(calls);
    return sid;
}

/* Polls until the call has a `recording` event in `state`. */
static bool recording_event(const it_server *s, const char *sid, const char *state)
{
    for (int i = 0; i < WAIT_MS / 100; i++) {
        cJSON *call = it_call(s->port, sid);
        int n = it_call_events(call, "recording", state);
        cJSON_Delete(call);
        if (n > 0) return true;
        it_sleep_ms(100);
    }
    return false;
}

static bool metric_becomes(const it_server *s, const char *series, double want)
{
    for (int i = 0; i < WAIT_MS / 100; i++) {
        if (it_metric(s->port, series) == want) return true;
        it_sleep_ms(100);
    }
    return false;
}

/* The first `recording` event in `state`: a number from its detail. */
static double event_number(const cJSON *call, const char *state, const char *key)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        const cJSON *st = cJSON_GetObjectItem(d, "state");
        const cJSON *t = cJSON_GetObjectItem(e, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "recording") == 0 && cJSON_IsString(st) &&
            strcmp(st->valuestring, state) == 0) {
            const cJSON *v = cJSON_GetObjectItem(d, key);
            return cJSON_IsNumber(v) ? v->valuedouble : -1;
        }
    }
    return -1;
}

static const char *event_string(const cJSON *call, const char *state, const char *key)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        const cJSON *st = cJSON_GetObjectItem(d, "state");
        if (cJSON_IsString(st) && strcmp(st->valuestring, state) == 0) {
            const cJSON *v = cJSON_GetObjectItem(d, key);
            return cJSON_IsString(v) ? v->valuestring : "";
        }
    }
    return "";
}

/* The recording through the API: a valid WAV; its frames, and silence and sound in channel
 * 0 between [from, to) and after it. */
static long served(const it_server *s, const char *sid, long from, long to, long *silent_in,
                   long *sound_after)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/recording.wav", sid);
    it_resp r;
    long frames = -1;
    *silent_in = *sound_after = 0;
    if (it_http(s->port, "GET", target, NULL, NULL, &r) == 0 && r.status == 200) {
        unsigned ch;
        const int16_t *pcm;
        frames = it_wav_frames(r.body, r.body_len, &ch, &pcm);
        for (long i = from; i < to && i < frames; i++) *silent_in += pcm[i * ch] == 0;
        for (long i = to; i < frames; i++) *sound_after += pcm[i * ch] != 0;
    }
    IT_CHECK(frames >= 0, "%s: %d, not a valid WAV (%zu bytes)", target, r.status, r.body_len);
    it_resp_free(&r);
    return frames;
}

static void disk_full(void)
{
    it_server s;
    if (it_server_prepare(&s) < 0) {
        IT_CHECK(0, "cannot prepare the server");
        return;
    }
    char dir[600], filler[700];
    snprintf(dir, sizeof dir, "%s/recordings", s.data);
    snprintf(filler, sizeof filler, "%s/filler.bin", dir);
    if (!it_tmpfs(dir, TMPFS_BYTES)) {
        it_server_cleanup(&s);
        return;
    }
    it_fill_until(dir, filler, 3000000);
    const char *args[] = {"--agent", "echo", "--recordings-low-disk-mb", LOW_MB, NULL};
    if (it_server_restart(&s, args) < 0) {
        IT_CHECK(0, "the server did not start");
        it_tmpfs_unmount();
        it_server_cleanup(&s);
        return;
    }
    double free0 = -1;
    for (int i = 0; i < 50 && free0 < 0; i++, it_sleep_ms(100))
        free0 = it_metric(s.port, "callstream_recordings_disk_free_bytes");
    IT_CHECK(free0 > 2e6 && free0 < 4e6, "free space metric %.0f", free0);
    IT_CHECK(it_metric(s.port, "callstream_recordings_disk_low") == 0, "low before it is");

    pid_t sim = it_sim_spawn(&s, "--duration %d", CALL_S);
    const char *sid = "";
    for (int i = 0; i < 100 && !sid[0]; i++, it_sleep_ms(100)) sid = call_sid_of(&s);
    char call_sid[64];
    snprintf(call_sid, sizeof call_sid, "%s", sid);
    IT_CHECK(call_sid[0], "the call did not start");

    /* Low, not yet full: a warning in the log, /status and /metrics, nothing lost. */
    it_fill_until(dir, filler, 700000);
    IT_CHECK(metric_becomes(&s, "callstream_recordings_disk_low", 1), "the low disk was not seen");
    IT_CHECK(it_log_count(&s, "under the 1.0 MB wanted") == 1, "no warning in the log");
    /* each loop reads the free space on its own tick: the one answering sees it soon */
    cJSON *status = NULL;
    const cJSON *warn = NULL;
    for (long long end = it_now_ms() + 10000; !warn && it_now_ms() < end; it_sleep_ms(200)) {
        cJSON_Delete(status);
        status = it_get_json(s.port, "/status");
        warn = cJSON_GetArrayItem(cJSON_GetObjectItem(status, "warnings"), 0);
    }
    IT_CHECK(cJSON_IsString(warn) && strstr(warn->valuestring, "RECORDINGS_LOW_DISK_MB"),
             "no warning in /status");
    IT_CHECK(cJSON_IsTrue(
                 cJSON_GetObjectItem(cJSON_GetObjectItem(status, "recordings_stats"), "disk_low")),
             "/status does not say the disk is low");
    cJSON_Delete(status);
    cJSON *call = it_call(s.port, call_sid);
    IT_CHECK(it_call_events(call, "recording", "failed") == 0, "failed before the disk was full");
    cJSON_Delete(call);

    /* Full: the call hears of it and goes on; what was written is served. */
    it_fill_until(dir, filler, 0);
    IT_CHECK(recording_event(&s, call_sid, "failed"), "no recording event for the full disk");
    call = it_call(s.port, call_sid);
    IT_CHECK(strcmp(event_string(call, "failed", "code"), "ENOSPC") == 0, "failed with %s",
             event_string(call, "failed", "code"));
    IT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(call, "live")), "the call did not go on");
    cJSON_Delete(call);
    IT_CHECK(it_metric(s.port, "callstream_recordings_failing") == 1, "not counted as failing");
    long silent, sound;
    long kept = served(&s, call_sid, 0, 0, &silent, &sound);
    IT_CHECK(kept > 8000, "%ld frames served while the disk is full", kept);

    /* Room again: recording resumes. */
    unlink(filler);
    IT_CHECK(recording_event(&s, call_sid, "resumed"), "recording did not resume");
    IT_CHECK(metric_becomes(&s, "callstream_recordings_disk_low", 0), "still low");
    IT_CHECK(it_log_count(&s, "MB free again") == 1, "recovery not logged");

    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    IT_CHECK(exit_status == 0, "the call failed (sim exit %d)", exit_status);
    cJSON_Delete(sum);
    call = it_call_recorded(s.port, call_sid, WAIT_MS);
    IT_CHECK(call != NULL, "the recording was not attached");
    double from = event_number(call, "resumed", "lostFromMs"),
           to = event_number(call, "resumed", "lostToMs"),
           lost = event_number(call, "finished", "lostMs");
    IT_CHECK(from > 0 && to > from && lost == to - from, "lost %.0f..%.0f ms, %.0f in all", from,
             to, lost);
    long frames = served(&s, call_sid, (long)from * 8, (long)to * 8, &silent, &sound);
    IT_CHECK(frames > (CALL_S - 5) * 8000 && frames <= (CALL_S + 5) * 8000,
             "%ld frames for a %d s call", frames, CALL_S);
    IT_CHECK(silent == (long)(to - from) * 8, "%ld of %.0f lost frames silent", silent,
             (to - from) * 8);
    IT_CHECK(sound > (frames - (long)to * 8) / 2, "little sound after it resumed (%ld frames)",
             sound);
    cJSON_Delete(call);
    IT_CHECK(it_metric(s.port, "callstream_recorder_lost_seconds_total") == lost / 1000,
             "lost seconds %.3f", it_metric(s.port, "callstream_recorder_lost_seconds_total"));
    IT_CHECK(it_metric(s.port, "callstream_recordings_failing") == 0, "still failing");

    it_server_stop(&s, SIGTERM, 10000);
    it_tmpfs_unmount();
    it_server_cleanup(&s);
}

/* The lowest descriptor number free in the server: the next one it would open. */
static int lowest_free_fd(pid_t pid)
{
    int fd = 0;
    for (char path[64];; fd++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
        if (access(path, F_OK) != 0) return fd;
    }
}

/* Idle keep-alive connections until every descriptor number under the server's limit is
 * taken: nothing more opens. Their count, or -1. */
static int take_every_descriptor(const it_server *s, int *fds, int max)
{
    int n = 0;
    char req[128];
    snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", s->port);
    while (n < max && lowest_free_fd(s->pid) < NOFILE) {
        int fd = it_tcp(s->port, NULL, 0);
        char buf[512];
        /* Answered: the server holds it (beyond its limit it would close it instead). */
        if (fd < 0 || write(fd, req, strlen(req)) < 0 || read(fd, buf, sizeof buf) <= 0) {
            if (fd >= 0) close(fd);
            return -1;
        }
        fds[n++] = fd;
    }
    return lowest_free_fd(s->pid) >= NOFILE ? n : -1;
}

/* Sends 20 ms frames in real time until `until` shows in the log (or max_frames). */
static int stream_until(it_ws *w, const it_server *s, const char *stream, int *seq,
                        const char *until, int max_frames)
{
    int sent = 0;
    for (; sent < max_frames && it_log_count(s, until) == 0; sent++) {
        it_media_frame(w, stream, (uint64_t)*seq, (uint64_t)(*seq - 2) * 20, 0x20, 160);
        (*seq)++;
        it_sleep_ms(20);
    }
    return sent;
}

static void no_descriptors(void)
{
    it_server s;
    if (it_server_prepare(&s) < 0) {
        IT_CHECK(0, "cannot prepare the server");
        return;
    }
    /* Idle keep-alive connections hold descriptors for as long as the test needs. */
    const char *args[] = {"--http-idle-s", "600", NULL};
    s.nofile = NOFILE;
    if (it_server_restart(&s, args) < 0) {
        IT_CHECK(0, "the server did not start with %d descriptors", NOFILE);
        it_server_cleanup(&s);
        return;
    }
    const char *sid = "CA90000000000000000000000000000001",
               *stream = "MZ90000000000000000000000000000001";
    it_ws w;
    IT_CHECK(it_ws_connect(&w, s.port, "/twilio/media", NULL) == 0, "upgrade refused");
    static int fillers[NOFILE];
    int nfill = take_every_descriptor(&s, fillers, NOFILE);
    IT_CHECK(nfill > 0, "could not take the server's descriptors (%d is free, the limit %d)",
             lowest_free_fd(s.pid), NOFILE);
    it_media_begin(&w, sid, stream);
    int seq = 2;
    stream_until(&w, &s, stream, &seq, "recorder: creating", 500);
    IT_CHECK(it_log_count(&s, "recorder: creating") == 1, "the recording did not fail to open");
    stream_until(&w, &s, stream, &seq, "no such line", 60); /* audio lost meanwhile */
    /* Descriptors again: the file is created on a later attempt; the call went on. */
    for (int i = 0; i < nfill; i++) close(fillers[i]);
    stream_until(&w, &s, stream, &seq, "writes again", 1000);
    IT_CHECK(it_log_count(&s, "writes again") == 1, "the recording was not created later");
    stream_until(&w, &s, stream, &seq, "no such line", 50);
    int frames = seq - 2;
    IT_CHECK(it_media_stop(&w, sid, stream, (uint64_t)seq) == 1000, "stop did not end with 1000");
    it_ws_close(&w);

    cJSON *call = it_call_recorded(s.port, sid, WAIT_MS);
    IT_CHECK(call != NULL, "the recording was not attached");
    IT_CHECK(strcmp(event_string(call, "failed", "code"), "EMFILE") == 0, "failed with \"%s\"",
             event_string(call, "failed", "code"));
    const cJSON *st =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(call, "streams"), 0), "stats");
    const cJSON *in = cJSON_GetObjectItem(cJSON_GetObjectItem(st, "frames"), "inbound");
    IT_CHECK(cJSON_IsNumber(in) && in->valueint == frames, "the call took %d of %d frames",
             cJSON_IsNumber(in) ? in->valueint : -1, frames);
    double to = event_number(call, "resumed", "lostToMs");
    IT_CHECK(event_number(call, "resumed", "lostFromMs") == 0 && to > 0, "lost up to %.0f ms", to);
    long silent, sound;
    long got = served(&s, sid, 0, (long)to * 8, &silent, &sound);
    IT_CHECK(got == frames * 160L, "%ld frames recorded of %d", got, frames * 160);
    IT_CHECK(silent == (long)to * 8 && sound == got - (long)to * 8,
             "%ld silent frames in the lost span, %ld with sound after it", silent, sound);
    cJSON_Delete(call);
    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

int main(void)
{
    disk_full();
    no_descriptors();
    return it_done("recording_faults");
}
