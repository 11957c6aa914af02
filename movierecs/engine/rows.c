/* The sparse path's row arithmetic in one pass (movierecs/engine/compiled.py builds it with the system's C compiler, and
   engine/sparse.py calls it through ctypes). Each function does what a chain of PyTorch calls in sparse.py does — the same
   formulas in the same order, in float32 for the rows and float64 for the per-step tables — but reads and writes every touched
   row once, without temporaries, and shares the distinct rows between `threads` OpenMP threads (no two threads touch a row).

   Tables: w, avg, sqr are (n_rows, D) float32, row-major. logs is (steps, 3) float64: the cumulative logs of beta1, beta2 and the
   weight-decay factor; coef (steps,) float64: each past step's momentum coefficient; last (n_rows,) int64: the step each row was
   last brought up to date. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The factors that bring a row last brought up to date at step s to step T: the products of beta1, beta2 and the weight-decay
   factor over steps s+1..T, and the momentum's coefficient (`_Catchup.catch_up`), in f[0..3]. They depend on (s, T) alone, so a
   call keeps them per T - s < K in `cache` (`stamp[T - s] == T` when present): a few exps per distinct s, not four per row. */
static inline void factors(int64_t s, int64_t T, const double *logs, const double *coef, int64_t window,
                           float *cache, int64_t *stamp, int64_t K, float *f) {
    int64_t age = T - s;
    if (age < K && stamp[age] == T) { memcpy(f, cache + 4*age, 4 * sizeof(float)); return; }
    int64_t e = s + window < T ? s + window : T;
    f[0] = (float)exp(logs[3*T] - logs[3*s]);
    f[1] = (float)exp(logs[3*T+1] - logs[3*s+1]);
    f[2] = (float)exp(logs[3*T+2] - logs[3*s+2]);
    f[3] = (float)(coef[s] * exp(logs[3*T+2] - logs[3*e+2]));
    if (age < K) { memcpy(cache + 4*age, f, 4 * sizeof(float)); stamp[age] = T; }
}

/* Rows are scattered over tables larger than the caches: ask for the rows PF places ahead while this one is computed. */
#define PF 8
static inline void prefetch_row(const float *w, const float *a, const float *q, int64_t r, int64_t D) {
    for (int64_t j = 0; j < D; j += 16) {
        __builtin_prefetch(w + r*D + j, 1); __builtin_prefetch(a + r*D + j, 1); __builtin_prefetch(q + r*D + j, 1);
    }
}

/* Which of `threads` threads owns row r: blocks of 16 rows in turn, so that two threads never write one cache line of a table,
   of `last` or of `slot` (64-byte lines hold 16 floats and 8 int64s; a row of D floats spans D/16 lines). */
static inline int owner(int64_t r, int threads) { return (int)((r >> 4) % threads); }

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The catch-up of one row with its factors f: decay, moments, and the momentum's moves. */
static inline void catch_up_row(float *w, float *a, float *q, int64_t D, const float *f, float eps) {
    float d0 = f[0], d1 = f[1], d2 = f[2], c = f[3];
    for (int64_t j = 0; j < D; j++) {
        float aj = a[j], qj = q[j];
        w[j] = w[j] * d2 - c * aj / (sqrtf(qj) + eps);
        a[j] = aj * d0;
        q[j] = qj * d1;
    }
}

/* `SparseAdam.bring_up`: the rows `idx` (n of them, repeats allowed) brought up to step T. `stale` (n) and `fac` (4n) are scratch.
   Returns the number of rows caught up, or -1 - i when idx[i] is out of range (nothing is then changed). */
int64_t mr_bring_up(float *w, float *a, float *q, int64_t n_rows, int64_t D, const int64_t *idx, int64_t n,
                    int64_t *last, const double *logs, const double *coef, int64_t T, int64_t window, float eps,
                    int64_t *stale, float *fac, float *cache, int64_t *stamp, int64_t K, int threads) {
    for (int64_t i = 0; i < n; i++) if (idx[i] < 0 || idx[i] >= n_rows) return -1 - i;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {  /* the distinct stale rows, each once: its `last` is set as it is listed */
        int64_t r = idx[i];
        if (last[r] != T) { stale[m] = r; factors(last[r], T, logs, coef, window, cache, stamp, K, fac + 4*m); last[r] = T; m++; }
    }
    int nt = m * D > 16384 ? threads : 1;
    #pragma omp parallel num_threads(nt) if(nt > 1)
    {
        int t = thread_id();
        for (int64_t u = 0; u < m; u++) {
            int64_t r = stale[u];
            if (owner(r, nt) != t) continue;
            if (u + PF < m) prefetch_row(w, a, q, stale[u + PF], D);
            catch_up_row(w + r*D, a + r*D, q + r*D, D, fac + 4*u, eps);
        }
    }
    return m;
}

/* `SparseAdam.step` for one sparse parameter at step T + 1: the gradient's n (row, values) pairs summed per distinct row (in the
   order given: v0 + v1 + ..., as PyTorch's sum from zero gives), each such row caught up to step T, then stepped by fastai's Adam
   (`_adam`), and its `last` set to T + 1. Scratch: `slot` (n_rows entries, all -1 on entry and on return), `rows`, `start`,
   `list` (n each), `acc` (threads * D), `fac` (4n). Returns the number of distinct rows, or -1 - i when idx[i] is out of range
   (nothing is then changed). */
int64_t mr_step(float *w, float *a, float *q, int64_t n_rows, int64_t D, const int64_t *idx, const float *vals, int64_t n,
                int64_t *last, const double *logs, const double *coef, int64_t T, int64_t window,
                int64_t *slot, int64_t *rows, int64_t *start, int64_t *list, float *acc, float *fac,
                float *cache, int64_t *stamp, int64_t K,
                float lr_d1, float mom, float one_minus_mom, float sqr_mom, float one_minus_sqr, float eps, float shrink,
                int do_shrink, float d2, int threads) {
    for (int64_t i = 0; i < n; i++) if (idx[i] < 0 || idx[i] >= n_rows) return -1 - i;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {  /* the distinct rows in order, each row's count in start[] (for now) */
        int64_t r = idx[i];
        if (slot[r] < 0) {
            slot[r] = k; rows[k] = r; start[k] = 0;
            if (last[r] != T) factors(last[r], T, logs, coef, window, cache, stamp, K, fac + 4*k);
            k++;
        }
        start[slot[r]]++;
    }
    for (int64_t u = 0, sum = 0; u < k; u++) { int64_t c = start[u]; start[u] = sum; sum += c; }  /* counts -> offsets */
    for (int64_t i = 0; i < n; i++) list[start[slot[idx[i]]]++] = i;  /* each row's entries in order; start[u] ends at u+1's */
    int nt = k * D > 16384 ? threads : 1;
    #pragma omp parallel num_threads(nt) if(nt > 1)
    {
        int t = thread_id();
        float *sum = acc + t * D;
        for (int64_t u = 0; u < k; u++) {
            int64_t r = rows[u];
            if (owner(r, nt) != t) continue;
            if (u + PF < k) prefetch_row(w, a, q, rows[u + PF], D);
            float *wr = w + r*D, *ar = a + r*D, *qr = q + r*D;
            int64_t b = u ? start[u - 1] : 0, e = start[u];
            const float *g = vals + list[b] * D;
            if (e - b > 1) {
                for (int64_t j = 0; j < D; j++) sum[j] = g[j];
                for (int64_t l = b + 1; l < e; l++) { const float *v = vals + list[l] * D; for (int64_t j = 0; j < D; j++) sum[j] += v[j]; }
                g = sum;
            }
            if (last[r] != T) catch_up_row(wr, ar, qr, D, fac + 4*u, eps);
            for (int64_t j = 0; j < D; j++) {  /* weight_decay, average_grad, average_sqr_grad, adam_step */
                float wj = do_shrink ? wr[j] * shrink : wr[j];
                float aj = ar[j] * mom + one_minus_mom * g[j];
                float qj = qr[j] * sqr_mom + one_minus_sqr * g[j] * g[j];
                ar[j] = aj; qr[j] = qj;
                wr[j] = wj + lr_d1 * aj / (sqrtf(qj / d2) + eps);
            }
            last[r] = T + 1;
            slot[r] = -1;
        }
    }
    return k;
}

/* `_Catchup.advance`: record step t for the rows it did not touch (logs[t], and the window of steps whose rows still move). */
void mr_advance(double *logs, double *a, double *coef, int64_t t, int64_t window,
                double log_b1, double log_b2, double log_shrink, double a_factor, double shrink, double lr_term) {
    logs[3*t] = logs[3*(t-1)] + log_b1;
    logs[3*t+1] = logs[3*(t-1)+1] + log_b2;
    logs[3*t+2] = logs[3*(t-1)+2] + log_shrink;
    for (int64_t s = t - window > 0 ? t - window : 0; s < t; s++) {
        a[s] *= a_factor;
        coef[s] = coef[s] * shrink + a[s] * lr_term;
    }
    a[t] = 1.;
    coef[t] = 0.;
}

/* The loader's shuffle: dst[j] = src[perm[j]] for rows of `row_bytes` bytes (what `index_select(0, perm)` gives), the rows
   asked for ahead, the range shared between `threads` threads. Returns -1 - j when perm[j] is out of range (dst is then
   incomplete and must not be used), else 0. */
int64_t mr_gather(const char *src, int64_t n_src, int64_t row_bytes, const int64_t *perm, int64_t n, char *dst, int threads) {
    for (int64_t j = 0; j < n; j++) if (perm[j] < 0 || perm[j] >= n_src) return -1 - j;
    #define GATHER(T, K) { const T *s = (const T *)src; T *d = (T *)dst; \
        _Pragma("omp parallel for num_threads(threads) schedule(static) if(n > 65536)") \
        for (int64_t j = 0; j < n; j++) { \
            if (j + 64 < n) __builtin_prefetch(s + perm[j + 64] * K, 0); \
            for (int64_t c = 0; c < K; c++) d[j * K + c] = s[perm[j] * K + c]; } }
    if (row_bytes % 8 == 0 && row_bytes <= 64) { int64_t k = row_bytes / 8; GATHER(int64_t, k) }
    else if (row_bytes % 4 == 0 && row_bytes <= 32) { int64_t k = row_bytes / 4; GATHER(int32_t, k) }
    else GATHER(char, row_bytes)
    #undef GATHER
    return 0;
}

/* `DotProductBias`'s raw score on the sparse path, reading the rows where they are (no gathered copies): out[i] = U[u[i]] . M[m[i]]
   + (bu[u[i]] + bm[m[i]]), what `(users * movies).sum(1) + (user_bias + movie_bias)` gives up to the order of the dot's sum. */
void mr_dot_bias(const float *U, const float *M, const float *bu, const float *bm, const int64_t *u, const int64_t *m, int64_t n,
                 int64_t D, float *out, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static) if(n * D > 65536)
    for (int64_t i = 0; i < n; i++) {
        if (i + PF < n) { __builtin_prefetch(U + u[i + PF] * D); __builtin_prefetch(M + m[i + PF] * D);
                          __builtin_prefetch(U + u[i + PF] * D + 32); __builtin_prefetch(M + m[i + PF] * D + 32); }
        const float *x = U + u[i] * D, *y = M + m[i] * D;
        float s = 0.f;
        #pragma omp simd reduction(+:s)
        for (int64_t j = 0; j < D; j++) s += x[j] * y[j];
        out[i] = s + (bu[u[i]] + bm[m[i]]);
    }
}

/* Its gradient: gu[i] = g[i] * M[m[i]] and gm[i] = g[i] * U[u[i]] (the values of the two sparse gradients, as PyTorch's
   backward of the product gives them). */
void mr_dot_bias_grad(const float *U, const float *M, const int64_t *u, const int64_t *m, const float *g, int64_t n, int64_t D,
                      float *gu, float *gm, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static) if(n * D > 65536)
    for (int64_t i = 0; i < n; i++) {
        if (i + PF < n) { __builtin_prefetch(U + u[i + PF] * D); __builtin_prefetch(M + m[i + PF] * D);
                          __builtin_prefetch(U + u[i + PF] * D + 32); __builtin_prefetch(M + m[i + PF] * D + 32); }
        const float *x = U + u[i] * D, *y = M + m[i] * D;
        float gi = g[i];
        for (int64_t j = 0; j < D; j++) { gu[i * D + j] = gi * y[j]; gm[i * D + j] = gi * x[j]; }
    }
}
