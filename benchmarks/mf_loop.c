/* The yardstick of `make bench-scale`: what a plain compiled loop reaches on the same rows and factors. Biased matrix
   factorisation (global mean + user bias + movie bias + dot product) trained by SGD one rating at a time, Funk's and Surprise's
   SVD algorithm, in C, on one thread, every epoch a new permutation of the ratings (Fisher-Yates, seeded). Not part of the library:
   benchmarks/scale.py builds it with movierecs.engine.compiled.build and calls it through ctypes. */
#include <stdint.h>
#include <stdlib.h>

static uint64_t next(uint64_t *s) {  /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float normal(uint64_t *s) {  /* Box-Muller (one of the pair) */
    double u = ((next(s) >> 11) + 1.0) / 9007199254740993.0, v = (next(s) >> 11) / 9007199254740992.0;
    return (float)(__builtin_sqrt(-2.0 * __builtin_log(u)) * __builtin_cos(6.283185307179586 * v));
}

/* Initialise p (n_users x k) and q (n_items x k) from N(0, init_sd), biases at 0; returns the global mean of r. */
double mf_init(float *p, float *q, float *bu, float *bi, int64_t n_users, int64_t n_items, int64_t k, float init_sd,
               const float *r, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t j = 0; j < n_users * k; j++) p[j] = init_sd * normal(&s);
    for (int64_t j = 0; j < n_items * k; j++) q[j] = init_sd * normal(&s);
    for (int64_t j = 0; j < n_users; j++) bu[j] = 0.f;
    for (int64_t j = 0; j < n_items; j++) bi[j] = 0.f;
    double sum = 0.;
    for (int64_t j = 0; j < n; j++) sum += r[j];
    return n ? sum / n : 0.;
}

/* `epochs` epochs of SGD over the n ratings (u[j], i[j], r[j]); `order` (n entries) is scratch. */
void mf_fit(float *p, float *q, float *bu, float *bi, int64_t k, float mu, const int64_t *u, const int64_t *i, const float *r,
            int64_t n, int64_t *order, int epochs, float lr, float reg, uint64_t seed) {
    uint64_t s = seed ^ 0x5eedULL;
    for (int64_t j = 0; j < n; j++) order[j] = j;
    for (int e = 0; e < epochs; e++) {
        for (int64_t j = n - 1; j > 0; j--) {  /* a new permutation each epoch */
            int64_t t = (int64_t)(next(&s) % (uint64_t)(j + 1)), x = order[j];
            order[j] = order[t]; order[t] = x;
        }
        for (int64_t j = 0; j < n; j++) {
            int64_t o = order[j], a = u[o], b = i[o];
            float *pu = p + a*k, *qi = q + b*k, dot = 0.f;
            for (int64_t f = 0; f < k; f++) dot += pu[f] * qi[f];
            float err = r[o] - (mu + bu[a] + bi[b] + dot);
            bu[a] += lr * (err - reg * bu[a]);
            bi[b] += lr * (err - reg * bi[b]);
            for (int64_t f = 0; f < k; f++) {
                float x = pu[f], y = qi[f];
                pu[f] += lr * (err * y - reg * x);
                qi[f] += lr * (err * x - reg * y);
            }
        }
    }
}

/* Predictions for n (u, i) pairs. */
void mf_predict(const float *p, const float *q, const float *bu, const float *bi, int64_t k, float mu, const int64_t *u,
                const int64_t *i, int64_t n, float *out) {
    for (int64_t j = 0; j < n; j++) {
        const float *pu = p + u[j]*k, *qi = q + i[j]*k;
        float dot = 0.f;
        for (int64_t f = 0; f < k; f++) dot += pu[f] * qi[f];
        out[j] = mu + bu[u[j]] + bi[i[j]] + dot;
    }
}
