/* Kernel splicing of relayed connections: a BPF sockmap whose verdict
 * program hands each segment the relay would have copied straight to the
 * other socket of its pair, so that after a connection's first exchange
 * (which the relay reads, for the record) its bytes no longer wake the
 * server. docs/egress.md says why and what it keeps exact.
 *
 * The program, per segment arriving on a socket of a pair, with that
 * socket's shared state (egress__splice_state_t):
 *   - if the relay asked for splicing (want), has passed on everything the
 *     program gave it (passed == consumed), and the other socket's kernel
 *     queue stays under EGRESS__SPLICE_BACKLOG_MAX (redirected - taken):
 *     redirect it to the other socket, count it, and copy its head once if
 *     asked (capture);
 *   - otherwise give it to the relay (the socket's own receive path),
 *     count it as passed, and clear want if the queue limit was hit, which
 *     hands the direction back to the relay.
 * Both rules keep a stream's bytes in order: the program never redirects
 * while the relay holds bytes it has not written on, and the relay writes
 * nothing on after the program stopped redirecting until the other
 * socket's queue is empty (egress__splice_taken).
 *
 * The program is a few dozen instructions, written out here rather than
 * compiled, so the build needs no BPF toolchain and the server no loader
 * library. */
#include <errno.h>
#include <linux/bpf.h>
#include <stdatomic.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "egress/internal.h"

#define PAIRS EGRESS__SPLICE_PAIRS
#define EVENTS_BYTES (64u << 10)   /* the events' ring: 4096 of them */
#define SLOTS (2 * PAIRS)

struct egress__splice {
    int slots;                 /* HASH: socket cookie → slot */
    int states;                /* ARRAY (mmap'd): slot → egress__splice_state_t */
    int socks;                 /* SOCKMAP: slot → socket */
    int events;                /* RINGBUF: slots the program passed bytes of while asked not to */
    int prog;
    void *ev_cons;             /* the ring's consumer page (ours) */
    void *ev_prod;             /* its producer page and data, mapped twice over */
    size_t ev_prod_len;
    egress__splice_state_t *st;
    size_t st_len;
    uint64_t cookie[SLOTS];
    bool used[PAIRS];
    unsigned next;
};

static long sys_bpf(int cmd, union bpf_attr *a)
{
    return syscall(__NR_bpf, cmd, a, sizeof *a);
}

static int map_create(uint32_t type, uint32_t key, uint32_t value, uint32_t n, uint32_t flags)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = type;
    a.key_size = key;
    a.value_size = value;
    a.max_entries = n;
    a.map_flags = flags;
    return (int)sys_bpf(BPF_MAP_CREATE, &a);
}

static int map_update(int fd, const void *key, const void *value)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_fd = (uint32_t)fd;
    a.key = (uint64_t)(uintptr_t)key;
    a.value = (uint64_t)(uintptr_t)value;
    a.flags = BPF_ANY;
    return sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0 ? -errno : 0;
}

static void map_delete(int fd, const void *key)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_fd = (uint32_t)fd;
    a.key = (uint64_t)(uintptr_t)key;
    sys_bpf(BPF_MAP_DELETE_ELEM, &a);
}

/* ---- the program ------------------------------------------------------- */

#define INSN(c, d, s, o, i) \
    ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define MOV(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOVI(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD(d, s) INSN(BPF_ALU64 | BPF_ADD | BPF_X, d, s, 0, 0)
#define SUB(d, s) INSN(BPF_ALU64 | BPF_SUB | BPF_X, d, s, 0, 0)
#define ADDI(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define XORI(d, i) INSN(BPF_ALU64 | BPF_XOR | BPF_K, d, 0, 0, i)
#define LDX(sz, d, s, o) INSN(BPF_LDX | BPF_MEM | (sz), d, s, o, 0)
#define STX(sz, d, s, o) INSN(BPF_STX | BPF_MEM | (sz), d, s, o, 0)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define ST(field) ((int16_t)offsetof(egress__splice_state_t, field))

typedef struct asm_ {
    struct bpf_insn in[96];
    int n;
    int label[8];
    int fix_at[16], fix_to[16], nfix;
} asm_t;

static void emit(asm_t *p, struct bpf_insn i)
{
    p->in[p->n++] = i;
}

static void ldmap(asm_t *p, int reg, int fd)
{
    emit(p, INSN(BPF_LD | BPF_DW | BPF_IMM, reg, BPF_PSEUDO_MAP_FD, 0, fd));
    emit(p, INSN(0, 0, 0, 0, 0));
}

/* A conditional jump to a label: op is BPF_JEQ etc., against imm or reg. */
static void jmp_imm(asm_t *p, int op, int reg, int imm, int label)
{
    p->fix_at[p->nfix] = p->n;
    p->fix_to[p->nfix++] = label;
    emit(p, INSN(BPF_JMP | op | BPF_K, reg, 0, 0, imm));
}

static void jmp_reg(asm_t *p, int op, int reg, int src, int label)
{
    p->fix_at[p->nfix] = p->n;
    p->fix_to[p->nfix++] = label;
    emit(p, INSN(BPF_JMP | op | BPF_X, reg, src, 0, 0));
}

static void here(asm_t *p, int label)
{
    p->label[label] = p->n;
}

enum { L_PLAIN, L_PASS, L_TRIP, L_NOTIFY, L_REDIRECT, L_CLAMPED, L_NOCOPY };

static void build(asm_t *p, int slots, int states, int socks, int events)
{
    memset(p, 0, sizeof *p);
    /* r6 skb, r7 state, r8 slot, r9 len */
    emit(p, MOV(6, 1));
    emit(p, CALL(BPF_FUNC_get_socket_cookie));
    emit(p, STX(BPF_DW, 10, 0, -8));
    ldmap(p, 1, slots);
    emit(p, MOV(2, 10));
    emit(p, ADDI(2, -8));
    emit(p, CALL(BPF_FUNC_map_lookup_elem));
    jmp_imm(p, BPF_JEQ, 0, 0, L_PLAIN);
    emit(p, LDX(BPF_W, 8, 0, 0));
    emit(p, STX(BPF_W, 10, 8, -12));
    ldmap(p, 1, states);
    emit(p, MOV(2, 10));
    emit(p, ADDI(2, -12));
    emit(p, CALL(BPF_FUNC_map_lookup_elem));
    jmp_imm(p, BPF_JEQ, 0, 0, L_PLAIN);
    emit(p, MOV(7, 0));
    emit(p, LDX(BPF_W, 9, 6, (int16_t)offsetof(struct __sk_buff, len)));
    /* A segment with no bytes (a FIN's) stays with its socket: handed over,
     * the other socket's sender would take it for a broken pipe. */
    jmp_imm(p, BPF_JEQ, 9, 0, L_PLAIN);
    /* Redirect only when asked, caught up, and under the queue limit;
     * passing bytes while asked, say so (the relay may not be reading). */
    emit(p, LDX(BPF_DW, 1, 7, ST(want)));
    jmp_imm(p, BPF_JEQ, 1, 0, L_PASS);
    emit(p, LDX(BPF_DW, 1, 7, ST(passed)));
    emit(p, LDX(BPF_DW, 2, 7, ST(consumed)));
    jmp_reg(p, BPF_JNE, 1, 2, L_NOTIFY);
    emit(p, LDX(BPF_DW, 1, 7, ST(redirected)));
    emit(p, LDX(BPF_DW, 2, 7, ST(taken)));
    emit(p, SUB(1, 2));
    emit(p, ADD(1, 9));
    jmp_imm(p, BPF_JGT, 1, EGRESS__SPLICE_BACKLOG_MAX, L_TRIP);
    /* The head of the first segment after capture was asked. */
    emit(p, LDX(BPF_DW, 1, 7, ST(capture)));
    jmp_imm(p, BPF_JEQ, 1, 0, L_REDIRECT);
    emit(p, MOV(4, 9));
    jmp_imm(p, BPF_JLE, 4, EGRESS__SPLICE_HEAD, L_CLAMPED);
    emit(p, MOVI(4, EGRESS__SPLICE_HEAD));
    here(p, L_CLAMPED);
    jmp_imm(p, BPF_JEQ, 4, 0, L_NOCOPY);
    emit(p, STX(BPF_DW, 7, 4, ST(head_len)));
    emit(p, MOV(1, 6));
    emit(p, MOVI(2, 0));
    emit(p, MOV(3, 7));
    emit(p, ADDI(3, ST(head)));
    emit(p, CALL(BPF_FUNC_skb_load_bytes));
    here(p, L_NOCOPY);
    emit(p, MOVI(1, 0));
    emit(p, STX(BPF_DW, 7, 1, ST(capture)));
    here(p, L_REDIRECT);
    emit(p, LDX(BPF_DW, 1, 7, ST(redirected)));
    emit(p, ADD(1, 9));
    emit(p, STX(BPF_DW, 7, 1, ST(redirected)));
    emit(p, MOVI(1, 1));
    emit(p, STX(BPF_DW, 7, 1, ST(redirecting)));
    emit(p, MOV(1, 6));
    ldmap(p, 2, socks);
    emit(p, MOV(3, 8));
    emit(p, XORI(3, 1));
    emit(p, MOVI(4, 0));
    emit(p, CALL(BPF_FUNC_sk_redirect_map));
    emit(p, EXIT());
    /* The other socket's queue is full: the relay takes the direction back. */
    here(p, L_TRIP);
    emit(p, MOVI(1, 0));
    emit(p, STX(BPF_DW, 7, 1, ST(want)));
    here(p, L_NOTIFY);
    emit(p, STX(BPF_W, 10, 8, -16));
    ldmap(p, 1, events);
    emit(p, MOV(2, 10));
    emit(p, ADDI(2, -16));
    emit(p, MOVI(3, 4));
    emit(p, MOVI(4, 0));
    emit(p, CALL(BPF_FUNC_ringbuf_output));
    here(p, L_PASS);
    emit(p, MOVI(1, 0));
    emit(p, STX(BPF_DW, 7, 1, ST(redirecting)));
    emit(p, LDX(BPF_DW, 1, 7, ST(passed)));
    emit(p, ADD(1, 9));
    emit(p, STX(BPF_DW, 7, 1, ST(passed)));
    here(p, L_PLAIN);
    emit(p, MOVI(0, SK_PASS));
    emit(p, EXIT());
    for (int i = 0; i < p->nfix; i++)
        p->in[p->fix_at[i]].off = (int16_t)(p->label[p->fix_to[i]] - p->fix_at[i] - 1);
}

/* ---- the pairs ---------------------------------------------------------- */

egress__splice_t *egress__splice_new(char *why, size_t whylen)
{
    egress__splice_t *s = xcalloc(1, sizeof *s);
    s->slots = s->states = s->socks = s->events = s->prog = -1;
    const char *step = "the maps";
    s->slots = map_create(BPF_MAP_TYPE_HASH, 8, 4, SLOTS, 0);
    s->states = map_create(BPF_MAP_TYPE_ARRAY, 4, sizeof(egress__splice_state_t), SLOTS,
                           BPF_F_MMAPABLE);
    s->socks = map_create(BPF_MAP_TYPE_SOCKMAP, 4, 4, SLOTS, 0);
    s->events = map_create(BPF_MAP_TYPE_RINGBUF, 0, 0, EVENTS_BYTES, 0);
    if (s->slots < 0 || s->states < 0 || s->socks < 0 || s->events < 0)
        goto fail;
    step = "mapping the events";
    long page = sysconf(_SC_PAGESIZE);
    s->ev_cons = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, s->events, 0);
    s->ev_prod_len = (size_t)page + 2 * EVENTS_BYTES;
    s->ev_prod = mmap(NULL, s->ev_prod_len, PROT_READ, MAP_SHARED, s->events, page);
    if (s->ev_cons == MAP_FAILED || s->ev_prod == MAP_FAILED) {
        if (s->ev_cons != MAP_FAILED)
            munmap(s->ev_cons, (size_t)page);
        if (s->ev_prod != MAP_FAILED)
            munmap(s->ev_prod, s->ev_prod_len);
        s->ev_cons = s->ev_prod = NULL;
        goto fail;
    }
    step = "mapping the states";
    s->st_len = sizeof(egress__splice_state_t) * SLOTS;
    s->st = mmap(NULL, s->st_len, PROT_READ | PROT_WRITE, MAP_SHARED, s->states, 0);
    if (s->st == MAP_FAILED) {
        s->st = NULL;
        goto fail;
    }
    step = "loading the program";
    asm_t p;
    build(&p, s->slots, s->states, s->socks, s->events);
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SK_SKB;
    a.insns = (uint64_t)(uintptr_t)p.in;
    a.insn_cnt = (uint32_t)p.n;
    a.license = (uint64_t)(uintptr_t)"GPL";
    s->prog = (int)sys_bpf(BPF_PROG_LOAD, &a);
    if (s->prog < 0)
        goto fail;
    step = "attaching the program";
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)s->socks;
    a.attach_bpf_fd = (uint32_t)s->prog;
    a.attach_type = BPF_SK_SKB_VERDICT;
    if (sys_bpf(BPF_PROG_ATTACH, &a) < 0)
        goto fail;
    return s;
fail:
    snprintf(why, whylen, "%s: %s", step, strerror(errno));
    egress__splice_free(s);
    return NULL;
}

void egress__splice_free(egress__splice_t *s)
{
    if (!s)
        return;
    if (s->st)
        munmap(s->st, s->st_len);
    if (s->ev_cons) {
        munmap(s->ev_cons, (size_t)sysconf(_SC_PAGESIZE));
        munmap(s->ev_prod, s->ev_prod_len);
    }
    int fds[] = {s->prog, s->socks, s->states, s->slots, s->events};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(s);
}

int egress__splice_add(egress__splice_t *s, int fd_client, int fd_upstream)
{
    unsigned k = 0;
    for (; k < PAIRS; k++) {
        unsigned i = (s->next + k) % PAIRS;
        if (!s->used[i]) {
            k = i;
            break;
        }
    }
    if (k >= PAIRS || s->used[k])
        return -EAGAIN;
    int fds[2] = {fd_client, fd_upstream};
    uint32_t slot[2] = {2 * k, 2 * k + 1};
    for (int i = 0; i < 2; i++) {
        memset(&s->st[slot[i]], 0, sizeof s->st[0]);
        socklen_t len = sizeof s->cookie[slot[i]];
        if (getsockopt(fds[i], SOL_SOCKET, SO_COOKIE, &s->cookie[slot[i]], &len) < 0)
            return -errno;
    }
    int r = 0;
    for (int i = 0; i < 2 && r == 0; i++)
        r = map_update(s->slots, &s->cookie[slot[i]], &slot[i]);
    for (int i = 0; i < 2 && r == 0; i++) {
        uint32_t fd = (uint32_t)fds[i];
        r = map_update(s->socks, &slot[i], &fd);
    }
    if (r < 0) {
        for (int i = 0; i < 2; i++) {
            map_delete(s->socks, &slot[i]);
            map_delete(s->slots, &s->cookie[slot[i]]);
        }
        return r;
    }
    s->used[k] = true;
    s->next = k + 1;
    /* What arrived before the sockets joined the map sits in their receive
     * queues until a segment wakes the program: setting the low-water mark
     * runs it now, so that every byte is counted from the start. */
    int one = 1;
    for (int i = 0; i < 2; i++)
        setsockopt(fds[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    return (int)k;
}

egress__splice_state_t *egress__splice_state(egress__splice_t *s, int pair, int side)
{
    return &s->st[2 * pair + side];
}

void egress__splice_remove(egress__splice_t *s, int pair)
{
    for (int i = 0; i < 2; i++) {
        uint32_t slot = (uint32_t)(2 * pair + i);
        map_delete(s->socks, &slot);
        map_delete(s->slots, &s->cookie[slot]);
    }
    s->used[pair] = false;
}

int egress__splice_taken(int fd, uint64_t *out, bool *closed)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int outq = 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ioctl(fd, SIOCOUTQ, &outq) < 0)
        return -errno;
    /* Bytes acknowledged plus bytes not yet: everything the socket took,
     * from the relay and from the program (plus what the handshake counts,
     * which the caller measures once). */
    *out = ti.tcpi_bytes_acked + (uint64_t)outq;
    *closed = ti.tcpi_state == 7; /* TCP_CLOSE: reset, or closed both ways */
    return 0;
}

int egress__splice_events_fd(const egress__splice_t *s)
{
    return s->events;
}

int egress__splice_next_event(egress__splice_t *s, uint32_t *slot)
{
    /* The ring's protocol: the consumer position on our page, the
     * producer's on the first of its own, then the data (mapped twice, so
     * a record never wraps); each record an 8-byte header (length with
     * busy and discard bits) and its bytes, 8-aligned. */
    _Atomic uint64_t *cons = s->ev_cons;
    _Atomic uint64_t *prod = s->ev_prod;
    const uint8_t *data = (const uint8_t *)s->ev_prod + sysconf(_SC_PAGESIZE);
    for (;;) {
        uint64_t c = atomic_load_explicit(cons, memory_order_relaxed);
        uint64_t p = atomic_load_explicit(prod, memory_order_acquire);
        if (c >= p)
            return 0;
        const _Atomic uint32_t *hdr = (const _Atomic uint32_t *)(data + (c & (EVENTS_BYTES - 1)));
        uint32_t len = atomic_load_explicit(hdr, memory_order_acquire);
        if (len & BPF_RINGBUF_BUSY_BIT)
            return 0;
        uint32_t n = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
        const uint8_t *rec = (const uint8_t *)hdr + BPF_RINGBUF_HDR_SZ;
        bool keep = !(len & BPF_RINGBUF_DISCARD_BIT) && n == sizeof *slot;
        if (keep)
            memcpy(slot, rec, sizeof *slot);
        atomic_store_explicit(cons, c + ((BPF_RINGBUF_HDR_SZ + n + 7) & ~7ull),
                              memory_order_release);
        if (keep)
            return 1;
    }
}
