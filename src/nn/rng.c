/* Counter-based seeding (splitmix64) feeding xoroshiro128+: a stream is a
 * pure function of (seed, a, b), so results do not depend on thread order. */
#include <math.h>

#include "nn/internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

pn_rng pn_rng_seed(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = seed ^ (a * 0xd1342543de82ef95ULL) ^ (b * 0x2545f4914f6cdd1dULL);
    pn_rng r;
    r.s[0] = splitmix64(&x);
    r.s[1] = splitmix64(&x);
    if (!r.s[0] && !r.s[1])
        r.s[1] = 1;
    return r;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t pn_rng_next(pn_rng *r)
{
    uint64_t s0 = r->s[0], s1 = r->s[1], result = s0 + s1;
    s1 ^= s0;
    r->s[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
    r->s[1] = rotl(s1, 37);
    return result;
}

float pn_rng_uniform(pn_rng *r) { return (float)(pn_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

float pn_rng_normal(pn_rng *r)
{
    float u1 = pn_rng_uniform(r), u2 = pn_rng_uniform(r);
    if (u1 < 1e-7f)
        u1 = 1e-7f;
    return sqrtf(-2 * logf(u1)) * cosf(6.2831853f * u2);
}

/* Marsaglia-Tsang; shape < 1 through Gamma(shape + 1) * U^(1/shape). */
static float rng_gamma(pn_rng *r, float shape)
{
    if (shape < 1) {
        float u = pn_rng_uniform(r);
        return rng_gamma(r, shape + 1) * powf(u > 1e-7f ? u : 1e-7f, 1 / shape);
    }
    float d = shape - 1.0f / 3, c = 1 / sqrtf(9 * d);
    for (;;) {
        float x = pn_rng_normal(r), v = 1 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        float u = pn_rng_uniform(r);
        if (u < 1 - 0.0331f * x * x * x * x || logf(u > 1e-30f ? u : 1e-30f) < 0.5f * x * x + d * (1 - v + logf(v)))
            return d * v;
    }
}

float pn_rng_beta(pn_rng *r, float a)
{
    float x = rng_gamma(r, a), y = rng_gamma(r, a);
    return x + y > 0 ? x / (x + y) : 0.5f;
}

void pn_init_kaiming(float *w, size_t n, int fan_in, pn_rng *r)
{
    /* He normal for ReLU-family layers: std = sqrt(2 / fan_in). */
    float std = sqrtf(2.0f / (float)(fan_in > 0 ? fan_in : 1));
    for (size_t i = 0; i < n; i++)
        w[i] = std * pn_rng_normal(r);
}

void pn_init_xavier(float *w, size_t n, int fan_in, int fan_out, pn_rng *r)
{
    float limit = sqrtf(6.0f / (float)(fan_in + fan_out > 0 ? fan_in + fan_out : 1));
    for (size_t i = 0; i < n; i++)
        w[i] = limit * (2 * pn_rng_uniform(r) - 1);
}
