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

float pn_positive_logit(const float *z, int classes)
{
    float max = z[1];
    for (int k = 2; k < classes; k++)
        max = z[k] > max ? z[k] : max;
    double sum = 0;
    for (int k = 1; k < classes; k++)
        sum += exp((double)z[k] - max);
    return (float)(max + log(sum) - z[0]);
}

/* PyTorch semantics (F.cross_entropy with weight and label_smoothing): the
 * target mixes the one-hot label with the uniform distribution; the one-hot
 * part is weighted by w[y_i], the uniform part by each class's own w[k], and
 * the sum is divided by sum_i w[y_i]:
 * loss = sum_i [(1-ls) w[y_i] (-log p_iy) + ls/C sum_k w[k] (-log p_ik)] / sum_i w[y_i]. */
float pn_softmax_cross_entropy(const float *logits, const int *labels, int n, int classes,
                               const float *class_weights, float label_smoothing,
                               float *dlogits)
{
    double total = 0, weight_sum = 0, class_weight_sum = 0;
    for (int i = 0; i < n; i++)
        weight_sum += class_weights ? class_weights[labels[i]] : 1.0;
    if (weight_sum <= 0)
        return 0;
    for (int k = 0; k < classes; k++)
        class_weight_sum += class_weights ? class_weights[k] : 1.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        float max = z[0];
        for (int k = 1; k < classes; k++)
            max = z[k] > max ? z[k] : max;
        double sum = 0;
        for (int k = 0; k < classes; k++)
            sum += exp((double)z[k] - max);
        double log_sum = log(sum) + max, wy = class_weights ? class_weights[labels[i]] : 1.0;
        /* coefficients c_k of -log p_k; d/dz_j sum_k c_k (-log p_k) = p_j sum_k c_k - c_j */
        double coef_sum = (1 - label_smoothing) * wy + label_smoothing / classes * class_weight_sum;
        for (int k = 0; k < classes; k++) {
            double wk = class_weights ? class_weights[k] : 1.0;
            double coef = (1 - label_smoothing) * wy * (k == labels[i]) + label_smoothing / classes * wk;
            double log_p = z[k] - log_sum;
            total -= coef * log_p;
            if (dlogits)
                dlogits[(size_t)i * classes + k] = (float)((exp(log_p) * coef_sum - coef) / weight_sum);
        }
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
