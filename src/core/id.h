/* Identifiers: request ids as UUIDs (the form Lambda's request ids take). */
#ifndef MAYFLY_CORE_ID_H
#define MAYFLY_CORE_ID_H

#define ID_UUID_LEN 36

/* Writes a random UUID v4 and its NUL into out (ID_UUID_LEN + 1 bytes). */
void id_uuid4(char out[ID_UUID_LEN + 1]);
/* Writes a UUID v7 (RFC 9562): 48 bits of Unix milliseconds, then 74
 * random bits. Ids made later sort later, so an index keyed by them grows
 * at its end instead of touching a random page per insert. */
void id_uuid7(char out[ID_UUID_LEN + 1]);
/* Fills out with len random bytes from the kernel. */
void id_random_bytes(void *out, unsigned len);
/* The same from a per-thread pool drawn a page at a time, for what is made
 * on every call (request ids, trace ids): len at most 4096. */
void id_random_pooled(void *out, unsigned len);

#endif
