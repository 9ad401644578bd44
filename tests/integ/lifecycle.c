/* Stopping and crashing. SIGTERM drains: no new calls, live calls run out the grace
 * period (or finish first), then their sockets close, recordings are finalized, the
 * store is flushed and the process exits 0. A second signal closes at once. After
 * kill -9, the next start repairs the recordings left unfinished. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "integ_util.h"

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
    IT_CHECK(num(cJSON_GetObjectItem(sum, "failures"), "closed_early") == 3,
             "the calls were not closed by the gateway");
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

/* kill -9 mid-call: the next start repairs the WAV it left. The header interval is an
 * hour, so the header still says "empty" when the process dies. */
static void crash_repair(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--recording-header-s", "3600", NULL};
    if (!start(&s, args)) return;
    pid_t sim = it_sim_spawn(&s, "--calls 1 --duration 30");
    IT_CHECK(streams_live(&s, 1), "the call did not start");
    it_sleep_ms(2000);
    it_server_stop(&s, SIGKILL, 5000);
    cJSON_Delete(it_sim_wait(sim, NULL));

    char cmd[400], name[256] = "";
    snprintf(cmd, sizeof cmd, "ls %s/recordings", s.data);
    FILE *f = popen(cmd, "r");
    if (f && fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = '\0';
    if (f) pclose(f);
    char path[700];
    snprintf(path, sizeof path, "%s/recordings/%s", s.data, name);
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
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&s);
}

int main(void)
{
    drain_past_grace();
    drain_within_grace();
    second_signal();
    crash_repair();
    return it_done("lifecycle");
}
