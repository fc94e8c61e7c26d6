/* The sandbox's network (child side): loopback only, plus the Runtime API
 * listener the server accepts on from outside.
 *
 * The child is in a fresh network namespace: it holds only `lo`, which
 * starts down, and no route anywhere else, so 127.0.0.1 inside is not the
 * host's and nothing the function does can reach the host or the outside.
 * The listening socket is created here, inside, and its descriptor is
 * passed to the server, which can accept on it from its own namespace: a
 * socket stays in the namespace it was created in, wherever its descriptor
 * goes. No veth pair, no setns() on the invocation path.
 *
 * Besides 127.0.0.1 and ::1, lo gets SANDBOX__ADDR4/32 and
 * SANDBOX__ADDR6/128 (see internal.h for why): two RTM_NEWADDR requests
 * sent in one message and acknowledged in one reply, built in stack
 * buffers (the child must not allocate). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/internal.h"

/* One RTM_NEWADDR request with its IFA_LOCAL and IFA_ADDRESS attributes. */
typedef struct addr_req {
    struct nlmsghdr nh;
    struct ifaddrmsg ifa;
    char attrs[2 * RTA_SPACE(sizeof(struct in6_addr))];
} addr_req_t;

static void addr_req_init(addr_req_t *req, uint32_t seq, int ifindex, int family, const void *addr,
                          size_t len, unsigned prefix)
{
    memset(req, 0, sizeof *req);
    req->nh.nlmsg_type = RTM_NEWADDR;
    req->nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    req->nh.nlmsg_seq = seq;
    req->ifa.ifa_family = (unsigned char)family;
    req->ifa.ifa_prefixlen = (unsigned char)prefix;
    /* lo has no neighbours to collide with: no duplicate address
     * detection, so the IPv6 address is usable at once. */
    req->ifa.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
    req->ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    req->ifa.ifa_index = (unsigned)ifindex;
    size_t off = 0;
    const unsigned short types[2] = {IFA_LOCAL, IFA_ADDRESS};
    for (int i = 0; i < 2; i++) {
        struct rtattr *rta = (struct rtattr *)(req->attrs + off);
        rta->rta_type = types[i];
        rta->rta_len = (unsigned short)RTA_LENGTH(len);
        memcpy(RTA_DATA(rta), addr, len);
        off += RTA_SPACE(len);
    }
    req->nh.nlmsg_len = (uint32_t)(NLMSG_LENGTH(sizeof req->ifa) + off);
}

/* Whether err, the answer to the IPv6 request, means the host has IPv6
 * off (ipv6.disable=1, disable_ipv6): then the sandbox goes without it, as
 * the host does. */
static bool ipv6_off(int err)
{
    return err == EAFNOSUPPORT || err == EACCES || err == EOPNOTSUPP;
}

static void add_addresses(int ifindex)
{
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl < 0)
        sandbox__child_die("netlink socket for lo's addresses");
    struct in_addr a4;
    struct in6_addr a6;
    inet_pton(AF_INET, SANDBOX__ADDR4, &a4);
    inet_pton(AF_INET6, SANDBOX__ADDR6, &a6);
    /* Both requests in one datagram: the kernel processes them in order
     * and answers each with an acknowledgement. */
    struct {
        addr_req_t v4;
        addr_req_t v6;
    } reqs;
    addr_req_init(&reqs.v4, 1, ifindex, AF_INET, &a4, sizeof a4, 32);
    addr_req_init(&reqs.v6, 2, ifindex, AF_INET6, &a6, sizeof a6, 128);
    struct iovec iov[2] = {{&reqs.v4, NLMSG_ALIGN(reqs.v4.nh.nlmsg_len)},
                           {&reqs.v6, reqs.v6.nh.nlmsg_len}};
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    struct msghdr msg = {
        .msg_name = &kernel, .msg_namelen = sizeof kernel, .msg_iov = iov, .msg_iovlen = 2};
    if (sendmsg(nl, &msg, 0) < 0)
        sandbox__child_die("send lo's addresses");

    int pending = 2;
    while (pending > 0) {
        union {
            struct nlmsghdr nh;
            char buf[1024];
        } reply;
        ssize_t n = recv(nl, reply.buf, sizeof reply.buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n < 0 ? errno : EPROTO;
            sandbox__child_die("read the answer about lo's addresses");
        }
        /* Walked by hand: NLMSG_NEXT's arithmetic on the remaining length
         * mixes signed and unsigned. */
        size_t off = 0, len = (size_t)n;
        while (off < len && len - off >= sizeof(struct nlmsghdr)) {
            const struct nlmsghdr *nh = (const struct nlmsghdr *)(reply.buf + off);
            if (nh->nlmsg_len < sizeof *nh || nh->nlmsg_len > len - off)
                break;
            off += NLMSG_ALIGN(nh->nlmsg_len);
            if (nh->nlmsg_type != NLMSG_ERROR)
                continue;
            if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
                errno = EPROTO;
                sandbox__child_die("read the answer about lo's addresses");
            }
            const struct nlmsgerr *e = NLMSG_DATA(nh);
            pending--;
            if (e->error == 0)
                continue;
            errno = -e->error;
            if (nh->nlmsg_seq == 2 && ipv6_off(errno))
                continue;
            sandbox__child_die(nh->nlmsg_seq == 1 ? "add " SANDBOX__ADDR4 " to lo"
                                                  : "add " SANDBOX__ADDR6 " to lo");
        }
    }
    close(nl);
}

int sandbox__child_listen(uint16_t port)
{
    /* Bring lo up with the classic interface ioctls: one datagram socket
     * and three calls, cheaper than a netlink conversation. */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        sandbox__child_die("socket for lo");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        sandbox__child_die("get lo flags");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        sandbox__child_die("bring up lo");
    if (ioctl(s, SIOCGIFINDEX, &ifr) < 0)
        sandbox__child_die("get lo's index");
    close(s);
    add_addresses(ifr.ifr_ifindex);

    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        sandbox__child_die("socket for the Runtime API");
    int one = 1;
    if (setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        sandbox__child_die("SO_REUSEADDR");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) < 0)
        sandbox__child_die("bind 127.0.0.1 for the Runtime API");
    if (listen(l, 128) < 0)
        sandbox__child_die("listen for the Runtime API");
    return l;
}
