/* libFuzzer target: a record's payload (obs/payload.h). The input is made
 * into a record's payload under the default names and a list of odd ones
 * (the empty name, non-ASCII), with room to spare and cut short, and
 * checked against jansson as a reference:
 * - what is stored fits the maximum, is NUL-terminated, is the input itself
 *   (or its start) when nothing was redacted, and a cut loses at most an
 *   unfinished UTF-8 sequence;
 * - the kind is right: JSON only whole, BINARY exactly when jansson finds
 *   the bytes not UTF-8;
 * - JSON that jansson reads is refused exactly when nested too deep, and
 *   otherwise, uncut, stored as JSON that reads as the input with every
 *   listed member's value replaced (so no secret is left) and that a
 *   second pass leaves as it is;
 * - anything stored as JSON has no listed member left unredacted, and
 *   jansson refuses it, if at all, only for a number too big for it or an
 *   unpaired surrogate or a \u0000 in a member name (valid JSON it does not
 *   take).
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/payload.h"

static const char *const odd_names[] = {"", "a", "x-Token", "p\xc3\xa4ss", "PASSWORD"};
#define N_ODD (sizeof odd_names / sizeof odd_names[0])

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_payload: %s\n", what);
        abort();
    }
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool listed(const obs_payload_policy_t *pol, const char *key, size_t len)
{
    for (size_t k = 0; k < pol->n_redact; k++) {
        const char *l = pol->redact[k];
        if (strlen(l) != len)
            continue;
        size_t j = 0;
        while (j < len && lower(key[j]) == lower(l[j]))
            j++;
        if (j == len)
            return true;
    }
    return false;
}

/* The input as it should be stored: every listed member's value replaced. */
static void redact(json_t *v, const obs_payload_policy_t *pol)
{
    const char *key;
    size_t key_len;
    json_t *m;
    size_t i;
    if (json_is_object(v)) {
        json_object_keylen_foreach(v, key, key_len, m)
        {
            if (listed(pol, key, key_len))
                json_object_setn_new(v, key, key_len, json_string("[redacted]"));
            else
                redact(m, pol);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            redact(m, pol);
        }
    }
}

/* Whether every listed member's value is "[redacted]". */
static bool redacted_all(const json_t *v, const obs_payload_policy_t *pol)
{
    const char *key;
    size_t key_len;
    json_t *m;
    size_t i;
    if (json_is_object(v)) {
        json_object_keylen_foreach((json_t *)v, key, key_len, m)
        {
            if (listed(pol, key, key_len)) {
                if (!json_is_string(m) || strcmp(json_string_value(m), "[redacted]"))
                    return false;
            } else if (!redacted_all(m, pol)) {
                return false;
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            if (!redacted_all(m, pol))
                return false;
        }
    }
    return true;
}

static size_t depth(const json_t *v)
{
    size_t d = 0, i;
    const char *key;
    json_t *m;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, m)
        {
            size_t k = depth(m);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            size_t k = depth(m);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    return 0;
}

static bool is_utf8(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

static void run(const obs_payload_policy_t *pol, const uint8_t *data, size_t size, const json_t *in)
{
    obs_payload_t p;
    obs_payload_make(pol, data, size, &p);
    check(p.full_len == size, "full_len is not the input's length");
    if (p.refused) {
        check(!p.data && !p.len, "refused, but something stored");
        check(!in || depth(in) > OBS_PAYLOAD_MAX_DEPTH, "JSON refused, not too deep");
        return;
    }
    check(!in || depth(in) <= OBS_PAYLOAD_MAX_DEPTH, "JSON too deep, not refused");
    check(p.data && p.len <= pol->max_bytes, "longer than the maximum");
    check(p.data[p.len] == '\0', "not NUL-terminated");
    if (!p.redacted)
        check(!memcmp(p.data, data, p.len), "changed with nothing redacted");
    if (!p.redacted && !p.truncated)
        check(p.len == size, "cut short, not truncated");
    if (p.truncated)
        check(p.len + 3 >= pol->max_bytes, "cut more than an unfinished UTF-8 sequence");
    check(p.kind != OBS_PAYLOAD_JSON || !p.truncated, "truncated, still JSON");
    check((p.kind == OBS_PAYLOAD_BINARY) == !is_utf8(p.data, p.len), "kind against UTF-8");

    json_error_t jerr;
    json_t *out = NULL;
    if (p.kind == OBS_PAYLOAD_JSON) {
        out = json_loadb(p.data, p.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        check(out || strstr(jerr.text, "too big") || strstr(jerr.text, "overflow") ||
                  strstr(jerr.text, "Unicode") || strstr(jerr.text, "NUL byte in object key"),
              "stored as JSON, but not JSON");
        check(!out || redacted_all(out, pol), "a listed member's value is stored");
    }
    if (in && !p.truncated) {
        check(p.kind == OBS_PAYLOAD_JSON, "JSON stored as something else");
        check(out != NULL, "JSON stored as JSON jansson does not read");
        json_t *want = json_deep_copy(in);
        redact(want, pol);
        check(json_equal(want, out), "stored JSON is not the input redacted");
        json_decref(want);

        obs_payload_policy_t again = *pol;
        again.max_bytes = SIZE_MAX;
        obs_payload_t q;
        obs_payload_make(&again, p.data, p.len, &q);
        check(!q.redacted && q.len == p.len && !memcmp(q.data, p.data, p.len),
              "a second pass changed the stored JSON");
        obs_payload_release(&q);
    }
    json_decref(out);
    obs_payload_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* jansson stops at a NUL byte ("9\0" reads as 9), and a NUL byte is
     * never JSON (strings take no control characters). */
    json_error_t jerr;
    json_t *in = NULL;
    if (!memchr(data, '\0', size))
        in = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    obs_payload_policy_t defaults = {obs_payload_default_redact, OBS_PAYLOAD_N_DEFAULT_REDACT,
                                     OBS_PAYLOAD_MAX_MAX};
    obs_payload_policy_t odd = {odd_names, N_ODD, OBS_PAYLOAD_MAX_MAX};
    run(&defaults, data, size, in);
    run(&odd, data, size, in);
    defaults.max_bytes = size / 2;
    run(&defaults, data, size, in);
    odd.max_bytes = size ? size - 1 : 0;
    run(&odd, data, size, in);
    json_decref(in);
    return 0;
}
