/* Progress on stderr. On a terminal: one line redrawn in place, at most
 * every CLI_PROGRESS_TTY_PERIOD_S. Elsewhere (a pipe, a log file): whole
 * lines, at most one every CLI_PROGRESS_LOG_PERIOD_S, so logs stay readable. */
#ifndef PNEUMO_CLI_PROGRESS_H
#define PNEUMO_CLI_PROGRESS_H

#define CLI_PROGRESS_TTY_PERIOD_S 0.1
#define CLI_PROGRESS_LOG_PERIOD_S 10.0

typedef struct cli_progress {
    int tty;
    double last;     /* monotonic seconds of the last line; < 0 = none yet */
    int drawn;       /* a terminal line is open (no newline yet) */
} cli_progress;

void cli_progress_init(cli_progress *p);
/* Prints the formatted text when due; final = always, and ends the line. */
void cli_progress_update(cli_progress *p, int final, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
