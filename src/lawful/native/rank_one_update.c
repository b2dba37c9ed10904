/* The two passes of lawful's conservation update for a diagonal belief and one constraint row
 * (lawful.constraints.update), each reading its arrays once.
 *
 * On a large grid the update is memory-bound: its eager form makes a dozen passes over the
 * arrays, these two the fewest any implementation can (the sums must be known before the first
 * value is written). Per row r of a (rows, points) belief with weights g:
 *
 *   pass 1:  sums[r] = (sum_n g_n mu_n, sum_n (g_n d_n) g_n)                accumulated in double
 *   pass 2:  mu'_n = mu_n + (g_n d_n) gain_r,  d'_n = max(d_n + (g_n d_n)^2 shrink_r, 0)
 *
 * the products in the order lawful's eager update takes them, each rounded (compiled with
 * -ffp-contract=off: no fused multiply-adds), so with the same gain and shrink the variance is
 * the eager one to the bit; the eager mean comes from addcmul, which fuses its multiply-add on
 * CPUs that have one, so the two means can differ in the last bit. Pass 2 walks each thread's
 * range backwards, so it starts on what pass 1 left in the cache, and can write with
 * non-temporal stores where the outputs are far larger than the cache (caching them would only
 * evict the inputs).
 *
 * Threads split the flattened (rows, points) range evenly; each thread's partial sums are added
 * in thread order, so a given thread count gives the same sums on every call and every CPU.
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "vectorised.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Independent partial sums per quantity in pass 1: enough to hide the latency of the adds. */
#define ACCUMULATORS 32

/* Pass 1 is bound by its adds more than by memory on SSE2 alone, so it is VECTORISED: an AVX2
 * clone where the CPU has it (the same sums: the order is fixed above). */

typedef struct {
    const void *mean, *variance, *weights;
    int64_t points, weight_stride; /* weight_stride: 0 (one row for all) or points */
    int64_t begin, end;            /* this thread's range of the flattened (rows, points) */
    double *sums;                  /* pass 1: (rows, 2), this thread's partial sums */
    const void *gain, *shrink;     /* pass 2: (rows,) each */
    void *mean_out, *variance_out;
    int streaming;
} Range;

#if defined(__SSE2__)
/* Pass 2 from the end of a row segment: scalar down to an index whose output is 16-byte
 * aligned, then whole vectors with streaming stores; the scalar loop after it does the head. */
#define STREAMED_VECTORS(SUFFIX)                                                               \
    do {                                                                                       \
        while (n > lo && ((uintptr_t)(m_out + n) % 16) != 0)                                   \
            --n, apply_one_##SUFFIX(m, d, g, gain, shrink, m_out, d_out, n);                   \
        VECTOR_LOOP_##SUFFIX;                                                                  \
    } while (0)
#define VECTOR_LOOP(LANES, V, S)                                                               \
    {                                                                                          \
        __m128##V gains = _mm_set1_p##S(gain), shrinks = _mm_set1_p##S(shrink);                \
        __m128##V zero = _mm_setzero_p##S();                                                   \
        for (; n - LANES >= lo; n -= LANES) {                                                  \
            int64_t k = n - LANES;                                                             \
            __m128##V gv = _mm_loadu_p##S(g + k), dv = _mm_loadu_p##S(d + k);                  \
            __m128##V mv = _mm_loadu_p##S(m + k), scaled = _mm_mul_p##S(gv, dv);               \
            __m128##V squared = _mm_mul_p##S(scaled, scaled);                                 \
            __m128##V spread = _mm_add_p##S(dv, _mm_mul_p##S(squared, shrinks));              \
            _mm_stream_p##S(m_out + k, _mm_add_p##S(mv, _mm_mul_p##S(scaled, gains)));         \
            /* max(0, x) is x where x is NaN (the second operand), as clamp_min keeps NaN */   \
            _mm_stream_p##S(d_out + k, _mm_max_p##S(zero, spread));                            \
        }                                                                                      \
    }
#define VECTOR_LOOP_f32 VECTOR_LOOP(4, , s)
#define VECTOR_LOOP_f64 VECTOR_LOOP(2, d, d)
#define STORE_FENCE() _mm_sfence()
#define CAN_STREAM 1
#else /* no streaming stores on this machine: pass 2 is the scalar loop */
#define STREAMED_VECTORS(SUFFIX) ((void)0)
#define STORE_FENCE() ((void)0)
#define CAN_STREAM 0
#endif

/* One function per dtype and pass, from one body each. */
#define DEFINE_PASSES(T, SUFFIX)                                                              \
    VECTORISED static void sums_##SUFFIX(const Range *work) {                                  \
        const T *mean = work->mean, *variance = work->variance, *weights = work->weights;      \
        for (int64_t i = work->begin; i < work->end;) {                                        \
            int64_t row = i / work->points, start = i - row * work->points;                    \
            int64_t stop = work->end - row * work->points;                                     \
            if (stop > work->points) stop = work->points;                                      \
            const T *m = mean + row * work->points, *d = variance + row * work->points;        \
            const T *g = weights + row * work->weight_stride;                                  \
            /* added in a fixed order: the loop vectorises without reassociating the sums */ \
            double mass[ACCUMULATORS] = {0}, spread[ACCUMULATORS] = {0};                      \
            int64_t n = start;                                                                 \
            for (; n + ACCUMULATORS <= stop; n += ACCUMULATORS)                                \
                for (int k = 0; k < ACCUMULATORS; ++k) {                                       \
                    T scaled = g[n + k] * d[n + k];                                            \
                    mass[k] += (double)(g[n + k] * m[n + k]);                                  \
                    spread[k] += (double)(scaled * g[n + k]);                                  \
                }                                                                              \
            for (int k = 0; n < stop; ++n, ++k) {                                              \
                T scaled = g[n] * d[n];                                                        \
                mass[k] += (double)(g[n] * m[n]);                                              \
                spread[k] += (double)(scaled * g[n]);                                          \
            }                                                                                  \
            for (int k = 1; k < ACCUMULATORS; ++k) mass[0] += mass[k], spread[0] += spread[k]; \
            work->sums[2 * row] += mass[0];                                                    \
            work->sums[2 * row + 1] += spread[0];                                              \
            i += stop - start;                                                                 \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static inline void apply_one_##SUFFIX(const T *m, const T *d, const T *g, T gain,          \
                                          T shrink, T *m_out, T *d_out, int64_t n) {           \
        T scaled = g[n] * d[n];                                                                \
        T spread = d[n] + (scaled * scaled) * shrink;                                          \
        m_out[n] = m[n] + scaled * gain;                                                       \
        d_out[n] = spread < 0 ? 0 : spread; /* NaN stays NaN, as in clamp_min */              \
    }                                                                                          \
                                                                                               \
    static void apply_##SUFFIX(const Range *work) {                                            \
        const T *mean = work->mean, *variance = work->variance, *weights = work->weights;      \
        for (int64_t i = work->end; i > work->begin;) {                                        \
            int64_t row = (i - 1) / work->points, row_start = row * work->points;              \
            int64_t lo = work->begin > row_start ? work->begin - row_start : 0;                \
            int64_t hi = i - row_start;                                                        \
            const T *m = mean + row_start, *d = variance + row_start;                          \
            const T *g = weights + row * work->weight_stride;                                  \
            T gain = ((const T *)work->gain)[row], shrink = ((const T *)work->shrink)[row];    \
            T *m_out = (T *)work->mean_out + row_start, *d_out = (T *)work->variance_out +     \
                                                                 row_start;                    \
            int64_t n = hi;                                                                    \
            if (work->streaming) STREAMED_VECTORS(SUFFIX);                                   \
            while (n > lo) --n, apply_one_##SUFFIX(m, d, g, gain, shrink, m_out, d_out, n);    \
            i = row_start + lo;                                                                \
        }                                                                                      \
        if (work->streaming) STORE_FENCE(); /* this thread's streamed stores, before the join */ \
    }

DEFINE_PASSES(float, f32)
DEFINE_PASSES(double, f64)

/* Runs `pass` over even ranges of rows * points, one per OpenMP thread (at most `threads`).
 * OpenMP, not threads of our own: where PyTorch's own OpenMP runtime is loaded (its wheels
 * bundle libgomp.so.1), this library binds to it and the passes run on PyTorch's threads,
 * which are still spinning from the operation before; threads of our own would have to share
 * the cores with them. Returns 0, or -1 where the partial sums cannot be allocated (nothing
 * written then). */
static int run(void (*pass)(const Range *), Range prototype, int64_t rows, int threads,
               double *sums) {
    if (threads < 1) threads = 1;
    int64_t total = rows * prototype.points;
    double *partial = NULL;
    if (sums != NULL) {
        partial = calloc((size_t)threads * (size_t)rows * 2, sizeof(double));
        if (partial == NULL) return -1;
    }
    int used = 1;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), count = omp_get_num_threads();
        Range work = prototype;
        work.begin = total * t / count;
        work.end = total * (t + 1) / count;
        work.sums = partial == NULL ? NULL : partial + (size_t)t * (size_t)rows * 2;
        pass(&work);
        if (t == 0) used = count;
    }
    if (partial != NULL) { /* thread order: the same sums for the same thread count */
        for (int64_t k = 0; k < rows * 2; ++k) {
            double total_k = 0;
            for (int t = 0; t < used; ++t) total_k += partial[(size_t)t * rows * 2 + k];
            sums[k] = total_k;
        }
        free(partial);
    }
    return 0;
}

#define DEFINE_ENTRY_POINTS(T, SUFFIX)                                                         \
    int lawful_rank_one_sums_##SUFFIX(const T *mean, const T *variance, const T *weights,      \
                                      int64_t rows, int64_t points, int64_t weight_stride,     \
                                      double *sums, int threads) {                             \
        Range work = {mean, variance, weights, points, weight_stride, 0, 0, NULL,              \
                      NULL, NULL, NULL, NULL, 0};                                              \
        return run(sums_##SUFFIX, work, rows, threads, sums);                                  \
    }                                                                                          \
    int lawful_rank_one_apply_##SUFFIX(const T *mean, const T *variance, const T *weights,     \
                                       int64_t rows, int64_t points, int64_t weight_stride,    \
                                       const T *gain, const T *shrink, T *mean_out,            \
                                       T *variance_out, int streaming, int threads) {          \
        Range work = {mean, variance, weights, points, weight_stride, 0, 0, NULL,              \
                      gain, shrink, mean_out, variance_out, streaming && CAN_STREAM};          \
        return run(apply_##SUFFIX, work, rows, threads, NULL);                                 \
    }

DEFINE_ENTRY_POINTS(float, f32)
DEFINE_ENTRY_POINTS(double, f64)
