/* The speech engine in the gateway: created at start-up from TTS and TTS_VOICE (espeak-ng
 * by default), its counters in /metrics (first audio per engine: a cloud voice's and its
 * local fallback's), none with TTS=none, and a start refused with a clear message for an
 * unknown engine or voice, or a cloud voice without its key. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "integ_util.h"

/* Starts with `args`, checks the engine's log line and its counters (first audio under
 * `engines`, with the fallback's for a cloud voice), stops with SIGTERM. */
static void engine_runs(const char *const *args, const char *log_line, const char *const *engines)
{
    it_server s;
    if (!it_server_up(&s, args)) return it_server_cleanup(&s);
    double loops = it_metric(s.port, "callstream_loops"); /* each has its engine; one: none */
    IT_CHECK(it_log_count(&s, log_line) == (loops > 0 ? (int)loops : 1), "no '%s' in the log",
             log_line);
    IT_CHECK(it_metric(s.port, "callstream_tts_jobs_total") == 0, "tts jobs counter");
    IT_CHECK(it_metric(s.port, "callstream_tts_jobs") == 0, "tts live jobs gauge");
    for (size_t i = 0; engines[i]; i++) {
        char series[128];
        snprintf(series, sizeof series, "callstream_tts_first_audio_seconds_count{engine=\"%s\"}",
                 engines[i]);
        IT_CHECK(it_metric(s.port, series) == 0, "no %s", series);
    }
    IT_CHECK(it_metric(s.port, "callstream_tts_fallbacks_total") == (engines[1] ? 0 : -1),
             "fallbacks counted with a cloud voice only");
    int rc = it_server_stop(&s, SIGTERM, 10000);
    IT_CHECK(rc == 0, "exit status %d after SIGTERM", rc);
    it_server_cleanup(&s);
}

static void engines_start(void)
{
    const char *espeak[] = {"espeak", NULL}, *flite[] = {"flite", NULL};
    engine_runs(NULL, "espeak-ng: voice en-us", espeak);
    const char *en[] = {"--tts-voice", "en-gb-scotland+f3", NULL};
    engine_runs(en, "espeak-ng: voice en-gb-scotland+f3", espeak);
    const char *kal[] = {"--tts", "flite", "--tts-voice", "kal", "--tts-threads", "3", NULL};
    engine_runs(kal, "flite: voice kal, 3 worker threads", flite);
    /* A cloud voice (no request is made at start-up), espeak-ng standing by with its own
     * default voice although TTS_VOICE names the cloud's. */
    const char *oa[] = {"--tts", "openai", "--openai-api-key", "sk-start", "--tts-voice",
                        "nova",  NULL};
    const char *oa_engines[] = {"openai", "espeak", NULL};
    engine_runs(oa,
                "openai speech: https://api.openai.com/v1/audio/speech, model "
                "gpt-4o-mini-tts, voice nova",
                oa_engines);
    const char *el[] = {"--tts", "elevenlabs", "--elevenlabs-api-key", "xi-start", "--tts-fallback",
                        "flite", NULL};
    const char *el_engines[] = {"elevenlabs", "flite", NULL};
    engine_runs(el, "elevenlabs speech: wss://api.elevenlabs.io, model eleven_flash_v2_5",
                el_engines);
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
    it_refused(engine, "TTS: 'festival' is not espeak, flite, elevenlabs, openai or none");
    const char *nokey[] = {"--tts", "openai", NULL};
    it_refused(nokey, "TTS=openai needs OPENAI_API_KEY");
    const char *elnokey[] = {"--tts", "elevenlabs", NULL};
    it_refused(elnokey, "TTS=elevenlabs needs ELEVENLABS_API_KEY");
    const char *fb[] = {"--tts",  "openai", "--openai-api-key", "k", "--tts-fallback",
                        "openai", NULL};
    it_refused(fb, "TTS_FALLBACK: 'openai' is not espeak, flite or none");
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
