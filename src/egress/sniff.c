/* What the relay reads of a connection's first bytes for its record: a
 * plain-HTTP request line and status line, or a TLS ClientHello's server
 * name. Bytes from the function and from the world alike: every length is
 * checked, and what is copied out is printable. */
#include <stdbool.h>
#include <string.h>

#include "egress/internal.h"

static bool tchar(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void copy_printable(char *out, size_t outlen, const uint8_t *s, size_t n)
{
    if (outlen == 0)
        return;
    if (n >= outlen)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] > 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    out[n] = '\0';
}

int egress__sniff_http_request(const uint8_t *buf, size_t len, char *method, size_t mlen,
                               char *path, size_t plen)
{
    /* METHOD SP TARGET SP HTTP/1.x CR LF, within the first line. */
    size_t i = 0;
    while (i < len && i < 32 && tchar(buf[i]))
        i++;
    if (i == 0 || i >= len || buf[i] != ' ')
        return 0;
    size_t m_end = i++;
    size_t t_start = i;
    while (i < len && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n' && i - t_start < 8192)
        i++;
    if (i == t_start || i >= len || buf[i] != ' ')
        return 0;
    size_t t_end = i++;
    if (len - i < 8 || memcmp(buf + i, "HTTP/1.", 7) != 0)
        return 0;
    copy_printable(method, mlen, buf, m_end);
    copy_printable(path, plen, buf + t_start, t_end - t_start);
    return 1;
}

int egress__sniff_http_status(const uint8_t *buf, size_t len)
{
    /* HTTP/1.x SP DDD */
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' ||
        buf[8] != ' ')
        return 0;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return 0;
        st = st * 10 + (buf[i] - '0');
    }
    return st >= 100 ? st : 0;
}

static size_t rd16(const uint8_t *p)
{
    return (size_t)((p[0] << 8) | p[1]);
}

int egress__sniff_tls_sni(const uint8_t *buf, size_t len, char *out, size_t outlen)
{
    /* Record: type 22 (handshake), version, length; then the handshake:
     * type 1 (ClientHello), 3-byte length, version, random(32), session
     * id, cipher suites, compression methods, extensions. Only what the
     * first record holds is read. */
    if (len < 5 || buf[0] != 22 || buf[1] != 3)
        return 0;
    size_t rec = rd16(buf + 3);
    const uint8_t *p = buf + 5;
    size_t n = len - 5 < rec ? len - 5 : rec;
    if (n < 4 || p[0] != 1)
        return 0;
    size_t off = 4 + 2 + 32;
    if (off + 1 > n)
        return 0;
    off += 1 + p[off];                      /* session id */
    if (off + 2 > n)
        return 0;
    off += 2 + rd16(p + off);               /* cipher suites */
    if (off + 1 > n)
        return 0;
    off += 1 + p[off];                      /* compression methods */
    if (off + 2 > n)
        return 0;
    size_t ext_end = off + 2 + rd16(p + off);
    off += 2;
    if (ext_end > n)
        ext_end = n;
    while (off + 4 <= ext_end) {
        size_t type = rd16(p + off), elen = rd16(p + off + 2);
        off += 4;
        if (elen > ext_end - off)
            return 0;
        if (type == 0) {                    /* server_name */
            size_t e = off, end = off + elen;
            if (e + 2 > end)
                return 0;
            e += 2;                         /* the list's length */
            while (e + 3 <= end) {
                unsigned kind = p[e];
                size_t nlen = rd16(p + e + 1);
                e += 3;
                if (nlen > end - e)
                    return 0;
                if (kind == 0 && nlen > 0) {  /* host_name */
                    copy_printable(out, outlen, p + e, nlen);
                    return 1;
                }
                e += nlen;
            }
            return 0;
        }
        off += elen;
    }
    return 0;
}
