/* The Realtime wire (agent/realtime_proto.c): server events parsed strictly, client
 * events in the GA shape, and the arithmetic of a truncation. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "agent/realtime_int.h"
#include "core/base64.h"
#include "core/err.h"

static int parse(rt_event *ev, const char *json)
{
    char why[160];
    return rt_event_parse(ev, json, strlen(json), why, sizeof why);
}

static void parses_audio_delta(void **state)
{
    (void)state;
    rt_event ev;
    assert_int_equal(parse(&ev, "{\"type\":\"response.output_audio.delta\",\"event_id\":\"e1\","
                                "\"response_id\":\"r1\",\"item_id\":\"i1\",\"output_index\":0,"
                                "\"content_index\":0,\"delta\":\"AAEC\"}"),
                     1);
    assert_int_equal(ev.type, RT_EV_AUDIO_DELTA);
    assert_string_equal(ev.item_id, "i1");
    assert_string_equal(ev.response_id, "r1");
    assert_int_equal(ev.delta_len, 4);
    assert_memory_equal(ev.delta, "AAEC", 4);
    rt_event_free(&ev);
}

static void parses_the_rest(void **state)
{
    (void)state;
    rt_event ev;
    assert_int_equal(parse(&ev, "{\"type\":\"response.function_call_arguments.done\",\"item_id\":"
                                "\"i2\",\"call_id\":\"c1\",\"name\":\"end_call\",\"arguments\":"
                                "\"{}\",\"response_id\":\"r2\"}"),
                     1);
    assert_int_equal(ev.type, RT_EV_FUNCTION_DONE);
    assert_string_equal(ev.call_id, "c1");
    assert_string_equal(ev.name, "end_call");
    assert_string_equal(ev.text, "{}");
    rt_event_free(&ev);

    assert_int_equal(parse(&ev, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                                "\"code\":\"invalid_value\",\"message\":\"bad\",\"param\":null}}"),
                     1);
    assert_string_equal(ev.err_type, "invalid_request_error");
    assert_string_equal(ev.err_code, "invalid_value");
    assert_string_equal(ev.err_message, "bad");
    rt_event_free(&ev);

    assert_int_equal(parse(&ev, "{\"type\":\"response.done\",\"response\":{\"id\":\"r3\",\"status\":"
                                "\"cancelled\",\"usage\":{\"input_tokens\":12,\"output_tokens\":"
                                "7}}}"),
                     1);
    assert_string_equal(ev.response_id, "r3");
    assert_string_equal(ev.status, "cancelled");
    assert_int_equal(ev.tokens_in, 12);
    assert_int_equal(ev.tokens_out, 7);
    rt_event_free(&ev);

    assert_int_equal(parse(&ev, "{\"type\":\"response.done\",\"response\":{\"id\":\"r4\"}}"), 1);
    assert_int_equal(ev.tokens_in, -1); /* no usage */
    rt_event_free(&ev);

    assert_int_equal(parse(&ev, "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":"
                                "1500,\"item_id\":\"i9\"}"),
                     1);
    assert_int_equal(ev.type, RT_EV_SPEECH_STARTED);
    assert_int_equal(ev.audio_start_ms, 1500);
    rt_event_free(&ev);

    assert_int_equal(parse(&ev, "{\"type\":\"conversation.item.input_audio_transcription."
                                "completed\",\"item_id\":\"i5\",\"transcript\":\"hello\"}"),
                     1);
    assert_string_equal(ev.text, "hello");
    rt_event_free(&ev);
}

static void skips_unknown_types(void **state)
{
    (void)state;
    rt_event ev;
    /* The beta name of the audio delta is not the GA one: skipped, not acted on. */
    assert_int_equal(parse(&ev, "{\"type\":\"response.audio.delta\",\"item_id\":\"i\","
                                "\"response_id\":\"r\",\"delta\":\"AAAA\"}"),
                     0);
    assert_int_equal(parse(&ev, "{\"type\":\"rate_limits.updated\",\"rate_limits\":[]}"), 0);
}

static void refuses_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "not json",
        "[1,2]",
        "{\"no\":\"type\"}",
        "{\"type\":7}",
        "{\"type\":\"response.output_audio.delta\",\"response_id\":\"r\",\"delta\":\"AA==\"}",
        "{\"type\":\"response.output_audio.delta\",\"item_id\":\"i\",\"response_id\":\"r\"}",
        "{\"type\":\"response.output_audio.delta\",\"item_id\":\"i\",\"response_id\":\"r\","
        "\"delta\":5}",
        "{\"type\":\"response.function_call_arguments.done\",\"item_id\":\"i\",\"name\":\"x\","
        "\"arguments\":\"{}\"}",
        "{\"type\":\"error\",\"message\":\"flat\"}",
        "{\"type\":\"response.done\"}",
        "{\"type\":\"conversation.item.input_audio_transcription.completed\",\"item_id\":\"i\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rt_event ev;
        char why[160] = "";
        int rc = rt_event_parse(&ev, bad[i], strlen(bad[i]), why, sizeof why);
        if (rc != CS_EPARSE) fail_msg("accepted: %s", bad[i]);
        assert_true(why[0] != '\0');
    }
}

static const char *str_at(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *save, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, k);
    return cJSON_GetStringValue(v);
}

static void session_is_ga(void **state)
{
    (void)state;
    rt_session s = {.model = "gpt-realtime",
                    .instructions = "Be \"brief\".",
                    .voice = "marin",
                    .turns = RT_SERVER_VAD,
                    .threshold = 0.5,
                    .prefix_ms = 300,
                    .silence_ms = 500,
                    .eagerness = "auto",
                    .transcribe_model = "gpt-4o-mini-transcribe",
                    .tools = "[{\"type\":\"function\",\"name\":\"end_call\"}]"};
    cs_buf b = CS_BUF_INIT(1 << 20);
    assert_int_equal(rt_build_session(&b, &s), 0);
    cJSON *j = cJSON_Parse(b.data);
    assert_non_null(j);
    assert_string_equal(str_at(j, "type"), "session.update");
    assert_string_equal(str_at(j, "session.type"), "realtime");
    assert_string_equal(str_at(j, "session.model"), "gpt-realtime");
    assert_string_equal(str_at(j, "session.instructions"), "Be \"brief\".");
    assert_string_equal(str_at(j, "session.audio.input.format.type"), "audio/pcmu");
    assert_string_equal(str_at(j, "session.audio.output.format.type"), "audio/pcmu");
    assert_string_equal(str_at(j, "session.audio.output.voice"), "marin");
    assert_string_equal(str_at(j, "session.audio.input.turn_detection.type"), "server_vad");
    assert_string_equal(str_at(j, "session.audio.input.transcription.model"),
                        "gpt-4o-mini-transcribe");
    const cJSON *sess = cJSON_GetObjectItem(j, "session");
    /* No beta field. */
    static const char *const beta[] = {"voice", "modalities", "input_audio_format",
                                       "output_audio_format", "turn_detection"};
    for (size_t i = 0; i < 5; i++) assert_null(cJSON_GetObjectItem(sess, beta[i]));
    const cJSON *td = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(sess, "audio"), "input"),
                            "turn_detection"),
        "silence_duration_ms");
    assert_int_equal((int)cJSON_GetNumberValue(td), 500);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(sess, "output_modalities"), 0)),
        "audio");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(sess, "tools")), 1);
    cJSON_Delete(j);

    cs_buf_reset(&b);
    s.turns = RT_SEMANTIC_VAD;
    s.eagerness = "high";
    s.transcribe_model = "";
    s.tools = NULL;
    assert_int_equal(rt_build_session(&b, &s), 0);
    j = cJSON_Parse(b.data);
    assert_string_equal(str_at(j, "session.audio.input.turn_detection.type"), "semantic_vad");
    assert_string_equal(str_at(j, "session.audio.input.turn_detection.eagerness"), "high");
    assert_null(str_at(j, "session.audio.input.transcription.model"));
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "session"), "tools"));
    cJSON_Delete(j);
    cs_buf_free(&b);
}

static void client_events(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(1 << 20);
    uint8_t ulaw[321];
    for (size_t i = 0; i < sizeof ulaw; i++) ulaw[i] = (uint8_t)(i * 31 + 7);
    assert_int_equal(rt_build_append(&b, ulaw, sizeof ulaw), 0);
    cJSON *j = cJSON_Parse(b.data);
    assert_string_equal(str_at(j, "type"), "input_audio_buffer.append");
    const char *audio = str_at(j, "audio");
    uint8_t back[sizeof ulaw + 3];
    assert_int_equal(cs_base64_decode(back, audio, strlen(audio)), (int)sizeof ulaw);
    assert_memory_equal(back, ulaw, sizeof ulaw); /* the bytes as they are */
    cJSON_Delete(j);

    cs_buf_reset(&b);
    assert_int_equal(rt_build_truncate(&b, "item_7", 1234), 0);
    assert_string_equal(b.data, "{\"type\":\"conversation.item.truncate\",\"item_id\":\"item_7\","
                                "\"content_index\":0,\"audio_end_ms\":1234}");
    cs_buf_reset(&b);
    assert_int_equal(rt_build_cancel(&b, "resp_1"), 0);
    assert_string_equal(b.data, "{\"type\":\"response.cancel\",\"response_id\":\"resp_1\"}");
    cs_buf_reset(&b);
    assert_int_equal(rt_build_cancel(&b, ""), 0);
    assert_string_equal(b.data, "{\"type\":\"response.cancel\"}");
    cs_buf_reset(&b);
    assert_int_equal(rt_build_tool_output(&b, "call_1", "{\"ok\":true}", 11), 0);
    assert_string_equal(b.data, "{\"type\":\"conversation.item.create\",\"item\":{\"type\":"
                                "\"function_call_output\",\"call_id\":\"call_1\",\"output\":"
                                "\"{\\\"ok\\\":true}\"}}");
    cs_buf_reset(&b);
    assert_int_equal(rt_build_response_create(&b), 0);
    assert_string_equal(b.data, "{\"type\":\"response.create\"}");
    cs_buf_free(&b);

    /* Past the buffer's bound: -EMSGSIZE, and nothing half-written stays. */
    cs_buf small = CS_BUF_INIT(64);
    assert_int_equal(rt_build_append(&small, ulaw, sizeof ulaw), -EMSGSIZE);
    assert_int_equal(small.len, 0);
    cs_buf_free(&small);
}

static void truncation_arithmetic(void **state)
{
    (void)state;
    /* Heard less than received: what was heard. */
    assert_int_equal(rt_audio_end_ms(1200, 8000 * 3), 1200);
    /* Heard all of it: what was received, never more. */
    assert_int_equal(rt_audio_end_ms(3000, 8000 * 3), 3000);
    assert_int_equal(rt_audio_end_ms(3100, 8000 * 3), 3000);
    /* Received bytes count in whole ms, rounded down. */
    assert_int_equal(rt_audio_end_ms(5000, 807), 100);
    assert_int_equal(rt_audio_end_ms(0, 800), 0);
    assert_int_equal(rt_audio_end_ms(40, 0), 0);
}

static void sentences(void **state)
{
    (void)state;
    const char *t = "Hello there. How are you? I am";
    assert_int_equal(rt_sentence_end(t, strlen(t), false), strlen("Hello there. How are you? "));
    assert_int_equal(rt_sentence_end(t, strlen(t), true), strlen(t));
    assert_int_equal(rt_sentence_end("No end yet", 10, false), 0);
    assert_int_equal(rt_sentence_end("Ends here.", 10, false), 0); /* may go on: "here.5" */
    assert_int_equal(rt_sentence_end("", 0, true), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_audio_delta),  cmocka_unit_test(parses_the_rest),
        cmocka_unit_test(skips_unknown_types), cmocka_unit_test(refuses_malformed),
        cmocka_unit_test(session_is_ga),       cmocka_unit_test(client_events),
        cmocka_unit_test(truncation_arithmetic), cmocka_unit_test(sentences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
