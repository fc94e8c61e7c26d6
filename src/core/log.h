/* Structured log lines on stderr: time, level, component, message; as text
 * ("2026-01-02T03:04:05.678Z INFO  http: message") or, after
 * log_set_format(LOG_FORMAT_JSON), one JSON object a line. */
#ifndef MAYFLY_CORE_LOG_H
#define MAYFLY_CORE_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;
typedef enum { LOG_FORMAT_TEXT, LOG_FORMAT_JSON } log_format_t;

void log_set_format(log_format_t format);
void log_set_level(log_level_t level);
/* Parses "text"/"json" and "debug"/"info"/"warn"/"error"; -EINVAL if neither. */
int log_parse_format(const char *s, log_format_t *out);
int log_parse_level(const char *s, log_level_t *out);

void log_msg(log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
