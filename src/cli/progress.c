/* See progress.h. */
#include "cli/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress *p)
{
    *p = (cli_progress){.tty = isatty(2), .last = -1.0};
}

void cli_progress_update(cli_progress *p, int final, const char *fmt, ...)
{
    double t = now_s(), period = p->tty ? CLI_PROGRESS_TTY_PERIOD_S : CLI_PROGRESS_LOG_PERIOD_S;
    if (!final && p->last >= 0 && t - p->last < period)
        return;
    p->last = t;
    if (p->tty)
        fputs("\r\033[K", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    p->drawn = p->tty && !final;
    if (!p->drawn)
        fputc('\n', stderr);
    fflush(stderr);
}
