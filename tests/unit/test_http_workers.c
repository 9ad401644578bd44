/* /metrics of several event loops (cs_workers_sum): each series the sum of the loops'
 * values, in the first text's order with its comments; the process's own gauges (up,
 * uptime, memory, CPU) the largest, not the sum; labelled series and histogram buckets
 * summed one by one; a series the first text lacks left out; WORKERS resolved. */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include "http/gateway.h"

static cs_buf text_of(const char *s)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_buf_puts(&b, s);
    return b;
}

static void sums_counters_not_the_process(void **state)
{
    (void)state;
    cs_buf t[3] = {
        text_of("# HELP callstream_up 1 while the gateway runs\n"
                "# TYPE callstream_up gauge\n"
                "callstream_up 1\n"
                "callstream_uptime_seconds 12.5\n"
                "callstream_http_requests_total 10\n"
                "callstream_http_responses_total{class=\"2xx\"} 7\n"
                "callstream_http_responses_total{class=\"4xx\"} 3\n"
                "callstream_frame_seconds_bucket{le=\"0.001\"} 4\n"
                "process_resident_memory_bytes 1000\n"),
        text_of("callstream_up 1\n"
                "callstream_uptime_seconds 12.7\n"
                "callstream_http_responses_total{class=\"4xx\"} 1\n"
                "callstream_http_requests_total 5\n"
                "callstream_frame_seconds_bucket{le=\"0.001\"} 6\n"
                "callstream_only_here_total 9\n"
                "process_resident_memory_bytes 1200\n"),
        text_of(""), /* a loop that had drained */
    };
    cs_buf out = CS_BUF_INIT(1 << 16);
    cs_workers_sum(&t[0], t, 3, &out);
    cs_buf_putc(&out, '\0');
    assert_string_equal(out.data, "# HELP callstream_up 1 while the gateway runs\n"
                                  "# TYPE callstream_up gauge\n"
                                  "callstream_up 1\n"
                                  "callstream_uptime_seconds 12.7\n"
                                  "callstream_http_requests_total 15\n"
                                  "callstream_http_responses_total{class=\"2xx\"} 7\n"
                                  "callstream_http_responses_total{class=\"4xx\"} 4\n"
                                  "callstream_frame_seconds_bucket{le=\"0.001\"} 10\n"
                                  "process_resident_memory_bytes 1200\n");
    cs_buf_free(&out);
    /* the second loop first: its series, in its order */
    cs_workers_sum(&t[1], t, 3, &out);
    cs_buf_putc(&out, '\0');
    assert_non_null(strstr(out.data, "callstream_only_here_total 9\n"));
    assert_non_null(strstr(out.data, "callstream_http_requests_total 15\n"));
    assert_non_null(strstr(out.data, "callstream_up 1\n"));
    cs_buf_free(&out);
    for (int i = 0; i < 3; i++) cs_buf_free(&t[i]);
}

/* Lines that are not samples pass as they are; the last line may lack its newline. */
static void odd_lines_pass(void **state)
{
    (void)state;
    cs_buf t[2] = {text_of("\n# only a comment\nnovalue\na 1"), text_of("a 2\nnovalue\n")};
    cs_buf out = CS_BUF_INIT(1 << 16);
    cs_workers_sum(&t[0], t, 2, &out);
    cs_buf_putc(&out, '\0');
    assert_string_equal(out.data, "\n# only a comment\nnovalue\na 3\n");
    cs_buf_free(&out);
    for (int i = 0; i < 2; i++) cs_buf_free(&t[i]);
}

static void workers_wanted(void **state)
{
    (void)state;
    cs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    assert_int_equal(cs_workers_wanted(&cfg), 1);
    cfg.workers = 7;
    assert_int_equal(cs_workers_wanted(&cfg), 7);
    cfg.workers = 0; /* one per core */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cs_workers_wanted(&cfg), cores > CS_BUS_LOOPS_MAX ? CS_BUS_LOOPS_MAX : cores);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sums_counters_not_the_process),
        cmocka_unit_test(odd_lines_pass),
        cmocka_unit_test(workers_wanted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
