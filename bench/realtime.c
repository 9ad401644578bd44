/* bench_realtime: the gateway as a bridge to OpenAI's Realtime API (AGENT=openai-realtime),
 * N calls at once, against the local stand-in (tests/unit/realtime_fake.h) on a thread of
 * this process, with N it_phone callers (frames on a clock, marks echoed, Twilio's clear).
 * Each call gets ROUNDS (3) answers of 2 s of audio (the stand-in streams them 5× faster
 * than real time, as the real one does), started evenly over a second, and the model's
 * speech_started `CUT_MS` (1000) after each answer began.
 *
 *   bench_realtime [N …]   (default: 1 50 200)
 *
 * prints one line per N:
 *   realtime calls=N answers= added_p50_ms= added_p95_ms= added_max_ms= cuts=
 *       clear_p50_ms= clear_p95_ms= clear_max_ms= truncates= cpu_pct_per_call= missed=
 * added: the gateway's own latency, from the stand-in sending an answer's first audio delta
 * to the caller receiving its first frame (both on this process's monotonic clock; the
 * loopback hops are included). clear: from the stand-in sending speech_started to the
 * caller receiving the clear. cpu: the gateway's CPU over the run, per call, in % of one
 * core. missed: answers or clears that never came. CS_BIN, ROUNDS and CUT_MS change the
 * run; the targets are added p95 <= 5 ms and clear p95 <= 100 ms at 200 calls. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"
#include "realtime_fake.h"
#include "stats.h"

#define KEY       "sk-bench"
#define MAX_CALLS 1000

static long env_or(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    /* After the command: state, then fields 4..13, utime (14) and stime (15). */
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                    &stime) == 2)
        return (double)(utime + stime) / 100.0;
    return 0;
}

/* Steps every phone for `ms`. */
static void run_all(it_phone **ps, size_t n, int ms)
{
    long long end = it_now_ms() + ms;
    while (it_now_ms() < end) it_phones_step(ps, n, 2);
}

static int one(size_t n)
{
    rt_fake *fake;
    rt_fake_opts fo = {.api_key = KEY, .model = "gpt-realtime"};
    if (rt_fake_start(&fake, &fo) != 0) return 1;
    const char *args[] = {"--agent", "openai-realtime", "--openai-api-key", KEY,
                          "--openai-realtime-url", rt_fake_url(fake), "--stt", "none",
                          NULL};
    it_server s;
    if (it_server_start_nofile(&s, args, 8192) != 0) {
        fprintf(stderr, "bench_realtime: the gateway did not start\n");
        rt_fake_free(fake);
        return 1;
    }
    it_phone *phones = calloc(n, sizeof *phones);
    it_phone **ps = calloc(n, sizeof *ps);
    size_t up = 0;
    for (size_t i = 0; i < n; i++) {
        char sid[40], stream[40];
        snprintf(sid, sizeof sid, "CA%032zx", i + 1);
        snprintf(stream, sizeof stream, "MZ%032zx", i + 1);
        if (it_phone_start(&phones[i], s.port, sid, stream, NULL) != 0) break;
        ps[up++] = &phones[i];
        /* Connections in the order of the calls: the stand-in addresses them so. */
        rt_fake_stats st;
        long long deadline = it_now_ms() + 10000;
        do {
            it_phones_step(ps, up, 2);
            rt_fake_stats_get(fake, &st);
        } while (st.sessions < up && it_now_ms() < deadline);
        if (st.sessions < up) break;
    }
    if (up < n) fprintf(stderr, "bench_realtime: only %zu of %zu calls came up\n", up, n);
    run_all(ps, up, 1000);

    long rounds = env_or("ROUNDS", 3), cut_ms = env_or("CUT_MS", 1000);
    size_t cap = up * (size_t)rounds + 1, nadded = 0, ncut = 0, missed = 0;
    double *added = calloc(cap, sizeof *added), *clear = calloc(cap, sizeof *clear);
    double cpu0 = cpu_s(s.pid);
    long long t0 = it_now_ms();
    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < up; i++) ps[i]->first_media_us = ps[i]->first_clear_us = 0;
        long long start = it_now_ms();
        size_t answered = 0, cut = 0;
        /* Answers over a second, each cut CUT_MS after it began. */
        while (cut < up && it_now_ms() < start + 1000 + cut_ms + 10000) {
            long long now = it_now_ms();
            while (answered < up && now >= start + (long long)(answered * 1000 / up)) {
                rt_fake_reply reply = {.bytes = 16000, .text = "One moment. Let me check."};
                rt_fake_respond_on(fake, (int)answered++, &reply);
            }
            while (cut < answered && now >= start + (long long)(cut * 1000 / up) + cut_ms)
                rt_fake_speech_started_on(fake, (int)cut++);
            it_phones_step(ps, up, 1);
        }
        run_all(ps, up, 1500); /* the clears arrive, the rest plays out */
        for (size_t i = 0; i < up; i++) {
            uint64_t delta_ns, speech_ns;
            rt_fake_times(fake, i, &delta_ns, &speech_ns);
            if (ps[i]->first_media_us && delta_ns)
                added[nadded++] = (double)(ps[i]->first_media_us - (long long)(delta_ns / 1000)) / 1000.0;
            else
                missed++;
            if (ps[i]->first_clear_us && speech_ns)
                clear[ncut++] = (double)(ps[i]->first_clear_us - (long long)(speech_ns / 1000)) / 1000.0;
            else
                missed++;
        }
    }
    double wall = (double)(it_now_ms() - t0) / 1000.0, cpu = cpu_s(s.pid) - cpu0;
    double truncates = it_metric(s.port, "callstream_realtime_truncates_total");
    printf("realtime calls=%zu answers=%zu added_p50_ms=%.2f added_p95_ms=%.2f added_max_ms=%.2f "
           "cuts=%zu clear_p50_ms=%.2f clear_p95_ms=%.2f clear_max_ms=%.2f truncates=%.0f "
           "cpu_pct_per_call=%.2f missed=%zu\n",
           up, nadded, stats_pct(added, nadded, 0.5), stats_pct(added, nadded, 0.95),
           stats_pct(added, nadded, 1.0), ncut, stats_pct(clear, ncut, 0.5),
           stats_pct(clear, ncut, 0.95), stats_pct(clear, ncut, 1.0), truncates,
           up ? 100.0 * cpu / wall / (double)up : 0, missed);
    fflush(stdout);
    for (size_t i = 0; i < up; i++) {
        it_phone_hangup(ps[i]);
        it_phone_free(ps[i]);
    }
    it_server_stop(&s, SIGTERM, 30000);
    it_server_cleanup(&s);
    rt_fake_free(fake);
    free(added);
    free(clear);
    free(phones);
    free(ps);
    return up == n && missed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const size_t defaults[] = {1, 50, 200};
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            long n = strtol(argv[i], NULL, 10);
            if (n < 1 || n > MAX_CALLS) {
                fprintf(stderr, "bench_realtime: calls must be 1 to %d\n", MAX_CALLS);
                return 2;
            }
            rc |= one((size_t)n);
        }
    } else {
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) rc |= one(defaults[i]);
    }
    return rc;
}
