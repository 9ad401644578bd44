/* The summarizer on a real loop, store and HTTP client, against the fake chat model: a
 * call's summary waits for its transcriptions to close; the queue holds
 * CS_SUMMARY_QUEUE_MAX calls, and the next is failed at once (counted, stored with why);
 * freeing it with requests and queries out leaves nothing behind. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "llm_fake.h"
#include "net/fetch.h"
#include "store/store.h"
#include "summary/summary.h"

typedef struct rig {
    tu_env env;
    cs_config cfg;
    cs_store *store;
    cs_fetch *fetch;
    llm_fake *llm;
    cs_summary *sum;
} rig;

static const llm_fake_reply stall[] = {{LLM_FAKE_STALL}};

static void rig_open(rig *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(tu_env_open(&r->env, "cs-test-summary"), 0);
    llm_fake_opts o = {.script = stall, .nscript = 1};
    assert_int_equal(llm_fake_start(&r->llm, &o), 0);
    char *argv[] = {"test", "--llm-url", (char *)llm_fake_url(r->llm), "--llm-model", "m", NULL};
    int argi = 1, help = 0;
    cs_buf err = CS_BUF_INIT(4096);
    assert_int_equal(cs_config_load(&r->cfg, "/dev/null", 5, argv, &argi, &help, &err), 0);
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", tu_path_in(&r->env, "cs.db"));
    assert_int_equal(cs_store_open(&r->store, url, r->env.mb, 100000, r->env.dir, &err), 0);
    assert_int_equal(cs_fetch_open(&r->fetch, &r->env.loop), 0);
    cs_summary_opts so = {
        .cfg = &r->cfg, .loop = &r->env.loop, .fetch = r->fetch, .store = r->store};
    assert_int_equal(cs_summary_new(&r->sum, &so, &err), 0);
    assert_non_null(r->sum);
    cs_buf_free(&err);
}

static void rig_close(rig *r)
{
    cs_summary_free(r->sum);
    cs_fetch_close(r->fetch);
    cs_store_close(r->store);
    cs_mailbox_run(r->env.mb); /* the store's last answers */
    for (int i = 0; i < 10; i++) uv_run(&r->env.loop, UV_RUN_NOWAIT);
    llm_fake_free(r->llm);
    cs_config_free(&r->cfg);
    assert_int_equal(tu_env_close(&r->env), 0);
}

static bool asked(void *data)
{
    rig *r = data;
    llm_fake_stats st;
    llm_fake_stats_get(r->llm, &st);
    return st.json_requests >= 1;
}

/* A transcript line for the call, so it has something to summarize. */
static void said(rig *r, const char *sid)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_SEGMENT);
    rec->segment = (cs_segment_row){.call_sid = cs_pool_strdup(&rec->pool, sid),
                                    .stream_sid = "MZ1",
                                    .speaker = "caller",
                                    .text = "hello there",
                                    .seq = 1,
                                    .confidence = -1,
                                    .at = 1};
    cs_store_write(r->store, rec);
}

static void waits_for_transcriptions(void **state)
{
    (void)state;
    rig r;
    rig_open(&r);
    const char *sid = "CA00000000000000000000000000000001";
    said(&r, sid);
    /* The callers' strings go away (a transcription's, a call's): the summarizer keeps
     * its own copy of the key. */
    char held[40];
    snprintf(held, sizeof held, "%s", sid);
    cs_summary_hold(r.sum, held);
    cs_summary_hold(r.sum, held);
    memset(held, 'x', sizeof held - 1);
    cs_summary_call_ended(r.sum, sid);
    cs_summary_release(r.sum, sid);
    assert_int_equal(cs_summary_stats_get(r.sum)->requested, 0); /* one still open */
    cs_summary_release(r.sum, sid);
    assert_int_equal(cs_summary_stats_get(r.sum)->requested, 1);
    assert_true(tu_run_until(&r.env.loop, asked, &r, TU_WAIT_MS));
    assert_int_equal(cs_summary_pending(r.sum), 1);
    rig_close(&r); /* the request out is cancelled, the summary left pending */
}

static void queue_is_bounded(void **state)
{
    (void)state;
    rig r;
    rig_open(&r);
    tu_log_capture_start();
    char sid[40];
    for (int i = 0; i <= CS_SUMMARY_QUEUE_MAX; i++) {
        snprintf(sid, sizeof sid, "CA%032x", i + 16);
        cs_summary_call_ended(r.sum, sid);
    }
    const cs_summary_stats *st = cs_summary_stats_get(r.sum);
    assert_int_equal(st->requested, CS_SUMMARY_QUEUE_MAX);
    assert_int_equal(st->full, 1);
    assert_int_equal(st->failed, 1);
    assert_int_equal(cs_summary_pending(r.sum), CS_SUMMARY_QUEUE_MAX);
    assert_true(tu_log_contains("calls were waiting for a summary") == 1);
    cs_buf m = CS_BUF_INIT(1 << 16);
    cs_summary_metrics(r.sum, &m);
    assert_non_null(strstr(m.data, "callstream_summary_queue_full_total 1"));
    assert_non_null(strstr(m.data, "callstream_summaries_pending 1000"));
    cs_buf_free(&m);
    tu_log_capture_stop();
    rig_close(&r); /* queries still out are answered after the free, and dropped */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(waits_for_transcriptions),
        cmocka_unit_test(queue_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
