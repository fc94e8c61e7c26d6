/* Splicing in the kernel (src/egress/splice.c), on real loopback TCP
 * connections: a client C connected to the relay's side A, and the relay's
 * upstream socket U connected to a server S. The program must give bytes to
 * the relay until it is asked and caught up, then hand them from A to U and
 * from U to A, counted, in order, copying a head when asked, and hand a
 * direction back at the queue limit. Needs root (BPF); as anyone else the
 * tests are skipped, saying so. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "egress/internal.h"

typedef struct pair {
    int c, a, u, s;
} pair_t;

static egress__splice_t *sp;

static int listener(uint16_t *port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 4), 0);
    socklen_t len = sizeof sa;
    getsockname(l, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return l;
}

static void connect_pair(int *client, int *server)
{
    uint16_t port;
    int l = listener(&port);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
    int s = accept(l, NULL, NULL);
    assert_true(s >= 0);
    close(l);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *client = c;
    *server = s;
}

static pair_t make(void)
{
    pair_t p;
    connect_pair(&p.c, &p.a);
    connect_pair(&p.u, &p.s);
    return p;
}

static void drop(pair_t *p, int k)
{
    if (k >= 0)
        egress__splice_remove(sp, k);
    close(p->c);
    close(p->a);
    close(p->u);
    close(p->s);
}

static void send_all(int fd, const void *buf, size_t len)
{
    const char *b = buf;
    while (len) {
        ssize_t n = send(fd, b, len, 0);
        assert_true(n > 0);
        b += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes, waiting at most 5 s for each part. */
static void recv_exact(int fd, void *buf, size_t len)
{
    char *b = buf;
    while (len) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        ssize_t n = recv(fd, b, len, 0);
        assert_true(n > 0);
        b += n;
        len -= (size_t)n;
    }
}

/* Nothing readable on fd within ms. */
static bool quiet(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, ms) == 0;
}

static volatile uint64_t *field(int k, int side, size_t off)
{
    return (volatile uint64_t *)((char *)egress__splice_state(sp, k, side) + off);
}
#define F(k, side, name) (*field(k, side, offsetof(egress__splice_state_t, name)))

static int setup(void **state)
{
    char why[160];
    sp = egress__splice_new(why, sizeof why);
    if (!sp && geteuid() != 0) {
        fprintf(stderr, "skipped: BPF needs root (%s)\n", why);
        return 0;
    }
    if (!sp)
        fprintf(stderr, "the kernel refused the sockmap: %s\n", why);
    return sp ? 0 : -1;
}

static int teardown(void **state)
{
    egress__splice_free(sp);
    return 0;
}

#define NEED_BPF() \
    do { \
        if (!sp) \
            skip(); \
    } while (0)

static void test_bytes_go_to_the_relay_until_it_asks(void **state)
{
    NEED_BPF();
    pair_t p = make();
    /* Sent before the pair joined the map: counted all the same. */
    send_all(p.c, "early", 5);
    usleep(20000);
    int k = egress__splice_add(sp, p.a, p.u);
    assert_true(k >= 0);
    assert_int_equal(F(k, 0, passed), 5);
    char buf[16];
    recv_exact(p.a, buf, 5);
    assert_memory_equal(buf, "early", 5);
    send_all(p.c, "more", 4);
    recv_exact(p.a, buf, 4);
    assert_memory_equal(buf, "more", 4);
    assert_int_equal(F(k, 0, passed), 9);
    assert_int_equal(F(k, 0, redirected), 0);
    assert_true(quiet(p.s, 50));
    drop(&p, k);
}

static void test_asked_and_caught_up_the_kernel_hands_bytes_over_in_order(void **state)
{
    NEED_BPF();
    pair_t p = make();
    int k = egress__splice_add(sp, p.a, p.u);
    assert_true(k >= 0);
    char buf[64];
    /* The relay's exchange: it reads "GET" and writes it on. */
    send_all(p.c, "one;", 4);
    recv_exact(p.a, buf, 4);
    uint32_t slot;
    while (egress__splice_next_event(sp, &slot))
        ;
    F(k, 0, want) = 1; /* asked, but not caught up: consumed is 0 */
    send_all(p.c, "two;", 4);
    recv_exact(p.a, buf, 4);
    assert_memory_equal(buf, "two;", 4);
    assert_int_equal(F(k, 0, redirected), 0);
    /* Passed while asked: the relay hears of it, once per segment. */
    assert_int_equal(egress__splice_next_event(sp, &slot), 1);
    assert_int_equal(slot, 2 * k);
    assert_int_equal(egress__splice_next_event(sp, &slot), 0);
    send_all(p.u, "one;two;", 8);
    F(k, 0, consumed) = 8;
    /* Caught up: from here the kernel hands the bytes to U. */
    send_all(p.c, "three;", 6);
    recv_exact(p.s, buf, 14);
    assert_memory_equal(buf, "one;two;three;", 14);
    assert_int_equal(F(k, 0, redirected), 6);
    assert_int_equal(F(k, 0, redirecting), 1);
    assert_true(quiet(p.a, 50));
    /* And the other way, with the head of the answer copied once. */
    F(k, 1, want) = 1;
    F(k, 1, capture) = 1;
    send_all(p.s, "HTTP/1.1 204 No Content\r\n\r\n", 27);
    recv_exact(p.c, buf, 27);
    assert_memory_equal(buf, "HTTP/1.1 204 No Content\r\n\r\n", 27);
    assert_int_equal(F(k, 1, capture), 0);
    assert_int_equal(F(k, 1, head_len), 27);
    const egress__splice_state_t *st = egress__splice_state(sp, k, 1);
    assert_int_equal(egress__sniff_http_status(st->head, st->head_len), 204);
    send_all(p.s, "xyz", 3);
    recv_exact(p.c, buf, 3);
    assert_int_equal(F(k, 1, head_len), 27); /* copied once */
    assert_int_equal(F(k, 1, redirected), 30);
    /* Handed back: the relay gets the bytes again. */
    F(k, 0, want) = 0;
    send_all(p.c, "four", 4);
    recv_exact(p.a, buf, 4);
    assert_memory_equal(buf, "four", 4);
    assert_int_equal(F(k, 0, redirecting), 0);
    drop(&p, k);
}

static void test_what_a_socket_took_is_counted_from_a_measured_offset(void **state)
{
    NEED_BPF();
    pair_t p = make();
    int k = egress__splice_add(sp, p.a, p.u);
    assert_true(k >= 0);
    uint64_t t0, t1;
    bool closed;
    assert_int_equal(egress__splice_taken(p.u, &t0, &closed), 0);
    assert_false(closed);
    send_all(p.u, "12345", 5);
    F(k, 0, want) = 1;
    send_all(p.c, "678", 3);
    char buf[8];
    recv_exact(p.s, buf, 8);
    assert_int_equal(egress__splice_taken(p.u, &t1, &closed), 0);
    assert_int_equal(t1 - t0, 8);
    drop(&p, k);
}

static void test_the_queue_limit_hands_the_direction_back(void **state)
{
    NEED_BPF();
    pair_t p = make();
    int k = egress__splice_add(sp, p.a, p.u);
    assert_true(k >= 0);
    int rcv = 4096;
    setsockopt(p.s, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    F(k, 0, want) = 1;
    /* S reads nothing: U's TCP takes little, the kernel's queue grows to
     * the limit and the program stops there. */
    size_t chunk = 1 << 16, sent = 0;
    char *buf = calloc(1, chunk);
    int fl = fcntl(p.c, F_GETFL);
    fcntl(p.c, F_SETFL, fl | O_NONBLOCK);
    for (int idle = 0; idle < 50 && F(k, 0, want);) {
        ssize_t n = send(p.c, buf, chunk, 0);
        if (n > 0) {
            sent += (size_t)n;
            idle = 0;
        } else {
            usleep(10000);
            idle++;
        }
    }
    assert_int_equal(F(k, 0, want), 0);
    uint32_t slot;
    assert_int_equal(egress__splice_next_event(sp, &slot), 1); /* the limit met */
    assert_int_equal(slot, 2 * k);
    while (egress__splice_next_event(sp, &slot))
        ;
    assert_true(F(k, 0, redirected) <= EGRESS__SPLICE_BACKLOG_MAX);
    assert_true(F(k, 0, redirected) > EGRESS__SPLICE_BACKLOG_MAX / 2);
    /* What came after is the relay's, and no more than the socket holds. */
    usleep(50000);
    assert_true(F(k, 0, passed) > 0);
    assert_true(sent - F(k, 0, redirected) < (size_t)16 << 20);
    free(buf);
    drop(&p, k);
}

static void test_an_end_stays_with_its_socket(void **state)
{
    NEED_BPF();
    pair_t p = make();
    int k = egress__splice_add(sp, p.a, p.u);
    assert_true(k >= 0);
    F(k, 0, want) = 1;
    send_all(p.c, "last", 4);
    char buf[8];
    recv_exact(p.s, buf, 4);
    shutdown(p.c, SHUT_WR);
    /* The relay reads the end on A; U is not broken by it. */
    struct pollfd pf = {.fd = p.a, .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 5000), 1);
    assert_int_equal(recv(p.a, buf, sizeof buf, 0), 0);
    usleep(20000);
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(p.u, SOL_SOCKET, SO_ERROR, &err, &len);
    assert_int_equal(err, 0);
    send_all(p.u, "ok", 2);
    recv_exact(p.s, buf, 2);
    assert_memory_equal(buf, "ok", 2);
    assert_int_equal(F(k, 0, redirected), 4);
    drop(&p, k);
}

static void test_pairs_are_reused_after_removal(void **state)
{
    NEED_BPF();
    for (int i = 0; i < 3; i++) {
        pair_t p = make();
        int k = egress__splice_add(sp, p.a, p.u);
        assert_true(k >= 0);
        send_all(p.c, "x", 1);
        char b;
        recv_exact(p.a, &b, 1);
        assert_int_equal(F(k, 0, passed), 1); /* zeroed for each pair */
        drop(&p, k);
    }
    /* A socket that is not connected is refused. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    pair_t p = make();
    assert_true(egress__splice_add(sp, p.a, l) < 0);
    close(l);
    drop(&p, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_go_to_the_relay_until_it_asks),
        cmocka_unit_test(test_asked_and_caught_up_the_kernel_hands_bytes_over_in_order),
        cmocka_unit_test(test_what_a_socket_took_is_counted_from_a_measured_offset),
        cmocka_unit_test(test_the_queue_limit_hands_the_direction_back),
        cmocka_unit_test(test_an_end_stays_with_its_socket),
        cmocka_unit_test(test_pairs_are_reused_after_removal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
