/* Learning-rate schedules. */
#include <math.h>

#include "nn/internal.h"

float pn_schedule_lr(const pn_schedule *s, int step, int epoch)
{
    switch (s->kind) {
    case PN_SCHED_CONSTANT:
        return s->base_lr;
    case PN_SCHED_STEP: {
        int decays = s->step_size > 0 ? epoch / s->step_size : 0;
        return s->base_lr * powf(s->gamma, (float)decays);
    }
    case PN_SCHED_COSINE: {
        if (step < s->warmup_steps)
            return s->base_lr * (float)(step + 1) / (float)s->warmup_steps;
        int span = s->total_steps - s->warmup_steps;
        float t = span > 0 ? (float)(step - s->warmup_steps) / (float)span : 1.0f;
        t = t > 1 ? 1 : t;
        return s->min_lr + 0.5f * (s->base_lr - s->min_lr) * (1 + cosf(3.14159265f * t));
    }
    case PN_SCHED_PLATEAU:
        return s->current_lr > 0 ? s->current_lr : s->base_lr;
    }
    return s->base_lr;
}

void pn_schedule_observe(pn_schedule *s, float val_metric)
{
    if (s->kind != PN_SCHED_PLATEAU)
        return;
    if (s->current_lr <= 0) { /* first observation: the state is still zeroed */
        s->current_lr = s->base_lr;
        s->best = val_metric;
        s->bad_epochs = 0;
        return;
    }
    if (val_metric < s->best) {
        s->best = val_metric;
        s->bad_epochs = 0;
        return;
    }
    if (++s->bad_epochs > s->patience) {
        float next = s->current_lr * s->gamma;
        s->current_lr = next < s->min_lr ? s->min_lr : next;
        s->bad_epochs = 0;
    }
}
