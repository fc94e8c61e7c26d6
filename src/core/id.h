/* Identifiers: random request ids in the UUID v4 form Lambda uses. */
#ifndef MAYFLY_CORE_ID_H
#define MAYFLY_CORE_ID_H

#define ID_UUID_LEN 36

/* Writes a random UUID v4 and its NUL into out (ID_UUID_LEN + 1 bytes). */
void id_uuid4(char out[ID_UUID_LEN + 1]);
/* Fills out with len random bytes from the kernel. */
void id_random_bytes(void *out, unsigned len);

#endif
