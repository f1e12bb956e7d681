/* pneumo train under an MPI launcher (`mpirun -np N pneumo train ...`): the
 * process group, and how each process says why the job ended. Every rank
 * prints its own fatal error prefixed with its rank, then ends the job
 * (MPI_Abort); the runtime then sends the others SIGTERM, which they answer
 * with a line saying so; the watchdog's timeout message goes to stderr. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "pneumo/dist.h"

/* What a rank prints when the runtime ends it (a signal handler can only
 * write a message made beforehand). */
static char term_msg[256];
static size_t term_len;

static void on_sigterm(int sig)
{
    ssize_t ignored = write(2, term_msg, term_len);
    (void)ignored;
    _exit(128 + sig);
}

static void print_timeout(void *user, const char *message)
{
    fprintf(stderr, "\n%s: %s\n", (const char *)user, message);
}

pn_dist *pn_cli_dist_open(const char *prog, double timeout_s)
{
    pn_dist_options o = {.timeout_s = timeout_s, .on_timeout = print_timeout, .user = (void *)prog};
    pn_dist *d = NULL;
    pn_error err = {0};
    if (pn_dist_open(&o, &d, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return NULL;
    }
    int r = pn_dist_rank(d), n = pn_dist_size(d);
    if (n > 1) {
        snprintf(term_msg, sizeof term_msg,
                 "%s: rank %d of %d: ended by the MPI runtime (SIGTERM): another process failed or the "
                 "job was cancelled; the first error above says which\n", prog, r, n);
        term_len = strlen(term_msg);
        signal(SIGTERM, on_sigterm);
    }
    return d;
}

void pn_cli_dist_fail(pn_dist *d, const char *prog, const char *msg)
{
    if (pn_dist_size(d) > 1) {
        fprintf(stderr, "\n%s: rank %d of %d: %s\n", prog, pn_dist_rank(d), pn_dist_size(d), msg);
        fflush(stderr);
        pn_dist_abort(d, 1); /* does not return */
    }
    fprintf(stderr, "\n%s: %s\n", prog, msg);
    pn_dist_close(d);
}
