#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"

static log_format_t log_format = LOG_FORMAT_TEXT;
static log_level_t log_level = LOG_INFO;
static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void log_set_format(log_format_t format)
{
    log_format = format;
}

void log_set_level(log_level_t level)
{
    log_level = level;
}

int log_parse_format(const char *s, log_format_t *out)
{
    if (!strcmp(s, "text"))
        *out = LOG_FORMAT_TEXT;
    else if (!strcmp(s, "json"))
        *out = LOG_FORMAT_JSON;
    else
        return -EINVAL;
    return 0;
}

int log_parse_level(const char *s, log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, level_names[i])) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_msg(log_level_t level, const char *component, const char *fmt, ...)
{
    if (level < log_level)
        return;

    char ts[40];
    clock_format_iso8601(clock_wall_ms(), ts, sizeof ts);

    cleanup_buf buf_t msg = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&msg, fmt, ap);
    va_end(ap);

    cleanup_buf buf_t line = BUF_INIT;
    if (log_format == LOG_FORMAT_JSON) {
        buf_addf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[level]);
        json_quote(&line, component, strlen(component));
        buf_adds(&line, ",\"message\":");
        json_quote(&line, msg.data, msg.len);
        buf_adds(&line, "}\n");
    } else {
        buf_addf(&line, "%s %-5s %s: %s\n", ts, level_names[level], component, msg.data);
    }
    /* One write per line so lines from several threads never interleave. */
    fwrite(line.data, 1, line.len, stderr);
    fflush(stderr);
}
