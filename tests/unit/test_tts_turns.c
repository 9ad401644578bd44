/* Whose sentence the TTS workers make next: the job due first (tts_int.h), the one queued
 * first among equals, taken out of the list cleanly from any place. */
#include "testutil.h"

#include "tts/tts_int.h"

#define MS 1000000ull /* ns */

static void takes_the_earliest_due(void **state)
{
    (void)state;
    tts_turns q = {0};
    assert_null(tts_turns_take(&q));
    /* Three calls speaking, with 4 s, 1 s and 9 s of audio ahead of now (t = 100 s); a
     * new reply queued now; a call that ran dry 50 ms ago. */
    uint64_t now = 100000 * MS;
    tts_turn a = {.due = now + 4000 * MS}, b = {.due = now + 1000 * MS},
             c = {.due = now + 9000 * MS}, fresh = {.due = now}, dry = {.due = now - 50 * MS};
    tts_turns_push(&q, &a);
    tts_turns_push(&q, &b);
    tts_turns_push(&q, &c);
    tts_turns_push(&q, &fresh);
    tts_turns_push(&q, &dry);
    tts_turn *want[] = {&dry, &fresh, &b, &a, &c};
    for (size_t i = 0; i < 5; i++) assert_ptr_equal(tts_turns_take(&q), want[i]);
    assert_null(tts_turns_take(&q));
    assert_null(q.head);
    assert_null(q.tail);
}

/* Replies queued at the same moment are made in the order they came. */
static void equals_in_order(void **state)
{
    (void)state;
    tts_turns q = {0};
    tts_turn t[6];
    for (int i = 0; i < 6; i++) {
        t[i].due = 5 * MS;
        tts_turns_push(&q, &t[i]);
    }
    for (int i = 0; i < 6; i++) assert_ptr_equal(tts_turns_take(&q), &t[i]);
}

/* A job put back after its sentence goes behind those now due before it: a long reply
 * does not keep the worker while another call waits for its first sentence. */
static void a_long_reply_lets_others_in(void **state)
{
    (void)state;
    tts_turns q = {0};
    tts_turn lng = {.due = 10 * MS}, shrt = {.due = 11 * MS};
    tts_turns_push(&q, &lng);
    tts_turns_push(&q, &shrt);
    assert_ptr_equal(tts_turns_take(&q), &lng);
    lng.due = 12 * MS + 2000 * MS; /* its first sentence made at 12 ms: 2 s of audio */
    tts_turns_push(&q, &lng);
    assert_ptr_equal(tts_turns_take(&q), &shrt);
    assert_ptr_equal(tts_turns_take(&q), &lng);
}

static void removes_from_anywhere(void **state)
{
    (void)state;
    tts_turns q = {0};
    tts_turn t[4] = {{.due = 4}, {.due = 3}, {.due = 2}, {.due = 1}};
    for (int i = 0; i < 4; i++) tts_turns_push(&q, &t[i]);
    assert_true(tts_turns_remove(&q, &t[3])); /* the tail */
    assert_false(tts_turns_remove(&q, &t[3]));
    assert_true(tts_turns_remove(&q, &t[0])); /* the head */
    assert_ptr_equal(q.tail, &t[2]);
    tts_turn late = {.due = 9};
    tts_turns_push(&q, &late);                /* the tail was fixed */
    assert_true(tts_turns_remove(&q, &t[2])); /* the middle */
    assert_ptr_equal(tts_turns_take(&q), &t[1]);
    assert_ptr_equal(tts_turns_take(&q), &late);
    assert_null(tts_turns_take(&q));
    assert_false(tts_turns_remove(&q, &late));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(takes_the_earliest_due),
        cmocka_unit_test(equals_in_order),
        cmocka_unit_test(a_long_reply_lets_others_in),
        cmocka_unit_test(removes_from_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
