/* The speech engine in the gateway: created at start-up from TTS and TTS_VOICE (espeak-ng
 * by default), its counters in /metrics, none with TTS=none, and a start refused with a
 * clear message for an unknown engine or voice. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "integ_util.h"

/* Starts with `args`, checks the engine's log line and its counters, stops with SIGTERM. */
static void engine_runs(const char *const *args, const char *log_line)
{
    it_server s;
    if (!it_server_up(&s, args)) return it_server_cleanup(&s);
    IT_CHECK(it_log_count(&s, log_line) == 1, "no '%s' in the log", log_line);
    IT_CHECK(it_metric(s.port, "callstream_tts_jobs_total") == 0, "tts jobs counter");
    IT_CHECK(it_metric(s.port, "callstream_tts_jobs") == 0, "tts live jobs gauge");
    IT_CHECK(it_metric(s.port, "callstream_tts_first_audio_seconds_count") == 0,
             "first audio histogram");
    int rc = it_server_stop(&s, SIGTERM, 10000);
    IT_CHECK(rc == 0, "exit status %d after SIGTERM", rc);
    it_server_cleanup(&s);
}

static void engines_start(void)
{
    engine_runs(NULL, "espeak-ng: voice en-us");
    const char *en[] = {"--tts-voice", "en-gb-scotland+f3", NULL};
    engine_runs(en, "espeak-ng: voice en-gb-scotland+f3");
    const char *kal[] = {"--tts", "flite", "--tts-voice", "kal", "--tts-threads", "3", NULL};
    engine_runs(kal, "flite: voice kal, 3 worker threads");
}

static void none_has_no_engine(void)
{
    const char *args[] = {"--tts", "none", NULL};
    it_server s;
    if (!it_server_up(&s, args)) return it_server_cleanup(&s);
    IT_CHECK(it_metric(s.port, "callstream_tts_jobs_total") == -1, "tts counters without TTS");
    IT_CHECK(it_metric(s.port, "callstream_frames_out_total") >= 0, "the other counters");
    it_server_cleanup(&s);
}

static void bad_settings_are_refused(void)
{
    const char *engine[] = {"--tts", "festival", NULL};
    it_refused(engine, "TTS: 'festival' is not espeak, flite or none");
    const char *fl[] = {"--tts", "flite", "--tts-voice", "nope", NULL};
    it_refused(fl, "TTS_VOICE: flite has no voice 'nope'");
    const char *es[] = {"--tts-voice", "xx-nope", NULL};
    it_refused(es, "TTS_VOICE: espeak-ng: xx-nope:");
}

int main(void)
{
    engines_start();
    none_has_no_engine();
    bad_settings_are_refused();
    return it_done("tts");
}
