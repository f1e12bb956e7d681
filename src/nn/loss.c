/* Classification losses on float32 logits. Both return the mean loss and,
 * when asked, its gradient with respect to the logits. */
#include <math.h>

#include "nn/internal.h"

void pn_softmax(const float *logits, int n, int classes, float *probs)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        float *p = probs + (size_t)i * classes, max = z[0], sum = 0;
        for (int k = 1; k < classes; k++)
            max = z[k] > max ? z[k] : max;
        for (int k = 0; k < classes; k++)
            sum += p[k] = expf(z[k] - max);
        for (int k = 0; k < classes; k++)
            p[k] /= sum;
    }
}

/* PyTorch semantics: with class weights the mean is weighted,
 * loss = sum_i w[y_i] * ce_i / sum_i w[y_i]; label smoothing mixes the
 * one-hot target with the uniform distribution. */
float pn_softmax_cross_entropy(const float *logits, const int *labels, int n, int classes,
                               const float *class_weights, float label_smoothing,
                               float *dlogits)
{
    double total = 0, weight_sum = 0;
    for (int i = 0; i < n; i++)
        weight_sum += class_weights ? class_weights[labels[i]] : 1.0;
    if (weight_sum <= 0)
        return 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        float max = z[0];
        for (int k = 1; k < classes; k++)
            max = z[k] > max ? z[k] : max;
        double sum = 0;
        for (int k = 0; k < classes; k++)
            sum += exp((double)z[k] - max);
        double log_sum = log(sum) + max, w = class_weights ? class_weights[labels[i]] : 1.0;
        double loss_i = 0;
        for (int k = 0; k < classes; k++) {
            double target = (1 - label_smoothing) * (k == labels[i]) + label_smoothing / classes;
            double log_p = z[k] - log_sum;
            loss_i -= target * log_p;
            if (dlogits)
                dlogits[(size_t)i * classes + k] = (float)(w * (exp(log_p) - target) / weight_sum);
        }
        total += w * loss_i;
    }
    return (float)(total / weight_sum);
}

float pn_bce_with_logits(const float *logits, const float *targets, int n, float pos_weight,
                         float *dlogits)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        double x = logits[i], y = targets[i];
        /* log(1 + e^-x) computed without overflow */
        double log_sig = -(x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)));
        double log_one_minus = log_sig - x;
        total -= pos_weight * y * log_sig + (1 - y) * log_one_minus;
        if (dlogits) {
            double s = 1 / (1 + exp(-x));
            dlogits[i] = (float)((pos_weight * y * (s - 1) + (1 - y) * s) / n);
        }
    }
    return (float)(total / n);
}
