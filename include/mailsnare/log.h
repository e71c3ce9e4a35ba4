/* Leveled logging to stderr: one line per event, with a timestamp. */
#ifndef MAILSNARE_LOG_H
#define MAILSNARE_LOG_H

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "debug", "info", "warn"/"warning", "error"; 0 on success, -1 if unknown. */
int log_level_parse(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)

#endif
