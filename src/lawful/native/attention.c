/* Scaled dot-product attention, forward and backward, for the ANP's many small heads
 * (lawful.models._attention).
 *
 * Per head of a (batch, heads) pair, with queries q (n, d), keys k (m, d), values v (m, d):
 *
 *   forward:   S = (scale q) k^T,  P = softmax_rows(S),  out = P v,  lse_i = log sum_j e^S_ij
 *   backward:  P = e^(S - lse),  dP = dout v^T,  D_i = dout_i . out_i,  dS = P * (dP - D),
 *              dq = scale dS k,  dk = dS^T (scale q),  dv = P^T dout
 *
 * as flash attention does it: the forward keeps only lse, and the backward forms P again
 * (cheaper than writing and reading the weights of every head). The ANP's heads are small (n,
 * m of 100 to 200, d of 16 or 32), so a head's operands stay in the cache, and the work is
 * five products per head in the backward, two in the forward. All of them go through one
 * register-blocked product (multiply), written with GCC's vector extensions of 16 floats and
 * compiled for AVX-512F, AVX2 and the baseline (target_clones, chosen at load time): PyTorch's
 * CPU attention multiplies its blocks through the BLAS, which on AMD CPUs runs AVX2 kernels.
 *
 * Heads are independent: threads split them, and each head's sums are taken in one fixed
 * order, so the results are the same for any thread count. Compiled with -ffp-contract=off
 * like the other kernels (a multiply and an add, each rounded); the results equal PyTorch's
 * to float32 rounding, not to the bit; and, the same operations in the same order in every
 * clone (no reassociation), the same bits whichever instruction set runs them. Every product
 * runs on whole vectors: the transposed operands (d x m) are copied into scratch with m
 * rounded up to LANES and zeros beyond, a (rows x d) operand is read in place where d is a
 * multiple of LANES (the ANP's heads) and copied with zeros beyond d elsewhere.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
/* Query rows taken at a time: their scores (ROWS_PER_BLOCK x m) stay in the cache. */
#define ROWS_PER_BLOCK 64
#define TILE_ROWS 4

typedef float lanes_t __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t int_lanes_t __attribute__((vector_size(LANES * sizeof(int32_t))));

#define INLINE static inline __attribute__((always_inline))
/* A build for one instruction set defines PER_CPU itself (-DPER_CPU=...; the tests build each). */
#ifndef PER_CPU
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define PER_CPU __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#endif
#ifndef PER_CPU
#define PER_CPU
#endif

/* Strides of a (batch, heads, rows, d) operand, in floats; along d the stride is 1. */
typedef struct {
    int64_t batch, head, row;
} Strides;

typedef struct {
    int64_t batch, heads, queries, keys, head_dim;
    double scale;
    Strides query, key, value, out, out_gradient, query_gradient, key_gradient, value_gradient;
} AttentionShape;

/* The arrays of one call: the forward writes out and lse, the backward reads them and writes
 * the three gradients. */
typedef struct {
    const float *query, *key, *value, *out_gradient;
    float *out, *lse, *query_gradient, *key_gradient, *value_gradient;
} Operands;

INLINE lanes_t load(const float *from)
{
    lanes_t value;
    memcpy(&value, from, sizeof value);
    return value;
}

INLINE void store(float *to, lanes_t value) { memcpy(to, &value, sizeof value); }

INLINE int64_t padded(int64_t size) { return (size + LANES - 1) / LANES * LANES; }

/* c (rows x VECTORS*LANES) (+)= a (rows x inner) b (inner x VECTORS*LANES): the accumulators
 * stay in registers over the whole inner loop. */
INLINE void tile(const int rows, const int vectors, float *c, int64_t ldc, const float *a,
                 int64_t lda, const float *b, int64_t ldb, int64_t inner, int accumulate)
{
    lanes_t sum[TILE_ROWS][2];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < vectors; v++)
            sum[i][v] = accumulate ? load(c + i * ldc + v * LANES) : (lanes_t){0};
    for (int64_t k = 0; k < inner; k++) {
        lanes_t row[2];
        for (int v = 0; v < vectors; v++)
            row[v] = load(b + k * ldb + v * LANES);
        for (int i = 0; i < rows; i++) {
            const float factor = a[i * lda + k];
            for (int v = 0; v < vectors; v++)
                sum[i][v] += factor * row[v];
        }
    }
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < vectors; v++)
            store(c + i * ldc + v * LANES, sum[i][v]);
}

/* c (rows x cols) (+)= a (rows x inner) b (inner x cols), row-major with leading dimensions;
 * cols a multiple of LANES. */
INLINE void multiply(float *c, int64_t ldc, const float *a, int64_t lda, const float *b,
                     int64_t ldb, int64_t rows, int64_t inner, int64_t cols, int accumulate)
{
    int64_t i = 0;
    for (; i + TILE_ROWS <= rows; i += TILE_ROWS) {
        int64_t j = 0;
        for (; j + 2 * LANES <= cols; j += 2 * LANES)
            tile(TILE_ROWS, 2, c + i * ldc + j, ldc, a + i * lda, lda, b + j, ldb, inner,
                 accumulate);
        if (j < cols)
            tile(TILE_ROWS, 1, c + i * ldc + j, ldc, a + i * lda, lda, b + j, ldb, inner,
                 accumulate);
    }
    for (; i < rows; i++) {
        int64_t j = 0;
        for (; j + 2 * LANES <= cols; j += 2 * LANES)
            tile(1, 2, c + i * ldc + j, ldc, a + i * lda, lda, b + j, ldb, inner, accumulate);
        if (j < cols)
            tile(1, 1, c + i * ldc + j, ldc, a + i * lda, lda, b + j, ldb, inner, accumulate);
    }
}

/* Lanes of yes where mask is set (all bits), of no elsewhere. */
INLINE lanes_t choose(int_lanes_t mask, lanes_t yes, lanes_t no)
{
    return (lanes_t)(((int_lanes_t)yes & mask) | ((int_lanes_t)no & ~mask));
}

/* e^x per lane (Cephes' expf: x = n ln 2 + r, |r| <= ln 2 / 2, a degree-6 polynomial for e^r,
 * 2^n written into the exponent bits); relative error about 1e-7; 0 below -87.3. */
INLINE lanes_t exponential(lanes_t x)
{
    const float log2e = 1.44269504088896341f, ln2_high = 0.693359375f, ln2_low = -2.12194440e-4f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const lanes_t lowest = (lanes_t){0} - 87.3f, highest = (lanes_t){0} + 88.3f;
    const int_lanes_t underflow = x < lowest;
    x = choose(underflow, lowest, choose(x > highest, highest, x));
    const lanes_t n = (x * log2e + round_magic) - round_magic;
    const lanes_t r = (x - n * ln2_high) - n * ln2_low;
    lanes_t p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const lanes_t e_r = (p * (r * r) + r) + 1.0f;
    const lanes_t two_to_n = (lanes_t)((__builtin_convertvector(n, int_lanes_t) + 127) << 23);
    return choose(underflow, (lanes_t){0}, e_r * two_to_n);
}

/* Operand of one head: the (rows, d) slice at (b, h). */
INLINE const float *head_of(const float *data, Strides s, int64_t b, int64_t h)
{
    return data + b * s.batch + h * s.head;
}

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
/* One level of a 16 x 16 transpose in registers: rows i and i + b (i & b == 0) exchange the
 * b x b blocks off the diagonal of their 2b x 2b block; the four levels b = 8, 4, 2, 1 make the
 * transpose (each swaps one bit of the row index with that bit of the column index). */
#define EXCHANGE(b, upper, lower, ...)                                                        \
    for (int i = 0; i < LANES; i++)                                                            \
        if (!(i & (b))) {                                                                      \
            const lanes_t above = rows[i], below = rows[i + (b)];                              \
            rows[i] = __builtin_shufflevector(above, below, upper);                            \
            rows[i + (b)] = __builtin_shufflevector(above, below, lower);                      \
        }
#define INDICES(...) __VA_ARGS__

INLINE void transpose_in_registers(lanes_t rows[LANES])
{
    EXCHANGE(8, INDICES(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
             INDICES(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
    EXCHANGE(4, INDICES(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
             INDICES(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
    EXCHANGE(2, INDICES(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
             INDICES(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
    EXCHANGE(1, INDICES(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
             INDICES(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
}
#define HAVE_REGISTER_TRANSPOSE 1
#endif

/* to[c * to_stride + i] = scale * from[i * from_stride + c] for i < rows, c < cols: 16 x 16
 * blocks through registers where the compiler has the shuffles, one value at a time at the
 * edges. */
INLINE void transpose(float *to, int64_t to_stride, const float *from, int64_t from_stride,
                      int64_t rows, int64_t cols, float scale)
{
    int64_t whole_rows = 0, whole_cols = 0;
#ifdef HAVE_REGISTER_TRANSPOSE
    whole_rows = rows / LANES * LANES;
    whole_cols = cols / LANES * LANES;
    for (int64_t i0 = 0; i0 < whole_rows; i0 += LANES)
        for (int64_t c0 = 0; c0 < whole_cols; c0 += LANES) {
            lanes_t block[LANES];
            for (int i = 0; i < LANES; i++)
                block[i] = load(from + (i0 + i) * from_stride + c0) * scale;
            transpose_in_registers(block);
            for (int c = 0; c < LANES; c++)
                store(to + (c0 + c) * to_stride + i0, block[c]);
        }
#endif
    for (int64_t c = 0; c < cols; c++)
        for (int64_t i = c < whole_cols ? whole_rows : 0; i < rows; i++)
            to[c * to_stride + i] = from[i * from_stride + c] * scale;
}

/* to (cols x to_cols) = scale * from^T: from (rows x cols, row stride from_stride), zeros
 * past rows (columns of to). */
INLINE void copy_transposed(float *to, int64_t to_cols, const float *from, int64_t from_stride,
                            int64_t rows, int64_t cols, float scale)
{
    transpose(to, to_cols, from, from_stride, rows, cols, scale);
    for (int64_t c = 0; c < cols; c++)
        for (int64_t i = rows; i < to_cols; i++)
            to[c * to_cols + i] = 0.0f;
}

/* Lanes at or past valid (counted from 0): set in the mask. */
INLINE int_lanes_t past(int64_t valid)
{
    int_lanes_t index;
    for (int lane = 0; lane < LANES; lane++)
        index[lane] = lane;
    return index >= (int32_t)valid;
}

/* The scores past the m keys (products with the zero padding) -> -inf, so that they weigh
 * nothing: e^-inf = 0. */
INLINE void mask_padding(float *scores, int64_t rows, int64_t keys, int64_t m_pad)
{
    if (keys == m_pad)
        return;
    const int64_t last = m_pad - LANES;
    const int_lanes_t padding = past(keys - last);
    const lanes_t minus_infinity = (lanes_t){0} - INFINITY;
    for (int64_t i = 0; i < rows; i++)
        store(scores + i * m_pad + last,
              choose(padding, minus_infinity, load(scores + i * m_pad + last)));
}

INLINE float largest_lane(lanes_t value)
{
    float largest = value[0];
    for (int lane = 1; lane < LANES; lane++)
        largest = value[lane] > largest ? value[lane] : largest;
    return largest;
}

INLINE float lane_sum(lanes_t value)
{
    float total = 0.0f;
    for (int lane = 0; lane < LANES; lane++)
        total += value[lane];
    return total;
}

/* A row of m_pad scores in place -> e^(S - shift); the row's sum returned. */
INLINE float exponentiate(float *row, int64_t m_pad, float shift)
{
    lanes_t total = {0};
    for (int64_t j = 0; j < m_pad; j += LANES) {
        const lanes_t value = exponential(load(row + j) - shift);
        store(row + j, value);
        total += value;
    }
    return lane_sum(total);
}

INLINE float row_maximum(const float *row, int64_t m_pad)
{
    lanes_t largest = load(row);
    for (int64_t j = LANES; j < m_pad; j += LANES) {
        const lanes_t value = load(row + j);
        largest = choose(value > largest, value, largest);
    }
    return largest_lane(largest);
}

/* A head's (rows x d) operand as a product reads it, rows of a multiple of LANES floats: the
 * operand itself where d is one (leading dimension its row stride), else a copy in scratch
 * with zeros past d. */
INLINE const float *whole_vectors(const float *rows_data, int64_t row_stride, int64_t rows,
                                  int64_t d, float *scratch, int64_t *leading)
{
    const int64_t d_pad = padded(d);
    *leading = d == d_pad ? row_stride : d_pad;
    if (d == d_pad)
        return rows_data;
    for (int64_t i = 0; i < rows; i++) {
        memcpy(scratch + i * d_pad, rows_data + i * row_stride, d * sizeof(float));
        memset(scratch + i * d_pad + d, 0, (d_pad - d) * sizeof(float));
    }
    return scratch;
}

/* Floats of scratch a thread needs for one head, forward (0) or backward (1). */
static int64_t scratch_floats(const AttentionShape *shape, int backward)
{
    const int64_t m = padded(shape->keys), d = padded(shape->head_dim), r = ROWS_PER_BLOCK;
    if (!backward)
        return d * m + m * d + r * (d + m) + r;
    return 4 * d * m + m * d + r * (2 * d + 2 * m) + 2 * d * r + r;
}

PER_CPU static void forward_head(const AttentionShape *shape, int64_t b, int64_t h,
                                 const Operands *operands, float *scratch)
{
    const float *query = operands->query, *key = operands->key, *value = operands->value;
    float *out = operands->out, *lse = operands->lse;
    const int64_t n = shape->queries, m = shape->keys, d = shape->head_dim;
    const int64_t m_pad = padded(m), d_pad = padded(d), r = ROWS_PER_BLOCK;
    float *keys_t = scratch;                 /* d x m_pad: scale k^T */
    float *values_copy = keys_t + d * m_pad; /* m x d_pad, where d is not whole vectors */
    float *scores = values_copy + m_pad * d_pad; /* r x m_pad */
    float *outs = scores + r * m_pad;            /* r x d_pad */
    float *totals = outs + r * d_pad;            /* r: sums of e^(S - max) */
    const float *q = head_of(query, shape->query, b, h);
    copy_transposed(keys_t, m_pad, head_of(key, shape->key, b, h), shape->key.row, m, d,
                    (float)shape->scale);
    int64_t v_leading;
    const float *v = whole_vectors(head_of(value, shape->value, b, h), shape->value.row, m, d,
                                   values_copy, &v_leading);
    float *o = out + b * shape->out.batch + h * shape->out.head;
    float *head_lse = lse + (b * shape->heads + h) * n;
    for (int64_t start = 0; start < n; start += r) {
        const int64_t rows = n - start < r ? n - start : r;
        multiply(scores, m_pad, q + start * shape->query.row, shape->query.row, keys_t, m_pad,
                 rows, d, m_pad, 0);
        mask_padding(scores, rows, m, m_pad);
        for (int64_t i = 0; i < rows; i++) {
            const float largest = row_maximum(scores + i * m_pad, m_pad);
            totals[i] = exponentiate(scores + i * m_pad, m_pad, largest);
            head_lse[start + i] = largest + logf(totals[i]);
        }
        multiply(outs, d_pad, scores, m_pad, v, v_leading, rows, m, d_pad, 0);
        for (int64_t i = 0; i < rows; i++) {
            float *o_row = o + (start + i) * shape->out.row;
            const float reciprocal = 1.0f / totals[i];
            for (int64_t c = 0; c < d; c++)
                o_row[c] = outs[i * d_pad + c] * reciprocal;
        }
    }
}

PER_CPU static void backward_head(const AttentionShape *shape, int64_t b, int64_t h,
                                  const Operands *operands, float *scratch)
{
    const float *query = operands->query, *key = operands->key, *value = operands->value;
    const float *out = operands->out, *out_gradient = operands->out_gradient;
    const float *lse = operands->lse;
    float *query_gradient = operands->query_gradient, *key_gradient = operands->key_gradient;
    float *value_gradient = operands->value_gradient;
    const int64_t n = shape->queries, m = shape->keys, d = shape->head_dim;
    const int64_t m_pad = padded(m), d_pad = padded(d), r = ROWS_PER_BLOCK;
    const float scale = (float)shape->scale;
    float *keys_t = scratch;                          /* d x m_pad: scale k^T */
    float *values_t = keys_t + d * m_pad;             /* d x m_pad: v^T */
    float *keys_grad_t = values_t + d * m_pad;        /* d x m_pad, accumulated */
    float *values_grad_t = keys_grad_t + d * m_pad;   /* d x m_pad, accumulated */
    float *keys_copy = values_grad_t + d * m_pad;     /* m x d_pad, where d is not whole */
    float *queries_grad = keys_copy + m_pad * d_pad;  /* r x d_pad */
    float *outs_grad_copy = queries_grad + r * d_pad; /* r x d_pad, where d is not whole */
    float *weights = outs_grad_copy + r * d_pad;      /* r x m_pad: P, then dS */
    float *weights_grad = weights + r * m_pad;        /* r x m_pad: dP */
    float *queries_t = weights_grad + r * m_pad;      /* d x r: scale q^T */
    float *outs_grad_t = queries_t + d * r;           /* d x r: dout^T */
    float *deltas = outs_grad_t + d * r;              /* r: D */
    const float *k = head_of(key, shape->key, b, h), *v = head_of(value, shape->value, b, h);
    const float *q = head_of(query, shape->query, b, h);
    const float *o = head_of(out, shape->out, b, h);
    const float *o_grad = head_of(out_gradient, shape->out_gradient, b, h);
    const float *head_lse = lse + (b * shape->heads + h) * n;
    copy_transposed(keys_t, m_pad, k, shape->key.row, m, d, scale);
    copy_transposed(values_t, m_pad, v, shape->value.row, m, d, 1.0f);
    int64_t k_leading;
    const float *k_rows = whole_vectors(k, shape->key.row, m, d, keys_copy, &k_leading);
    memset(keys_grad_t, 0, 2 * d * m_pad * sizeof(float));
    for (int64_t start = 0; start < n; start += r) {
        const int64_t rows = n - start < r ? n - start : r;
        const float *q_block = q + start * shape->query.row;
        int64_t o_grad_leading;
        const float *o_grad_block =
            whole_vectors(o_grad + start * shape->out_gradient.row, shape->out_gradient.row,
                          rows, d, outs_grad_copy, &o_grad_leading);
        copy_transposed(queries_t, r, q_block, shape->query.row, rows, d, scale);
        copy_transposed(outs_grad_t, r, o_grad + start * shape->out_gradient.row,
                        shape->out_gradient.row, rows, d, 1.0f);
        for (int64_t i = 0; i < rows; i++) {
            const float *o_row = o + (start + i) * shape->out.row;
            const float *o_grad_row = o_grad + (start + i) * shape->out_gradient.row;
            float delta = 0.0f;
            for (int64_t c = 0; c < d; c++)
                delta += o_grad_row[c] * o_row[c];
            deltas[i] = delta;
        }
        multiply(weights, m_pad, q_block, shape->query.row, keys_t, m_pad, rows, d, m_pad, 0);
        mask_padding(weights, rows, m, m_pad);
        for (int64_t i = 0; i < rows; i++)
            exponentiate(weights + i * m_pad, m_pad, head_lse[start + i]); /* P */
        /* dv^T += dout^T P, before P becomes dS. */
        multiply(values_grad_t, m_pad, outs_grad_t, r, weights, m_pad, d, rows, m_pad, 1);
        multiply(weights_grad, m_pad, o_grad_block, o_grad_leading, values_t, m_pad, rows, d,
                 m_pad, 0);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < m_pad; j++)
                weights[i * m_pad + j] *= weights_grad[i * m_pad + j] - deltas[i]; /* dS */
        multiply(queries_grad, d_pad, weights, m_pad, k_rows, k_leading, rows, m, d_pad, 0);
        multiply(keys_grad_t, m_pad, queries_t, r, weights, m_pad, d, rows, m_pad, 1);
        for (int64_t i = 0; i < rows; i++) {
            float *q_grad_row = query_gradient + b * shape->query_gradient.batch +
                                h * shape->query_gradient.head +
                                (start + i) * shape->query_gradient.row;
            for (int64_t c = 0; c < d; c++)
                q_grad_row[c] = queries_grad[i * d_pad + c] * scale;
        }
    }
    transpose(key_gradient + b * shape->key_gradient.batch + h * shape->key_gradient.head,
              shape->key_gradient.row, keys_grad_t, m_pad, d, m, 1.0f);
    transpose(value_gradient + b * shape->value_gradient.batch + h * shape->value_gradient.head,
              shape->value_gradient.row, values_grad_t, m_pad, d, m, 1.0f);
}

typedef void (*HeadWork)(const AttentionShape *, int64_t, int64_t, const Operands *, float *);

/* work on every (batch, head) pair, the pairs split over threads, each thread with its own
 * scratch. Returns 0, or 1 where a thread's scratch could not be allocated. */
static int each_head(const AttentionShape *shape, HeadWork work, int backward,
                     const Operands *operands, int threads)
{
    const int64_t heads = shape->batch * shape->heads;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *scratch = malloc(scratch_floats(shape, backward) * sizeof(float));
        failed = scratch == NULL;
#pragma omp for schedule(static)
        for (int64_t index = 0; index < heads; index++)
            if (scratch != NULL)
                work(shape, index / shape->heads, index % shape->heads, operands, scratch);
        free(scratch);
    }
    return failed;
}

/* Forward: out (strided like shape->out) and lse (batch, heads, queries) contiguous. Returns as
 * each_head. */
int lawful_attention_forward(const AttentionShape *shape, const float *query, const float *key,
                             const float *value, float *out, float *lse, int threads)
{
    const Operands operands = {query, key, value, NULL, out, lse, NULL, NULL, NULL};
    return each_head(shape, forward_head, 0, &operands, threads);
}

/* Backward: the three gradients, strided as shape says (out and lse only read). Returns as
 * each_head. */
int lawful_attention_backward(const AttentionShape *shape, const float *query, const float *key,
                              const float *value, const float *out, const float *out_gradient,
                              const float *lse, float *query_gradient, float *key_gradient,
                              float *value_gradient, int threads)
{
    const Operands operands = {query,          key,          value,          out_gradient,
                               (float *)out,   (float *)lse, query_gradient, key_gradient,
                               value_gradient};
    return each_head(shape, backward_head, 1, &operands, threads);
}
