/* Shared inside src/console/: the table the build generates. */
#ifndef MAYFLY_CONSOLE_INTERNAL_H
#define MAYFLY_CONSOLE_INTERNAL_H

#include "console/console.h"

/* build/gen/console/assets.c (scripts/console_embed.c): every file under
 * console/ but hidden ones, sorted by path. */
extern const console_asset_t console__assets[];
extern const size_t console__nassets;

#endif
