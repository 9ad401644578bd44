#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "core/prom.h"

static const double bounds4[] = {1, 2, 3, 4};

static void boundary_values_go_to_their_bucket(void **state)
{
    (void)state;
    cs_hist h;
    cs_hist_init(&h, bounds4, 4);
    static const struct {
        double v;
        size_t bucket; /* 4 is +Inf */
    } cases[] = {
        {-5, 0},  {0, 0}, {0.5, 0}, {1, 0},         {1.0000001, 1}, {2, 1},
        {2.5, 2}, {3, 2}, {4, 3},   {4.0000001, 4}, {1e9, 4},
    };
    uint64_t want[5] = {0};
    double sum = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_hist_observe(&h, cases[i].v);
        want[cases[i].bucket]++;
        sum += cases[i].v;
        for (size_t b = 0; b < 5; b++)
            if (h.counts[b] != want[b])
                fail_msg("%g: bucket %zu has %llu", cases[i].v, b, (unsigned long long)h.counts[b]);
    }
    assert_int_equal(h.count, sizeof cases / sizeof *cases);
    assert_true(h.sum == sum);
}

static void init_keeps_at_most_the_maximum_buckets(void **state)
{
    (void)state;
    double many[CS_HIST_MAX_BUCKETS + 6];
    for (size_t i = 0; i < sizeof many / sizeof *many; i++) many[i] = (double)(i + 1);
    cs_hist h;
    cs_hist_init(&h, many, sizeof many / sizeof *many);
    assert_int_equal(h.nbounds, CS_HIST_MAX_BUCKETS);
    cs_hist_observe(&h, CS_HIST_MAX_BUCKETS);     /* the last bound kept */
    cs_hist_observe(&h, CS_HIST_MAX_BUCKETS + 1); /* a bound dropped: +Inf */
    assert_int_equal(h.counts[CS_HIST_MAX_BUCKETS - 1], 1);
    assert_int_equal(h.counts[CS_HIST_MAX_BUCKETS], 1);
}

static void quantiles(void **state)
{
    (void)state;
    cs_hist h;
    cs_hist_init(&h, bounds4, 4);
    assert_true(cs_hist_quantile(&h, 0.5) == 0); /* empty */

    /* 50 at 1, 30 at 2, 15 at 3, 4 at 4 and 1 above every bound. */
    static const struct {
        double v;
        int n;
    } obs[] = {{1, 50}, {2, 30}, {3, 15}, {4, 4}, {100, 1}};
    for (size_t i = 0; i < sizeof obs / sizeof *obs; i++)
        for (int k = 0; k < obs[i].n; k++) cs_hist_observe(&h, obs[i].v);
    static const struct {
        double q, want;
    } cases[] = {{0, 1},    {0.01, 1}, {0.5, 1},  {0.51, 2}, {0.8, 2},
                 {0.81, 3}, {0.95, 3}, {0.96, 4}, {0.99, 4}, {1, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (cs_hist_quantile(&h, cases[i].q) != cases[i].want)
            fail_msg("q%g: %g", cases[i].q, cs_hist_quantile(&h, cases[i].q));

    cs_hist inf;
    cs_hist_init(&inf, bounds4, 4);
    cs_hist_observe(&inf, 5); /* only in +Inf: the largest finite bound */
    assert_true(cs_hist_quantile(&inf, 0.5) == 4);

    cs_hist none;
    cs_hist_init(&none, NULL, 0); /* no bounds: everything is +Inf */
    cs_hist_observe(&none, 1);
    assert_int_equal(none.counts[0], 1);
    assert_true(cs_hist_quantile(&none, 0.5) == 0);
}

/* ---- exposition text ---- */

static const char counter_text[] = "# HELP cs_calls_total Calls started.\n"
                                   "# TYPE cs_calls_total counter\n"
                                   "cs_calls_total 42\n";

static const char gauge_text[] = "# HELP cs_lag_seconds Lag behind real time.\n"
                                 "# TYPE cs_lag_seconds gauge\n"
                                 "cs_lag_seconds -0.125\n";

static const char hist_text[] = "# HELP cs_frame_seconds Time to process one frame.\n"
                                "# TYPE cs_frame_seconds histogram\n"
                                "cs_frame_seconds_bucket{le=\"0.005\"} 2\n"
                                "cs_frame_seconds_bucket{le=\"0.01\"} 4\n"
                                "cs_frame_seconds_bucket{le=\"0.5\"} 5\n"
                                "cs_frame_seconds_bucket{le=\"1\"} 6\n"
                                "cs_frame_seconds_bucket{le=\"+Inf\"} 7\n"
                                "cs_frame_seconds_sum 3.323\n"
                                "cs_frame_seconds_count 7\n";

static const double hist_bounds[] = {0.005, 0.01, 0.5, 1};

static int write_counter(cs_buf *out)
{
    return cs_prom_counter(out, "cs_calls_total", "Calls started.", 42);
}

static int write_gauge(cs_buf *out)
{
    return cs_prom_gauge(out, "cs_lag_seconds", "Lag behind real time.", -0.125);
}

static int write_hist(cs_buf *out)
{
    cs_hist h;
    cs_hist_init(&h, hist_bounds, 4);
    static const double obs[] = {0.001, 0.005, 0.007, 0.01, 0.3, 1, 2};
    for (size_t i = 0; i < sizeof obs / sizeof *obs; i++) cs_hist_observe(&h, obs[i]);
    return cs_prom_hist(out, "cs_frame_seconds", "Time to process one frame.", &h);
}

static const struct {
    const char *name;
    int (*write)(cs_buf *out);
    const char *text;
} golden[] = {
    {"counter", write_counter, counter_text},
    {"gauge", write_gauge, gauge_text},
    {"histogram", write_hist, hist_text},
};
#define NGOLDEN (sizeof golden / sizeof *golden)

static void exposition_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < NGOLDEN; i++) {
        cs_buf out = CS_BUF_INIT(4096);
        assert_int_equal(golden[i].write(&out), 0);
        assert_string_equal(out.data, golden[i].text);
        cs_buf_free(&out);
    }
}

static void values_and_labels(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(4096);
    assert_int_equal(cs_prom_header(&out, "cs_drops_total", "counter", "Messages dropped."), 0);
    assert_int_equal(cs_prom_value(&out, "cs_drops_total", "reason=\"rate\"", 3), 0);
    assert_int_equal(cs_prom_value(&out, "cs_drops_total", "", 0), 0);
    assert_int_equal(cs_prom_value(&out, "cs_drops_total", NULL, 123456789012345.0), 0);
    assert_int_equal(cs_prom_value(&out, "cs_x", NULL, 0.1), 0);
    assert_int_equal(cs_prom_value(&out, "cs_x", NULL, 1e-7), 0);
    assert_string_equal(out.data, "# HELP cs_drops_total Messages dropped.\n"
                                  "# TYPE cs_drops_total counter\n"
                                  "cs_drops_total{reason=\"rate\"} 3\n"
                                  "cs_drops_total 0\n"
                                  "cs_drops_total 123456789012345\n"
                                  "cs_x 0.1\n"
                                  "cs_x 1e-07\n");
    cs_buf_free(&out);
}

static void an_empty_frame_histogram(void **state)
{
    (void)state;
    cs_hist h;
    cs_hist_init(&h, cs_hist_bounds_frame, cs_hist_nbounds_frame);
    cs_buf out = CS_BUF_INIT(4096);
    assert_int_equal(cs_prom_hist(&out, "f", "h", &h), 0);
    assert_string_equal(out.data, "# HELP f h\n"
                                  "# TYPE f histogram\n"
                                  "f_bucket{le=\"1e-06\"} 0\n"
                                  "f_bucket{le=\"2.5e-06\"} 0\n"
                                  "f_bucket{le=\"5e-06\"} 0\n"
                                  "f_bucket{le=\"1e-05\"} 0\n"
                                  "f_bucket{le=\"2.5e-05\"} 0\n"
                                  "f_bucket{le=\"5e-05\"} 0\n"
                                  "f_bucket{le=\"0.0001\"} 0\n"
                                  "f_bucket{le=\"0.00025\"} 0\n"
                                  "f_bucket{le=\"0.0005\"} 0\n"
                                  "f_bucket{le=\"0.001\"} 0\n"
                                  "f_bucket{le=\"0.0025\"} 0\n"
                                  "f_bucket{le=\"0.01\"} 0\n"
                                  "f_bucket{le=\"+Inf\"} 0\n"
                                  "f_sum 0\n"
                                  "f_count 0\n");
    cs_buf_free(&out);
}

static void out_of_room_is_emsgsize(void **state)
{
    (void)state;
    /* Every cut, in the header, a bucket line or the tail, is reported. */
    for (size_t i = 0; i < NGOLDEN; i++) {
        size_t full = strlen(golden[i].text);
        for (size_t max = 0; max < full; max++) {
            cs_buf out = CS_BUF_INIT(max);
            if (golden[i].write(&out) != -EMSGSIZE)
                fail_msg("%s fits in %zu bytes", golden[i].name, max);
            if (out.len) assert_memory_equal(out.data, golden[i].text, out.len);
            cs_buf_free(&out);
        }
        cs_buf out = CS_BUF_INIT(full);
        assert_int_equal(golden[i].write(&out), 0);
        cs_buf_free(&out);
    }
    cs_buf out = CS_BUF_INIT(5);
    assert_int_equal(cs_prom_value(&out, "cs_x", "a=\"b\"", 1), -EMSGSIZE);
    assert_int_equal(cs_prom_value(&out, "cs_x", NULL, 1), -EMSGSIZE);
    assert_int_equal(cs_prom_header(&out, "cs_x", "gauge", "x"), -EMSGSIZE);
    assert_int_equal(out.len, 0);
    cs_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(boundary_values_go_to_their_bucket),
        cmocka_unit_test(init_keeps_at_most_the_maximum_buckets),
        cmocka_unit_test(quantiles),
        cmocka_unit_test(exposition_text),
        cmocka_unit_test(values_and_labels),
        cmocka_unit_test(an_empty_frame_histogram),
        cmocka_unit_test(out_of_room_is_emsgsize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
