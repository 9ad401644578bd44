/* The calls list's filters and transcript search (FTS5): each filter and their
 * combinations, pages of a filtered list, refined finals, agent lines, what a user types
 * never being FTS5 syntax, and the index built for rows stored before it. */
#include "store_harness.h"

/* Calls CA1..CA6, CA1 the oldest (created_at 1000 apart). */
static void write_calls(fixture *f)
{
    static const cs_call_row rows[] = {
        {.sid = "CA1", .from = "+14155550101", .to = "+18005550000", .status = "completed"},
        {.sid = "CA2", .from = "+14155550102", .to = "+18005550000", .status = "busy"},
        {.sid = "CA3", .from = "+442071234567", .to = "+18005550000", .status = "completed"},
        {.sid = "CA4", .from = "+14155550101", .to = "+18005550001", .status = "in-progress"},
        {.sid = "CA5", .from = "client:ann", .to = "+18005550000", .status = "failed"},
        {.sid = "CA6", .from = "+14155550101", .to = "+18005550000", .status = "completed"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        cs_call_row c = rows[i];
        c.created_at = c.updated_at = (int64_t)(i + 1) * 1000;
        write_call(f->store, &c);
    }
    wait_for(f, (cs_store_stats){.written = 6});
}

/* A fresh store with those calls, and one transcript line of call `sid`. */
static void calls_and_line(fixture *f, const char *sid, const char *speaker, const char *text)
{
    open_store(f, 100);
    write_calls(f);
    write_segment_of(f->store, sid, speaker, 1, 0, text, -1, false);
    wait_for(f, (cs_store_stats){.written = 7});
}

/* Lists the calls `filter` lets through (one page of up to `limit` after the cursor) and
 * checks their sids, newest first, e.g. "CA6 CA3". */
static cs_store_query *list(fixture *f, const cs_call_filter *filter, int limit, const char *want)
{
    cs_store_query *q = query(CS_Q_CALLS, NULL, f);
    q->filter = *filter;
    q->limit = limit;
    ask(f, q);
    if (q->status != 0) fail_msg("query failed: %d %s", q->status, q->error);
    char got[256] = "";
    for (size_t i = 0; i < q->ncalls; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "",
                 q->calls[i].sid);
    if (strcmp(got, want) != 0) fail_msg("got '%s', want '%s'", got, want);
    return q;
}

static void expect(fixture *f, const cs_call_filter *filter, const char *want)
{
    cs_store_query_free(list(f, filter, 50, want));
}

static void each_filter_and_combinations(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_calls(f);
    expect(f, &(cs_call_filter){0}, "CA6 CA5 CA4 CA3 CA2 CA1");
    expect(f, &(cs_call_filter){.from = "+14155550101"}, "CA6 CA4 CA1");
    expect(f, &(cs_call_filter){.from = "+1415555010"}, ""); /* exact unless a prefix */
    expect(f, &(cs_call_filter){.from = "+1415", .from_prefix = true}, "CA6 CA4 CA2 CA1");
    expect(f, &(cs_call_filter){.from = "client:", .from_prefix = true}, "CA5");
    expect(f, &(cs_call_filter){.to = "+18005550001"}, "CA4");
    expect(f, &(cs_call_filter){.to = "+1800555000", .to_prefix = true}, "CA6 CA5 CA4 CA3 CA2 CA1");
    expect(f, &(cs_call_filter){.statuses = {"completed"}, .nstatuses = 1}, "CA6 CA3 CA1");
    expect(f, &(cs_call_filter){.statuses = {"busy", "failed"}, .nstatuses = 2}, "CA5 CA2");
    expect(f, &(cs_call_filter){.statuses = {"ringing"}, .nstatuses = 1}, "");
    expect(f, &(cs_call_filter){.since = 3000}, "CA6 CA5 CA4 CA3");
    expect(f, &(cs_call_filter){.until = 3000}, "CA2 CA1"); /* until is not included */
    expect(f, &(cs_call_filter){.since = 2000, .until = 5000}, "CA4 CA3 CA2");
    expect(f,
           &(cs_call_filter){
               .from = "+14155550101", .statuses = {"completed"}, .nstatuses = 1, .since = 2000},
           "CA6");
    expect(f,
           &(cs_call_filter){.from = "+1",
                             .from_prefix = true,
                             .to = "+18005550000",
                             .statuses = {"completed", "busy"},
                             .nstatuses = 2,
                             .until = 6000},
           "CA2 CA1"); /* CA3 is +44, CA6 too late */
}

/* The page after `q`'s (which it frees), with the same filter. */
static cs_store_query *next_page(fixture *f, cs_store_query *q, const cs_call_filter *filter,
                                 int limit)
{
    cs_store_query *next = query(CS_Q_CALLS, NULL, f);
    next->filter = *filter;
    next->limit = limit;
    next->before_at = q->calls[q->ncalls - 1].created_at;
    snprintf(next->before_sid, sizeof next->before_sid, "%s", q->calls[q->ncalls - 1].sid);
    cs_store_query_free(q);
    ask(f, next);
    assert_int_equal(next->status, 0);
    return next;
}

/* The cursor is the last row's (created_at, sid): pages of a filtered list follow on. */
static void pages_of_a_filtered_list(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_calls(f);
    cs_call_filter filter = {
        .to = "+18005550000", .statuses = {"completed", "failed"}, .nstatuses = 2};
    cs_store_query *q = list(f, &filter, 2, "CA6 CA5");
    assert_true(q->more);
    q = next_page(f, q, &filter, 2);
    assert_int_equal(q->ncalls, 2);
    assert_string_equal(q->calls[0].sid, "CA3");
    assert_string_equal(q->calls[1].sid, "CA1");
    assert_false(q->more);
    cs_store_query_free(q);

    /* the same with a search */
    write_segment_of(f->store, "CA1", "caller", 1, 0, "my order never came", -1, false);
    write_segment_of(f->store, "CA3", "caller", 1, 0, "where is my order", -1, false);
    write_segment_of(f->store, "CA5", "agent", 1, 0, "your order shipped", -1, false);
    write_segment_of(f->store, "CA6", "caller", 1, 0, "a new phone", -1, false);
    wait_for(f, (cs_store_stats){.written = 10});
    assert_int_equal(cs_call_filter_text(&filter, "order"), 1);
    q = list(f, &filter, 1, "CA5");
    assert_true(q->more);
    for (const char *want = "CA3 CA1"; *want; want += want[3] ? 4 : 3) {
        q = next_page(f, q, &filter, 1);
        assert_int_equal(q->ncalls, 1);
        assert_memory_equal(q->calls[0].sid, want, 3);
        assert_int_equal(q->more, want[3] != '\0');
    }
    cs_store_query_free(q);
}

/* A snippet as the page shows it: [hit] for the matched words. */
static void assert_snippet(const cs_call_row *c, const char *speaker, const char *want)
{
    assert_non_null(c->match_snippet);
    assert_string_equal(c->match_speaker, speaker);
    char got[512];
    size_t n = 0;
    for (const char *p = c->match_snippet; *p && n + 1 < sizeof got; p++)
        got[n++] = *p == CS_SNIPPET_OPEN[0] ? '[' : *p == CS_SNIPPET_CLOSE[0] ? ']' : *p;
    got[n] = '\0';
    assert_string_equal(got, want);
}

static void search(fixture *f, const char *text, const char *want)
{
    cs_call_filter filter = {0};
    assert_true(cs_call_filter_text(&filter, text) > 0);
    expect(f, &filter, want);
}

static void search_finds_lines_of_either_speaker(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_calls(f);
    write_segment_of(f->store, "CA1", "caller", 1, 0, "I would like a refund please", -1, false);
    write_segment_of(f->store, "CA1", "agent", 1, 900, "Let me look at that", -1, false);
    write_segment_of(f->store, "CA2", "agent", 1, 0, "Your refund is on its way", -1, false);
    write_segment_of(f->store, "CA3", "caller", 1, 0, "what is the weather like", -1, false);
    write_segment_of(f->store, "CA4", "caller", 1, 0, "Café crème, s'il vous plaît", -1, false);
    wait_for(f, (cs_store_stats){.written = 11});

    cs_call_filter filter = {0};
    assert_int_equal(cs_call_filter_text(&filter, "refund"), 1);
    cs_store_query *q = list(f, &filter, 50, "CA2 CA1");
    assert_snippet(&q->calls[0], "agent", "Your [refund] is on its way");
    assert_snippet(&q->calls[1], "caller", "I would like a [refund] please");
    cs_store_query_free(q);

    search(f, "REFUNDS", "CA2 CA1");         /* case and stems */
    search(f, "refund please", "CA1");       /* every word */
    search(f, "refund weather", "");         /* in one line */
    search(f, "look", "CA1");                /* agent lines too */
    search(f, "wea*", "CA3");                /* a prefix */
    search(f, "wea", "");                    /* a word */
    search(f, "cafe creme", "CA4");          /* without accents */
    search(f, "CA1", "");                    /* the sid is not text */
    search(f, "\"weather\" OR refund", "");  /* OR is a word */
    search(f, "weather AND NOT refund", ""); /* so are AND and NOT */

    /* only calls the other filters let through */
    snprintf(filter.statuses[0], sizeof filter.statuses[0], "busy");
    filter.nstatuses = 1;
    expect(f, &filter, "CA2");
    filter.nstatuses = 0;
    filter.since = 2001;
    expect(f, &filter, "");
}

/* A refined final replaces the fast one in the index too, whichever comes first. */
static void search_sees_refined_finals(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_calls(f);
    write_segment(f->store, "caller", 1, 1000, "then by all my problem", -1, false);
    write_segment(f->store, "caller", 1, 1100, "then not my problem", -1, true);
    write_segment(f->store, "caller", 2, 3000, "refined first", -1, true);
    write_segment(f->store, "caller", 2, 3000, "fast after", -1, false);
    wait_for(f, (cs_store_stats){.written = 10});
    search(f, "all", "");
    search(f, "not problem", "CA1");
    search(f, "refined", "CA1");
    search(f, "fast", "");
    cs_call_filter filter = {0};
    assert_int_equal(cs_call_filter_text(&filter, "not"), 1);
    cs_store_query *q = list(f, &filter, 50, "CA1");
    assert_snippet(&q->calls[0], "caller", "then [not] my problem");
    cs_store_query_free(q);
#ifndef CS_TEST_PG /* (PostgreSQL's words are a generated column of the row) */
    /* the index holds nothing the table does not */
    side_exec(f, "INSERT INTO transcripts_fts(transcripts_fts) VALUES ('integrity-check')");
#endif
}

/* A word in many lines (SEARCH_SCAN_LINES: 10,000) is looked for call by call, newest
 * first: the same answers, pages and snippets. */
static void a_common_word_the_same(void **state)
{
    fixture *f = *state;
    calls_and_line(f, "CA5", "agent", "a common thing, said once here");
    side_exec(f, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)"
                 " INSERT INTO transcripts (call_sid, stream_sid, speaker, seq, start_ms, end_ms,"
                 " text, at) SELECT CASE i % 2 WHEN 0 THEN 'CA2' ELSE 'CA4' END, 'MZ1', 'caller',"
                 " i, i, i, 'so common it is everywhere ' || i, 1 FROM n");
    assert_int_equal(side_int(f, SEARCH_COUNT("common")), 10001);
    cs_call_filter filter = {0};
    assert_int_equal(cs_call_filter_text(&filter, "common"), 1);
    cs_store_query *q = list(f, &filter, 50, "CA5 CA4 CA2");
    assert_snippet(&q->calls[0], "agent", "a [common] thing, said once here");
    cs_store_query_free(q);
    q = list(f, &filter, 2, "CA5 CA4");
    assert_true(q->more);
    q = next_page(f, q, &filter, 2);
    assert_int_equal(q->ncalls, 1);
    assert_string_equal(q->calls[0].sid, "CA2");
    assert_false(q->more);
    cs_store_query_free(q);
    search(f, "common everywhere", "CA4 CA2");
    search(f, "common 9999", "CA4");
    snprintf(filter.statuses[0], sizeof filter.statuses[0], "busy");
    filter.nstatuses = 1;
    expect(f, &filter, "CA2");
}

/* Whatever is typed becomes words or nothing: FTS5 never sees syntax from it. */
static void typed_text_is_never_syntax(void **state)
{
    fixture *f = *state;
    calls_and_line(f, "CA1", "caller", "near the door");
    static const struct {
        const char *typed, *words;
        int n;
        const char *want; /* the calls listed */
    } cases[] = {
        {"\"", "", 0, NULL},
        {"*", "", 0, NULL},
        {"-", "", 0, NULL},
        {"NEAR(", "NEAR", 1, "CA1"},
        {"NEAR(door near, 2)", "NEAR door near 2", 4, ""},
        {"near*", "near*", 1, "CA1"},
        {"ne*ar", "ne ar", 2, ""},
        {"\"door", "door", 1, "CA1"},
        {"do\"or\"", "do or", 2, ""},
        {"text:door", "text door", 2, ""},
        {"call_sid : CA1", "call sid CA1", 3, ""},
        {"^door -near +the", "door near the", 3, "CA1"},
        {"(door) AND {x}", "door AND x", 3, ""},
        {"  door  ", "door", 1, "CA1"},
        {"**door**", "door*", 1, "CA1"},
        {"porte d’entrée", "porte d’entrée", 2, ""}, /* non-ASCII is letters */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_call_filter filter = {0};
        int n = cs_call_filter_text(&filter, cases[i].typed);
        if (n != cases[i].n || strcmp(filter.text, cases[i].words) != 0)
            fail_msg("'%s': %d '%s', want %d '%s'", cases[i].typed, n, filter.text, cases[i].n,
                     cases[i].words);
        if (cases[i].want) expect(f, &filter, cases[i].want);
    }

    /* bounds: bytes, then words */
    cs_call_filter filter = {0};
    char big[CS_CALLS_TEXT_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(cs_call_filter_text(&filter, big), CS_ELIMIT);
    big[CS_CALLS_TEXT_MAX] = '\0';
    assert_int_equal(cs_call_filter_text(&filter, big), 1);
    expect(f, &filter, "");
    char many[CS_CALLS_WORDS_MAX * 3 + 8] = "";
    for (int i = 0; i <= CS_CALLS_WORDS_MAX; i++) strcat(many, "w* ");
    assert_int_equal(cs_call_filter_text(&filter, many), CS_ELIMIT);
    assert_string_equal(filter.text, "");
    many[strlen(many) - 3] = '\0';
    assert_int_equal(cs_call_filter_text(&filter, many), CS_CALLS_WORDS_MAX);
    expect(f, &filter, "");
}

#ifndef CS_TEST_PG
/* Transcripts stored before the index existed are in it once it is built. */
static void the_index_takes_rows_stored_before_it(void **state)
{
    fixture *f = *state;
    calls_and_line(f, "CA2", "caller", "an older line");
    close_store(f);
    side_exec(f, "DROP TRIGGER transcripts_fts_insert; DROP TRIGGER transcripts_fts_update;"
                 "DROP TRIGGER transcripts_fts_delete; DROP TABLE transcripts_fts;"
                 "ALTER TABLE calls DROP COLUMN node; DROP INDEX events_by_call_time;"
                 "DELETE FROM schema_migrations WHERE version >= 10");
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM transcripts"), 1);
    sqlite3_close(f->side);
    f->side = NULL;
    open_store(f, 100);
    search(f, "older", "CA2");
    write_segment_of(f->store, "CA3", "caller", 1, 0, "a newer line", -1, false);
    wait_for(f, (cs_store_stats){.written = 1});
    search(f, "line", "CA3 CA2");
}
#endif

#ifndef CS_TEST_PG
/* Every new connection of this process loses its virtual table modules, FTS5 among them. */
static int drop_modules(sqlite3 *db, char **err, const struct sqlite3_api_routines *api)
{
    (void)err;
    (void)api;
    return sqlite3_drop_modules(db, NULL);
}
#endif

#ifndef CS_TEST_PG
/* A libsqlite3 without FTS5 is refused at start, saying so. */
static void no_fts5_no_start(void **state)
{
    fixture *f = *state;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))drop_modules), SQLITE_OK);
    cs_buf err = CS_BUF_INIT(4096);
    cs_store *s = NULL;
    int rc = cs_store_open(&s, f->url, f->env.mb, 16, f->env.dir, &err);
    sqlite3_reset_auto_extension();
    assert_int_equal(rc, CS_EBACKEND);
    assert_null(s);
    if (!strstr(err.data, "has no FTS5, which transcript search needs"))
        fail_msg("'%s' does not say why", err.data);
    cs_buf_free(&err);
    open_store(f, 16); /* and with it, it opens */
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(each_filter_and_combinations, setup, teardown),
        cmocka_unit_test_setup_teardown(pages_of_a_filtered_list, setup, teardown),
        cmocka_unit_test_setup_teardown(search_finds_lines_of_either_speaker, setup, teardown),
        cmocka_unit_test_setup_teardown(search_sees_refined_finals, setup, teardown),
        cmocka_unit_test_setup_teardown(a_common_word_the_same, setup, teardown),
        cmocka_unit_test_setup_teardown(typed_text_is_never_syntax, setup, teardown),
#ifndef CS_TEST_PG
        cmocka_unit_test_setup_teardown(the_index_takes_rows_stored_before_it, setup, teardown),
#endif
#ifndef CS_TEST_PG
        cmocka_unit_test_setup_teardown(no_fts5_no_start, setup, teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
