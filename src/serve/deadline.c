/* The total request deadline: every connection's clock runs from the start
 * of waiting for a request until the request has fully arrived, and a reaper
 * thread shuts down the sockets of connections past it, however slowly they
 * trickle (libmicrohttpd's own timeout only bounds each idle gap). */
#include "serve/internal.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>


static conn_watch *watch_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* Starts (armed) or stops the clock for the request a connection is receiving. */
void serve_deadline_arm(pn_server *s, struct MHD_Connection *c, int armed)
{
    conn_watch *w = watch_of(c);
    if (!w)
        return;
    pthread_mutex_lock(&s->lock);
    w->deadline = armed ? pn_clock_s() + s->opt.request_deadline_s : 0;
    pthread_mutex_unlock(&s->lock);
}

void serve_deadline_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    pn_server *s = cls;
    conn_watch *w = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info || !(w = calloc(1, sizeof *w)))
            return; /* out of memory: the idle timeout still applies */
        w->fd = info->connect_fd;
        w->deadline = pn_clock_s() + s->opt.request_deadline_s;
        pthread_mutex_lock(&s->lock);
        w->next = s->watches;
        if (w->next)
            w->next->prev = w;
        s->watches = w;
        pthread_mutex_unlock(&s->lock);
        *socket_context = w;
        return;
    }
    if (!w)
        return;
    pthread_mutex_lock(&s->lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&s->lock);
    free(w);
    *socket_context = NULL;
}

/* Every REAPER_PERIOD_MS: shuts down the sockets of connections past their
 * deadline; libmicrohttpd then sees the end of the stream and closes them. */
#define REAPER_PERIOD_MS 200

void *serve_deadline_reaper_main(void *arg)
{
    pn_server *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->reaper_stop) {
        double now = pn_clock_s();
        for (conn_watch *w = s->watches; w; w = w->next)
            if (w->deadline > 0 && now >= w->deadline) {
                w->deadline = 0;
                shutdown(w->fd, SHUT_RDWR);
                serve_metrics_deadline_closed(&s->metrics); /* its own lock, never taken before s->lock */
            }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REAPER_PERIOD_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->reaper_wake, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

void serve_deadline_reaper_stop(pn_server *s)
{
    if (!s->reaper_started)
        return;
    pthread_mutex_lock(&s->lock);
    s->reaper_stop = 1;
    pthread_cond_signal(&s->reaper_wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->reaper, NULL);
    s->reaper_started = 0;
}

