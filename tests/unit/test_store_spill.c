/* The store's spill files: records the queue has no room for go to a file, replayed in
 * order once the database takes writes again, by the one process that owns them; what
 * cannot be kept is counted as lost. */
#include "store_harness.h"

#include "core/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#define SPILL_FILE "store-spill.jsonl"

/* Records in a spill file: its lines but the first, which names the file. */
static size_t count_records(const char *path)
{
    size_t len, n = 0;
    uint8_t *text = tu_read_file(path, &len);
    if (!text) return 0;
    assert_true(len > 10 && memcmp(text, "{\"spill\":\"", 10) == 0);
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    free(text);
    return n - 1;
}

static bool spilled_enough(void *data)
{
    fixture *f = data;
    return stats(f).spilled >= f->want.spilled;
}

/* Waits until the spill writer has written `n` records to the file. */
static void wait_spilled(fixture *f, uint64_t n)
{
    f->want.spilled = n;
    if (!tu_run_until(&f->env.loop, spilled_enough, f, TU_WAIT_MS))
        fail_msg("%llu record(s) spilled, not %llu", (unsigned long long)stats(f).spilled,
                 (unsigned long long)n);
}

static bool spill_settled(void *data)
{
    fixture *f = data;
    cs_store_stats st = stats(f);
    return st.spilled + st.lost >= f->want.spilled;
}

/* Waits until `n` records went the spill writer's way: saved or lost. */
static void wait_settled_spill(fixture *f, uint64_t n)
{
    f->want.spilled = n;
    if (!tu_run_until(&f->env.loop, spill_settled, f, TU_WAIT_MS))
        fail_msg("%llu record(s) spilled and %llu lost, not %llu in all",
                 (unsigned long long)stats(f).spilled, (unsigned long long)stats(f).lost,
                 (unsigned long long)n);
}

/* A store that spills what is written next: its writer stuck retrying a held record (an
 * event "held" at 1; see hold_types) and its queue of one taken (an event "queued" at 2).
 * Its spill files in `spill_dir` (NULL: none). */
static void spilling_store(fixture *f, const char *spill_dir)
{
    open_store_in(f, 1, spill_dir);
    hold_types(f, "('held')");
    write_event(f->store, "CA1", "held", 1);
    wait_for(f, (cs_store_stats){.failures = 1});
    write_event(f->store, "CA1", "queued", 2);
}

static void full_queue_spills_and_replays(void **state)
{
    fixture *f = *state;
    open_store(f, 2);
    hold_types(f, "('held')");
    write_event(f->store, "CA1", "held", 1);
    wait_for(f, (cs_store_stats){.failures = 1});
    /* The store thread is busy with the first batch: two records fit in the queue. */
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing", .created_at = 5});
    write_event(f->store, "CA1", "e2", 2);
    write_event(f->store, "CA1", "e3", 3);
    write_stream(f->store, &(cs_stream_row){.sid = "MZ1", .call_sid = "CA1", .started_at = 9});
    write_event(f->store, "CA1", "e4", 4);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed"});
    wait_spilled(f, 4);
    cs_store_stats st = stats(f);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.spilled, 4);
    assert_int_equal(st.lost, 0);
    assert_int_equal(count_records(tu_path_in(&f->env, SPILL_FILE)), 4);

    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 7, .replayed = 4});
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE)));
    cs_store_query *q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "completed");
    assert_int_equal(q->calls[0].created_at, 5);
    assert_int_equal(q->nstreams, 1);
    static const char *const types[] = {"held", "e2", "e3", "e4"};
    assert_event_types(q, types, 4);
    cs_store_query_free(q);
}

static void spilled_records_keep_their_order(void **state)
{
    fixture *f = *state;
    open_store(f, 1);
    hold_types(f, "('h0'), ('h1')");
    write_event(f->store, "CA1", "h0", 1);
    wait_for(f, (cs_store_stats){.failures = 1});
    write_event(f->store, "CA1", "h1", 2);                                       /* queued */
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress"}); /* spilled */
    wait_spilled(f, 1);

    /* The first batch lands; the store thread takes the queued record and is held again,
     * so the queue has room while the spill file still waits. */
    side_exec(f, "DELETE FROM hold WHERE type = 'h0'");
    wait_for(f, (cs_store_stats){.written = 1});
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed"});
    write_event(f->store, "CA1", "last", 3);

    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 5});
    cs_store_query *q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "completed");
    static const char *const types[] = {"h0", "h1", "last"};
    assert_event_types(q, types, 3);
    cs_store_query_free(q);
    cs_store_stats st = stats(f);
    assert_int_equal(st.spilled, 3);
    assert_int_equal(st.replayed, 3);
}

/* Refined finals go the way of every record: one spilled after its fast final that the
 * queue took, and a fast and a refined final both spilled, each end up as one row with
 * the refined text once the spill file is replayed. */
static void refined_finals_replace_fast_ones_through_the_spill_file(void **state)
{
    fixture *f = *state;
    open_store(f, 2);
    hold_types(f, "('held')");
    write_event(f->store, "CA1", "held", 1);
    wait_for(f, (cs_store_stats){.failures = 1});
    write_segment(f->store, "caller", 1, 1000, "fast one", -1, false); /* queued */
    write_event(f->store, "CA1", "queued", 2);                         /* queued: full */
    write_segment(f->store, "caller", 1, 1000, "refined one", -1, true);
    write_segment(f->store, "caller", 2, 3000, "fast two", -1, false);
    write_segment(f->store, "caller", 2, 3000, "refined two", -1, true);
    wait_spilled(f, 3);
    assert_int_equal(count_records(tu_path_in(&f->env, SPILL_FILE)), 3);

    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 6, .replayed = 3});
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM transcripts"), 2);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM transcripts WHERE refined = 1 AND"
                                 " text LIKE 'refined %'"),
                     2);
    cs_store_query *q = query(CS_Q_TRANSCRIPT, "CA1", f);
    ask(f, q);
    assert_int_equal(q->nsegments, 2);
    assert_string_equal(q->segments[0].text, "refined one");
    assert_string_equal(q->segments[1].text, "refined two");
    assert_int_equal(q->segments[1].refined, 1);
    cs_store_query_free(q);
}

static void close_writes_what_is_queued_and_spilled(void **state)
{
    fixture *f = *state;
    spilling_store(f, f->env.dir);
    write_event(f->store, "CA1", "e3", 3);
    write_event(f->store, "CA1", "e4", 4);
    wait_spilled(f, 2);
    side_exec(f, "DELETE FROM hold");
    close_store(f);
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE)));

    open_store(f, 16);
    cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
    ask(f, q);
    static const char *const types[] = {"held", "queued", "e3", "e4"};
    assert_event_types(q, types, 4);
    cs_store_query_free(q);
}

static void write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    assert_true(fputs(text, file) >= 0);
    assert_int_equal(fclose(file), 0);
}

/* Taken for replay when the process died, then spilled after it, with lines that cannot
 * be written: not JSON, without their keys, over the line limit (older builds wrote
 * them), and the last one cut by the crash. Each is a record lost, counted. */
static void spill_of_a_crashed_run_is_replayed_at_open(void **state)
{
    fixture *f = *state;
    write_text(tu_path_in(&f->env, SPILL_FILE ".replay"),
               "{\"kind\":1,\"sid\":\"CA1\",\"status\":\"ringing\",\"created_at\":1000}\n"
               "{\"kind\":3,\"call_sid\":\"CA1\",\"type\":\"first\",\"detail\":\"{}\",\"at\":1}\n");
    const char *first = "{\"kind\":3,\"call_sid\":\"CA1\",\"stream_sid\":\"MZ1\",\"type\":"
                        "\"second\",\"at\":2}\n";
    size_t over = CS_STORE_SPILL_LINE_MAX + 100;
    char *text = malloc(over + 1024);
    assert_non_null(text);
    int n = snprintf(text, 1024,
                     "%snot json\n{\"kind\":9}\n{\"kind\":3,\"type\":\"no call\"}\n[1]\n", first);
    memset(text + n, 'x', over);
    n += (int)over;
    snprintf(text + n, 1024,
             "\n{\"kind\":2,\"sid\":\"MZ1\",\"call_sid\":\"CA1\",\"mode\":\"two-way\","
             "\"started_at\":5}\n"
             "{\"kind\":1,\"sid\":\"CA1\",\"status\":\"completed\",\"ended_at\":3000}\n"
             "{\"kind\":3,\"call_sid\":\"CA1\",\"ty");
    write_text(tu_path_in(&f->env, SPILL_FILE), text);
    free(text);
    open_store(f, 16);
    cs_store_query *q = ask_call(f, "CA1");
    const cs_call_row *c = &q->calls[0];
    assert_string_equal(c->status, "completed");
    assert_int_equal(c->created_at, 1000);
    assert_int_equal(c->ended_at, 3000);
    assert_int_equal(q->nstreams, 1);
    assert_string_equal(q->streams[0].mode, "two-way");
    static const char *const types[] = {"first", "second"};
    assert_event_types(q, types, 2);
    assert_string_equal(q->events[1].stream_sid, "MZ1");
    cs_store_query_free(q);

    cs_store_stats st = stats(f);
    assert_int_equal(st.replayed, 5);
    assert_int_equal(st.written, 5);
    assert_int_equal(st.lost, 6); /* 4 unreadable lines, 2 records without their keys */
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE)));
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE ".replay")));
    char said[256];
    snprintf(said, sizeof said, "an unreadable line at offset %zu of", strlen(first));
    assert_int_equal(tu_log_contains(said), 1);
    snprintf(said, sizeof said, "4 line(s) of %s could not be read (the first at offset %zu)",
             tu_path_in(&f->env, SPILL_FILE ".replay"), strlen(first));
    assert_int_equal(tu_log_contains(said), 1);
    assert_int_equal(tu_log_contains("without its keys"), 2);
    assert_true(tu_log_contains("spilled record(s) written"));
}

/* A database still failing at shutdown does not hold the process: after
 * CS_STORE_CLOSE_WAIT_MS what is left goes to the replay file, in order, written at the
 * next open (a call keeps the run it started in). */
static void close_gives_up_on_a_failing_database(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing"});
    wait_for(f, (cs_store_stats){.written = 1});
    hold_types(f, "('held')");
    write_event(f->store, "CA1", "held", 1);
    wait_for(f, (cs_store_stats){.failures = 1});
    write_event(f->store, "CA1", "after", 2); /* a later batch, kept behind it */
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "in-progress", .started_at = 5});
    char run[64];
    snprintf(run, sizeof run, "%s", cs_store_run(f->store));
    cs_store_query *waiting = query(CS_Q_EVENTS, "CA1", f);
    f->answers = 0;
    cs_store_query_run_in_order(f->store, waiting);
    close_store(f);
    assert_int_equal(f->answers, 1);
    assert_int_equal(waiting->status, CS_ECLOSED);
    assert_true(waiting->behind); /* the writes before it did not make it */
    cs_store_query_free(waiting);
    assert_true(tu_log_contains("still fails at shutdown"));
    assert_int_equal(count_records(tu_path_in(&f->env, SPILL_FILE ".replay")), 3);

    side_exec(f, "DELETE FROM hold");
    open_store(f, 100);
    cs_store_query *q = ask_call(f, "CA1");
    static const char *const types[] = {"held", "after"};
    assert_event_types(q, types, 2);
    cs_store_query_free(q);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM calls WHERE sid = 'CA2' AND run = '%s'", run);
    assert_int_equal(side_int(f, sql), 1);
    assert_string_not_equal(cs_store_run(f->store), run);
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE ".replay")));
}

/* A call's every field survives the spill file: the record's layout is also what the
 * database is written from, so none can be left out of one and not the other. */
static void every_field_of_a_call_spills(void **state)
{
    fixture *f = *state;
    spilling_store(f, f->env.dir);
    cs_store_rec *rec = cs_store_rec_new(CS_REC_CALL);
    rec->call = (cs_call_row){.sid = "CA2",
                              .account_sid = "AC1",
                              .from = "+1",
                              .to = "+2",
                              .direction = "inbound",
                              .status = "completed",
                              .params = "{}",
                              .summary = "{\"summary\":\"s\"}",
                              .summary_status = "failed",
                              .summary_reason = "why",
                              .recording = "/r.wav",
                              .transcription = "on",
                              .node = "n1",
                              .created_at = 1,
                              .started_at = 2,
                              .ended_at = 3,
                              .updated_at = 4,
                              .recording_ms = 5};
    cs_store_write(f->store, rec);
    wait_spilled(f, 1);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.replayed = 1});
    cs_store_query *q = ask_call(f, "CA2");
    const cs_call_row *c = &q->calls[0];
    const char *got[] = {c->account_sid, c->from,           c->to,
                         c->direction,   c->status,         c->params,
                         c->summary,     c->summary_status, c->summary_reason,
                         c->recording,   c->transcription,  c->node};
    const char *want[] = {
        "AC1",    "+1",  "+2",     "inbound", "completed", "{}", "{\"summary\":\"s\"}",
        "failed", "why", "/r.wav", "on",      "n1"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        if (!got[i] || strcmp(got[i], want[i]) != 0)
            fail_msg("field %zu: '%s', not '%s'", i, got[i] ? got[i] : "(null)", want[i]);
    }
    assert_int_equal(c->created_at, 1);
    assert_int_equal(c->started_at, 2);
    assert_int_equal(c->ended_at, 3);
    assert_int_equal(c->updated_at, 4);
    assert_int_equal(c->recording_ms, 5);
    cs_store_query_free(q);
}

/* Every kind of record survives the spill file. */
static void access_records_spill_and_replay(void **state)
{
    fixture *f = *state;
    spilling_store(f, f->env.dir);
    write_rec(f->store, CS_REC_USER, fill_user);
    write_rec(f->store, CS_REC_SESSION, fill_session);
    write_rec(f->store, CS_REC_TOKEN, fill_token);
    wait_spilled(f, 3);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.replayed = 3});
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM users WHERE name = 'ann'"), 1);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM sessions WHERE user_name = 'ann'"), 1);
    assert_int_equal(side_int(f, "SELECT password_at FROM sessions WHERE token_hash = 's1'"), 7);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM api_tokens WHERE token_hash = 't1'"), 1);
}

static void spill_failure_is_reported(void **state)
{
    fixture *f = *state;
    spilling_store(f, tu_path_in(&f->env, "missing"));
    for (int i = 3; i < 6; i++) write_event(f->store, "CA1", "lost", i);
    wait_settled_spill(f, 3);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 2});
    assert_int_equal(stats(f).spilled, 0);
    assert_int_equal(stats(f).lost, 3);
    assert_int_equal(tu_log_contains("cannot spill to"), 1); /* once for the burst */
    assert_true(tu_log_contains("No such file or directory"));
    close_store(f);
    assert_int_equal(tu_log_contains("failed until the store closed; 3 record(s) lost since"), 1);
}

static void write_lines(const char *path, const char *header, const char *type, int from, int to,
                        long *offset_after, int mark)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    if (header) fprintf(file, "{\"spill\":\"%s\"}\n", header);
    for (int i = from; i <= to; i++) {
        fprintf(file, "{\"kind\":3,\"call_sid\":\"CA1\",\"type\":\"%s%d\",\"at\":%d}\n", type, i,
                i);
        if (i == mark) *offset_after = ftell(file);
    }
    assert_int_equal(fclose(file), 0);
}

/* A crash in the middle of a replay: the records its committed batches wrote are not
 * written again, and nothing is skipped or reordered. */
static void replay_resumes_where_a_crash_left_it(void **state)
{
    fixture *f = *state;
    open_store(f, 16);
    close_store(f);
    long off = 0;
    write_lines(tu_path_in(&f->env, SPILL_FILE ".replay"), "0123abcd", "e", 1, 5, &off, 2);
    write_lines(tu_path_in(&f->env, SPILL_FILE), NULL, "e", 6, 7, NULL, 0);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO events (call_sid, at, type) VALUES ('CA1', 1, 'e1'), ('CA1', 2, 'e2');"
             "INSERT INTO store_meta VALUES ('spill_replay', '0123abcd %ld')",
             off);
    side_exec(f, sql);
    open_store(f, 16);
    cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
    ask(f, q);
    static const char *const types[] = {"e1", "e2", "e3", "e4", "e5", "e6", "e7"};
    assert_event_types(q, types, 7);
    cs_store_query_free(q);
    assert_int_equal(stats(f).replayed, 5);
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE ".replay")));
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE)));
}

static void replay_goes_in_bounded_batches(void **state)
{
    fixture *f = *state;
    int n = CS_STORE_BATCH_MAX * 5 / 2;
    long end = 0;
    write_lines(tu_path_in(&f->env, SPILL_FILE), "feed", "r", 1, n, &end, n);
    open_store(f, 16);
    wait_for(f, (cs_store_stats){.replayed = (uint64_t)n});
    cs_store_stats st = stats(f);
    assert_int_equal(st.written, n);
    assert_int_equal(st.batches, 3);
    char want[64];
    snprintf(want, sizeof want, "SELECT COUNT(*) FROM store_meta WHERE value = 'feed %ld'", end);
    assert_int_equal(side_int(f, want), 1);
    assert_int_equal(side_int(f, "SELECT COUNT(DISTINCT type) FROM events"), n);
}

static bool drain(void *data)
{
    fixture *f = data;
    char buf[65536];
    while (read(f->side_fd, buf, sizeof buf) > 0) {
    }
    return spill_settled(f);
}

static bool spill_writer_took_all(const cs_store_stats *st)
{
    return st->spill_queued == 0;
}

/* The spill writer's queue is bounded too: with the database failing and the spill file
 * not taking anything (a FIFO nobody reads blocks the writer's open), what comes past it
 * is lost, counted, and said once, with a summary when records are taken again. */
static void a_full_spill_queue_loses_and_counts(void **state)
{
    fixture *f = *state;
    spilling_store(f, f->env.dir);
    snprintf(f->fifo, sizeof f->fifo, "%s", tu_path_in(&f->env, SPILL_FILE));
    assert_int_equal(mkfifo(f->fifo, 0600), 0);
    write_event(f->store, "CA1", "e", 3); /* the spill writer takes it, and blocks */
    wait_stats(f, spill_writer_took_all, "the spill writer took its first record");
    /* CS_STORE_SPILL_QUEUE_MIN more fit in its queue: the rest is lost. */
    unsigned n = CS_STORE_SPILL_QUEUE_MIN + 100;
    for (unsigned i = 0; i < n; i++) write_event(f->store, "CA1", "e", 4 + i);
    cs_store_stats st = stats(f);
    assert_int_equal(st.lost, 100);
    assert_int_equal(st.spill_queued, CS_STORE_SPILL_QUEUE_MIN);
    assert_int_equal(tu_log_contains("are lost until the spill file catches up"), 1);
    f->side_fd = open(f->fifo, O_RDONLY | O_NONBLOCK);
    assert_true(f->side_fd >= 0);
    f->want.spilled = n + 1; /* all the spill writer was given, saved or lost */
    assert_true(tu_run_until(&f->env.loop, drain, f, TU_WAIT_MS));
    assert_int_equal(stats(f).spilled + stats(f).lost, n + 1);
    assert_int_equal(unlink(f->fifo), 0);
    f->fifo[0] = '\0';
    close(f->side_fd);
    write_event(f->store, "CA1", "after", 9999); /* taken again */
    assert_int_equal(tu_log_contains("records are taken again; 100 lost"), 1);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 2});
}

/* `callstream user …` beside a running gateway opens the store too: only the process
 * holding the spill lock replays the spill files. */
static void spill_files_have_one_owner(void **state)
{
    fixture *f = *state;
    write_lines(tu_path_in(&f->env, SPILL_FILE), "cafe", "s", 1, 2, NULL, 0);
    int lock = open(tu_path_in(&f->env, "store-spill.lock"), O_RDWR | O_CREAT, 0600);
    assert_true(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0);
    open_store(f, 16);
    cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
    ask(f, q);
    assert_int_equal(q->nevents, 0);
    cs_store_query_free(q);
    assert_true(file_exists(tu_path_in(&f->env, SPILL_FILE)));
    assert_true(tu_log_contains("another process owns the spill files"));
    close_store(f);
    close(lock);
    open_store(f, 16);
    q = query(CS_Q_EVENTS, "CA1", f);
    ask(f, q);
    static const char *const types[] = {"s1", "s2"};
    assert_event_types(q, types, 2);
    cs_store_query_free(q);
}

/* The length of the last line of a file (with its newline), and whether it ends with one. */
static long last_line(const char *path, bool *whole)
{
    size_t len;
    char *text = (char *)tu_read_file(path, &len);
    assert_non_null(text);
    assert_true(len > 1);
    *whole = text[len - 1] == '\n';
    size_t start = len - 1;
    while (start > 0 && text[start - 1] != '\n') start--;
    free(text);
    return (long)(len - start);
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* The events of CA1 by their `at`, in the order they were stored. */
static void assert_events_at(fixture *f, const char *want)
{
    char buf[4096];
    const char *got = side_text(f,
                                "SELECT " STRING_AGG("at") " FROM (SELECT at FROM events"
                                                           " WHERE call_sid = 'CA1' ORDER BY id) e",
                                buf, sizeof buf);
    if (!got || strcmp(got, want) != 0) fail_msg("events at %s, not %s", got, want);
}

/* The disk fills while records spill (a file-size limit fails writes as a full disk
 * does, short first): the file keeps whole lines only, the record cut short is taken back
 * off, and what was saved and lost is counted exactly; the first failure and the burst's
 * end are logged once each. */
static void a_full_disk_keeps_whole_lines_and_counts_exactly(void **state)
{
    fixture *f = *state;
    spilling_store(f, f->env.dir);
    for (int at = 20; at < 25; at++) write_event(f->store, "CA1", "e", at);
    wait_spilled(f, 5);
    const char *path = tu_path_in(&f->env, SPILL_FILE);
    bool whole;
    long size = file_size(path), line = last_line(path, &whole);

    /* Room for one more record and half of the next. */
    tu_limit_file_size(size + line + line / 2);
    for (int at = 25; at < 28; at++) write_event(f->store, "CA1", "e", at);
    wait_settled_spill(f, 8);
    cs_store_stats st = stats(f);
    assert_int_equal(st.spilled, 6);
    assert_int_equal(st.lost, 2);
    assert_int_equal(file_size(path), size + line);
    assert_int_equal(last_line(path, &whole), line);
    assert_true(whole);
    assert_int_equal(tu_log_contains("cannot spill to"), 1);
    assert_true(tu_log_contains("File too large"));

    /* Room again: whole lines follow, and the burst's summary. */
    tu_limit_file_size(-1);
    for (int at = 28; at < 30; at++) write_event(f->store, "CA1", "e", at);
    wait_spilled(f, 8);
    assert_int_equal(file_size(path), size + 3 * line);
    assert_int_equal(count_records(path), 8);
    assert_int_equal(tu_log_contains("works again; 2 record(s) lost since"), 1);
    assert_int_equal(tu_log_contains("cannot spill to"), 1);

    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 10, .replayed = 8});
    assert_events_at(f, "1,2,20,21,22,23,24,25,28,29");
    st = stats(f);
    assert_int_equal(st.lost, 2);
    assert_int_equal(st.written + st.lost, 12);
}

/* A record whose line would be over CS_STORE_SPILL_LINE_MAX (replay could not read it
 * back) is refused when it spills: lost, counted and said, the others kept. */
static void a_record_too_long_for_the_spill_file_is_refused(void **state)
{
    fixture *f = *state;
    spilling_store(f, f->env.dir);
    cs_store_rec *rec = cs_store_rec_new(CS_REC_EVENT);
    char *detail = cs_pool_alloc(&rec->pool, CS_STORE_SPILL_LINE_MAX);
    assert_non_null(detail);
    memset(detail, 'x', CS_STORE_SPILL_LINE_MAX - 1);
    detail[CS_STORE_SPILL_LINE_MAX - 1] = '\0';
    rec->event = (cs_event_row){.call_sid = "CA1", .type = "big", .detail = detail, .at = 12};
    cs_store_write(f->store, rec);
    write_event(f->store, "CA1", "after", 13);
    wait_settled_spill(f, 2);
    assert_int_equal(stats(f).lost, 1);
    assert_int_equal(stats(f).spilled, 1);
    assert_int_equal(tu_log_contains("is over the spill file's limit"), 1);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 3, .replayed = 1});
    assert_events_at(f, "1,2,13");
    assert_int_equal(stats(f).lost, 1);
}

/* A spill file whose last line a crash cut short is taken for replay while the database
 * fails, and still fails at shutdown: the records kept for the next start go on a line
 * of their own, not glued to the cut one, which alone is lost. */
static void records_kept_at_shutdown_do_not_continue_a_cut_line(void **state)
{
    fixture *f = *state;
    open_store(f, 16);
    close_store(f);
    write_text(tu_path_in(&f->env, SPILL_FILE),
               "{\"spill\":\"c0ffee\"}\n"
               "{\"kind\":3,\"call_sid\":\"CA1\",\"type\":\"held\",\"at\":1}\n"
               "{\"kind\":3,\"call_sid\":\"CA1\",\"ty");
    hold_types(f, "('held')");
    open_store(f, 16);
    wait_for(f, (cs_store_stats){.failures = 1}); /* replaying it, behind the writes now */
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed"});
    close_store(f);
    assert_true(tu_log_contains("1 record(s) kept in"));

    side_exec(f, "DELETE FROM hold");
    open_store(f, 16);
    cs_store_query *q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "completed");
    static const char *const types[] = {"held"};
    assert_event_types(q, types, 1);
    cs_store_query_free(q);
    assert_int_equal(stats(f).lost, 1);
    assert_int_equal(stats(f).replayed, 2);
}

/* A replay file there already when the spill file is taken (one left by an older build's
 * command) is replayed first, never replaced by the rename. */
static void a_replay_file_found_is_replayed_not_replaced(void **state)
{
    fixture *f = *state;
    spilling_store(f, f->env.dir);
    write_event(f->store, "CA1", "s", 5);
    write_event(f->store, "CA1", "s", 6);
    wait_spilled(f, 2);
    write_lines(tu_path_in(&f->env, SPILL_FILE ".replay"), "0ld", "r", 3, 4, NULL, 0);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 6, .replayed = 4});
    assert_events_at(f, "1,2,3,4,5,6");
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE ".replay")));
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE)));
}

/* A process that cannot take the spill files' lock (another holds it) never writes them:
 * what its full queue cannot take is lost, and said so; once the lock is free it takes
 * the files and spills. */
static void only_the_owner_writes_the_spill_files(void **state)
{
    fixture *f = *state;
    int lock = open(tu_path_in(&f->env, "store-spill.lock"), O_RDWR | O_CREAT, 0600);
    assert_true(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0);
    spilling_store(f, f->env.dir);
    write_event(f->store, "CA1", "lost", 3);
    wait_settled_spill(f, 1);
    assert_int_equal(stats(f).lost, 1);
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE)));
    assert_int_equal(tu_log_contains("another process owns the spill files"), 2); /* open, loss */

    close(lock);
    write_event(f->store, "CA1", "spilled", 4);
    wait_spilled(f, 1);
    assert_int_equal(tu_log_contains("works again; 1 record(s) lost since"), 1);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 3, .replayed = 1});
    assert_events_at(f, "1,2,4");
}

/* ... nor replays them, though it takes records again once the database does: the
 * replay file is the other process's, which may be replaying it at that moment. */
static void another_process_replay_file_is_left_alone(void **state)
{
    fixture *f = *state;
    int lock = open(tu_path_in(&f->env, "store-spill.lock"), O_RDWR | O_CREAT, 0600);
    assert_true(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0);
    spilling_store(f, f->env.dir);
    write_lines(tu_path_in(&f->env, SPILL_FILE ".replay"), "0th3r", "theirs", 5, 6, NULL, 0);
    write_event(f->store, "CA1", "lost", 3);
    wait_settled_spill(f, 1);
    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 2});
    write_event(f->store, "CA1", "queued", 4);
    wait_for(f, (cs_store_stats){.written = 3});
    assert_events_at(f, "1,2,4");
    assert_int_equal(stats(f).replayed, 0);
    assert_true(file_exists(tu_path_in(&f->env, SPILL_FILE ".replay")));
    close_store(f);
    close(lock);
}

/* A number in a spill line past what the field holds (a damaged file) counts as missing,
 * not as whatever the conversion makes of it. */
static void a_wild_number_in_a_spill_line_counts_as_missing(void **state)
{
    fixture *f = *state;
    write_text(tu_path_in(&f->env, SPILL_FILE ".replay"),
               "{\"kind\":3,\"call_sid\":\"CA1\",\"type\":\"a\",\"at\":7}\n"
               "{\"kind\":3,\"call_sid\":\"CA1\",\"type\":\"b\",\"at\":1e300}\n"
               "{\"kind\":3,\"call_sid\":\"CA1\",\"type\":\"c\",\"at\":-1e19}\n");
    open_store(f, 16);
    wait_for(f, (cs_store_stats){.written = 3, .replayed = 3});
    char sql[256];
    int64_t now = cs_wall_ms();
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM events WHERE call_sid = 'CA1' AND type IN ('b', 'c')"
             " AND at BETWEEN %lld AND %lld",
             (long long)(now - 3600000), (long long)(now + 3600000));
    assert_int_equal(side_int(f, sql), 2); /* stamped when written, as if missing */
}

/* A store opened without a spill directory (a command that must know whether its write
 * was committed) never spills: what its full queue cannot take is lost, and an in-order
 * query after its writes says whether they made it. */
static void without_a_spill_directory_nothing_spills(void **state)
{
    fixture *f = *state;
    spilling_store(f, NULL);
    write_event(f->store, "CA1", "lost", 3);
    wait_settled_spill(f, 1);
    assert_int_equal(stats(f).lost, 1);
    assert_int_equal(tu_log_contains("this process keeps no spill files"), 1);
    cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
    f->answers = 0;
    cs_store_query_run_in_order(f->store, q);
    side_exec(f, "DELETE FROM hold");
    assert_true(tu_run_until(&f->env.loop, answered, f, TU_WAIT_MS));
    assert_int_equal(q->status, 0);
    assert_false(q->behind);
    static const char *const types[] = {"held", "queued"};
    assert_event_types(q, types, 2);
    cs_store_query_free(q);
    close_store(f);
    assert_false(file_exists(tu_path_in(&f->env, SPILL_FILE)));
    assert_false(file_exists(tu_path_in(&f->env, "store-spill.lock")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(full_queue_spills_and_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(spilled_records_keep_their_order, setup, teardown),
        cmocka_unit_test_setup_teardown(refined_finals_replace_fast_ones_through_the_spill_file,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(close_writes_what_is_queued_and_spilled, setup, teardown),
        cmocka_unit_test_setup_teardown(spill_of_a_crashed_run_is_replayed_at_open, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(close_gives_up_on_a_failing_database, setup, teardown),
        cmocka_unit_test_setup_teardown(every_field_of_a_call_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(access_records_spill_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(spill_failure_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(replay_resumes_where_a_crash_left_it, setup, teardown),
        cmocka_unit_test_setup_teardown(replay_goes_in_bounded_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_spill_queue_loses_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(spill_files_have_one_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_disk_keeps_whole_lines_and_counts_exactly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_record_too_long_for_the_spill_file_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(records_kept_at_shutdown_do_not_continue_a_cut_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_replay_file_found_is_replayed_not_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(only_the_owner_writes_the_spill_files, setup, teardown),
        cmocka_unit_test_setup_teardown(another_process_replay_file_is_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(a_wild_number_in_a_spill_line_counts_as_missing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(without_a_spill_directory_nothing_spills, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
