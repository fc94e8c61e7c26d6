/* The sandbox's network (child side): loopback only, plus the Runtime API
 * listener the server accepts on from outside.
 *
 * The child is in a fresh network namespace: it holds only `lo`, which
 * starts down, and no route anywhere else, so 127.0.0.1 inside is not the
 * host's and nothing the function does can reach the host or the outside.
 * The listening socket is created here, inside, and its descriptor is
 * passed to the server, which can accept on it from its own namespace: a
 * socket stays in the namespace it was created in, wherever its descriptor
 * goes. No veth pair, no setns() on the invocation path. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/internal.h"

int sandbox__child_listen(uint16_t port)
{
    /* Bring lo up with the classic interface ioctls: one datagram socket
     * and two calls, far cheaper than a netlink conversation. */
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
    close(s);

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
