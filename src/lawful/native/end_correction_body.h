/* The typed part of end_correction.c, included once per dtype with REAL (float or double),
 * SUFFIX (f32 or f64), ERF and EXP defined. Every per-sample loop runs over the channels, the
 * innermost axis of every work array, so it vectorises; the 2 x 2 systems are solved in
 * double. Layouts (C channels, I inputs, K2 = 2 modes, P points near the ends):
 *   work arrays of one sample  x, spectrum (K2, C); y, corrected, next (P, C)
 *   state                      multiples, residuals (B, 2, C); inverse (4, C);
 *                              spectra Q (2, K2, C); vectors V (2, P, C); keep (C);
 *                              slope (B, P, C): the activation's derivative there
 */
#define NAME_(name, suffix) name##_##suffix
#define NAME__(name, suffix) NAME_(name, suffix)
#define NAME(name) NAME__(name, SUFFIX)

typedef struct {
    REAL *multiples, *residuals, *inverse, *spectra, *vectors, *keep, *slope;
} NAME(State);

static NAME(State) NAME(state_views)(const EndShape *shape, REAL *base) {
    int64_t B = shape->batch, C = shape->channels, K2 = 2 * shape->modes, P = shape->near;
    NAME(State) state;
    state.multiples = base;
    state.residuals = state.multiples + B * 2 * C;
    state.inverse = state.residuals + B * 2 * C;
    state.spectra = state.inverse + 4 * C;
    state.vectors = state.spectra + 2 * K2 * C;
    state.keep = state.vectors + 2 * P * C;
    state.slope = state.keep + C;
    return state;
}

/* y += a x over n values. */
static inline void NAME(axpy)(REAL *restrict y, REAL a, const REAL *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

/* One sample's (channels, modes) complex spectrum through its strides <-> dense (K2, C). */
static void NAME(gather)(const EndShape *shape, const REAL *source, const int64_t *stride,
                         int64_t b, REAL *dense) {
    const int64_t C = shape->channels;
    for (int64_t k = 0; k < shape->modes; ++k)
        for (int64_t o = 0; o < C; ++o) {
            const REAL *z = source + 2 * (b * stride[0] + o * stride[1] + k * stride[2]);
            dense[2 * k * C + o] = z[0], dense[(2 * k + 1) * C + o] = z[1];
        }
}

static void NAME(scatter)(const EndShape *shape, const REAL *dense, const int64_t *stride,
                          int64_t b, REAL *target) {
    const int64_t C = shape->channels;
    for (int64_t k = 0; k < shape->modes; ++k)
        for (int64_t o = 0; o < C; ++o) {
            REAL *z = target + 2 * (b * stride[0] + o * stride[1] + k * stride[2]);
            z[0] = dense[2 * k * C + o], z[1] = dense[(2 * k + 1) * C + o];
        }
}

/* GELU, z Phi(z), into *value and its derivative Phi(z) + z phi(z) into *slope. */
static inline void NAME(gelu)(REAL z, REAL *value, REAL *slope) {
    const REAL density = (REAL)(0.5 * M_2_SQRTPI * M_SQRT1_2); /* 1 / sqrt(2 pi) */
    REAL phi = (REAL)0.5 * (1 + ERF(z * (REAL)M_SQRT1_2));
    *value = z * phi;
    *slope = phi + z * EXP((REAL)-0.5 * z * z) * density;
}

/* Per channel: S c_j, the responses near the ends, the 2 x 2 system and its inverse. The
 * responses are not scaled: both share one max-norm (the circular shift), and the pivot test
 * and the correction are invariant to a scale common to both. */
static void NAME(channel_systems)(const EndShape *shape, const EndConstants *constants,
                                  const REAL *summed, const REAL *row_sums, NAME(State) *st) {
    const int64_t C = shape->channels, K = shape->modes, K2 = 2 * K, P = shape->near;
    const double *impulses = constants->impulses, *rows = constants->rows;
    for (int64_t o = 0; o < C; ++o) {
        double q[2][K2], v[2][P], matrix[2][2];
        for (int j = 0; j < 2; ++j) {
            for (int64_t k = 0; k < K; ++k) {
                const REAL *a = summed + o * K2 + 2 * k;
                const double *c = constants->coefficients + (j * K + k) * 2;
                q[j][2 * k] = a[0] * c[0] - a[1] * c[1];
                q[j][2 * k + 1] = a[0] * c[1] + a[1] * c[0];
            }
            for (int64_t p = 0; p < P; ++p) {
                double value = row_sums[o] * impulses[j * P + p];
                for (int64_t k = 0; k < K2; ++k) value += q[j][k] * constants->synthesis[k * P + p];
                v[j][p] = value;
            }
        }
        for (int e = 0; e < 2; ++e)
            for (int j = 0; j < 2; ++j) {
                double value = 0;
                for (int64_t p = 0; p < P; ++p) value += rows[e * P + p] * v[j][p];
                matrix[e][j] = value;
            }
        double det = matrix[0][0] * matrix[1][1] - matrix[0][1] * matrix[1][0];
        double row_sizes = (fabs(matrix[0][0]) + fabs(matrix[0][1])) *
                           (fabs(matrix[1][0]) + fabs(matrix[1][1]));
        int keep = !(fabs(det) <= shape->pivot_tolerance * row_sizes);
        if (!keep) { /* the impulses instead: overwrite the ends, leave the interior alone */
            for (int j = 0; j < 2; ++j) {
                for (int64_t k = 0; k < K2; ++k) q[j][k] = 0;
                for (int64_t p = 0; p < P; ++p) v[j][p] = impulses[j * P + p];
            }
            for (int e = 0; e < 2; ++e)
                for (int j = 0; j < 2; ++j) {
                    double value = 0;
                    for (int64_t p = 0; p < P; ++p) value += rows[e * P + p] * v[j][p];
                    matrix[e][j] = value;
                }
            det = matrix[0][0] * matrix[1][1] - matrix[0][1] * matrix[1][0];
        }
        st->keep[o] = (REAL)keep;
        for (int j = 0; j < 2; ++j) {
            for (int64_t k = 0; k < K2; ++k) st->spectra[(j * K2 + k) * C + o] = (REAL)q[j][k];
            for (int64_t p = 0; p < P; ++p) st->vectors[(j * P + p) * C + o] = (REAL)v[j][p];
        }
        /* [vector j][equation e] */
        st->inverse[0 * C + o] = (REAL)(matrix[1][1] / det);
        st->inverse[1 * C + o] = (REAL)(-matrix[0][1] / det);
        st->inverse[2 * C + o] = (REAL)(-matrix[1][0] / det);
        st->inverse[3 * C + o] = (REAL)(matrix[0][0] / det);
    }
}

/* The spectral weights summed over input channels, (C, K2), and W's row sums, (C). */
static void NAME(weight_sums)(const EndShape *shape, const REAL *spectral_weight,
                              const REAL *pointwise_weight, REAL *summed, REAL *row_sums) {
    const int64_t C = shape->channels, I = shape->in_channels, CK2 = C * 2 * shape->modes;
    memset(summed, 0, sizeof(REAL) * CK2);
    for (int64_t i = 0; i < I; ++i) NAME(axpy)(summed, 1, spectral_weight + i * CK2, CK2);
    for (int64_t o = 0; o < C; ++o) {
        REAL total = 0;
        for (int64_t i = 0; i < I; ++i) total += pointwise_weight[o * I + i];
        row_sums[o] = total;
    }
}

VECTORISED int NAME(lawful_end_correction_forward)(
    const EndShape *shape, const EndConstants *constants, const REAL *mixed,
    const REAL *near_input, const REAL *spectral_weight, const REAL *pointwise_weight,
    const REAL *pointwise_bias, REAL *spectrum, REAL *next_near, REAL *state_base) {
    const int64_t B = shape->batch, C = shape->channels, I = shape->in_channels;
    const int64_t K2 = 2 * shape->modes, P = shape->near;
    /* (C, K2) S, (C) W 1, (I, C) W^T, (K2, C) x and the spectrum, (P, C) y, (C) an end */
    REAL *work = malloc(sizeof(REAL) * (C * K2 + C + I * C + 2 * K2 * C + P * C + C));
    if (!work) return 1;
    REAL *summed = work, *row_sums = summed + C * K2, *weight_t = row_sums + C;
    REAL *x = weight_t + I * C, *out = x + K2 * C, *y = out + K2 * C, *end = y + P * C;
    NAME(State) st = NAME(state_views)(shape, state_base);
    NAME(weight_sums)(shape, spectral_weight, pointwise_weight, summed, row_sums);
    NAME(channel_systems)(shape, constants, summed, row_sums, &st);
    for (int64_t o = 0; o < C; ++o)
        for (int64_t i = 0; i < I; ++i) weight_t[i * C + o] = pointwise_weight[o * I + i];
    const double *syn = constants->synthesis, *residual_rows = constants->residual_rows;
    for (int64_t b = 0; b < B; ++b) {
        NAME(gather)(shape, mixed, shape->mixed_stride, b, x);
        /* y = syn x + W v + b near the ends */
        for (int64_t p = 0; p < P; ++p) {
            REAL *y_p = y + p * C;
            memcpy(y_p, pointwise_bias, sizeof(REAL) * C);
            for (int64_t i = 0; i < I; ++i)
                NAME(axpy)(y_p, near_input[(b * I + i) * P + p], weight_t + i * C, C);
            for (int64_t k = 0; k < K2; ++k) NAME(axpy)(y_p, (REAL)syn[k * P + p], x + k * C, C);
        }
        /* residuals t - rows y, multiples M^-1 r */
        const double *t = constants->targets + b * shape->target_stride;
        REAL *m = st.multiples + b * 2 * C, *res = st.residuals + b * 2 * C;
        for (int e = 0; e < 2; ++e) {
            REAL *r_e = res + e * C;
            for (int64_t o = 0; o < C; ++o) r_e[o] = (REAL)t[e];
            for (int64_t p = 0; p < P; ++p)
                NAME(axpy)(r_e, (REAL)-residual_rows[e * P + p], y + p * C, C);
        }
        const REAL *inv = st.inverse;
        for (int64_t o = 0; o < C; ++o) {
            m[o] = inv[o] * res[o] + inv[C + o] * res[C + o];
            m[C + o] = inv[2 * C + o] * res[o] + inv[3 * C + o] * res[C + o];
        }
        /* spectrum = x + m_0 Q_0 + m_1 Q_1; corrected = y + m_0 V_0 + m_1 V_1 */
        for (int64_t k = 0; k < K2; ++k) {
            const REAL *q0 = st.spectra + k * C, *q1 = st.spectra + (K2 + k) * C;
            for (int64_t o = 0; o < C; ++o)
                out[k * C + o] = x[k * C + o] + (m[o] * q0[o] + m[C + o] * q1[o]);
        }
        NAME(scatter)(shape, out, shape->spectrum_stride, b, spectrum);
        /* next = exact(act(corrected)), corrected = y + m_0 V_0 + m_1 V_1: the activation
         * (into y, in place), then the ends the conditions give */
        REAL *slope = st.slope + b * P * C;
        for (int64_t p = 0; p < P; ++p) {
            const REAL *v0 = st.vectors + p * C, *v1 = st.vectors + (P + p) * C;
            for (int64_t o = 0; o < C; ++o) {
                REAL z = y[p * C + o] + (m[o] * v0[o] + m[C + o] * v1[o]);
                if (shape->gelu)
                    NAME(gelu)(z, y + p * C + o, slope + p * C + o);
                else
                    y[p * C + o] = z, slope[p * C + o] = 1;
            }
        }
        const double *end_values = constants->end_values + b * shape->end_value_stride;
        for (int e = 0; e < 2; ++e) {
            for (int64_t o = 0; o < C; ++o) end[o] = (REAL)end_values[e];
            for (int64_t p = 0; p < P; ++p)
                NAME(axpy)(end, (REAL)constants->end_rows[e * P + p], y + p * C, C);
            int64_t p_end = e == 0 ? 0 : P - 1;
            for (int64_t o = 0; o < C; ++o) next_near[(b * C + o) * P + p_end] = end[o];
        }
        for (int64_t o = 0; o < C; ++o)
            for (int64_t p = 1; p < P - 1; ++p) next_near[(b * C + o) * P + p] = y[p * C + o];
    }
    free(work);
    return 0;
}

VECTORISED int NAME(lawful_end_correction_backward)(
    const EndShape *shape, const EndConstants *constants, const REAL *state_base,
    const REAL *near_input, const REAL *pointwise_weight, const REAL *spectrum_gradient,
    const REAL *near_gradient, REAL *mixed_gradient, REAL *near_input_gradient,
    REAL *spectral_weight_gradient, REAL *pointwise_weight_gradient,
    REAL *pointwise_bias_gradient) {
    const int64_t B = shape->batch, C = shape->channels, I = shape->in_channels;
    const int64_t K = shape->modes, K2 = 2 * K, P = shape->near;
    const int64_t accumulated = 2 * K2 * C + 2 * P * C + 4 * C + I * C + C; /* zeroed */
    /* accumulated: dL/dQ (2, K2, C), dL/dV (2, P, C), dL/dM^-1 (4, C), dL/dW^T (I, C),
     * dL/db (C); per sample: dL/dspectrum (K2, C), dL/d(corrected) and dL/dy (P, C), dL/dm,
     * dL/dr (2, C), dL/dv^T (P, I) */
    REAL *work = calloc(accumulated + K2 * C + 2 * P * C + 4 * C + P * I, sizeof(REAL));
    if (!work) return 1;
    REAL *g_spectra = work, *g_vectors = g_spectra + 2 * K2 * C, *g_inverse = g_vectors + 2 * P * C;
    REAL *g_weight_t = g_inverse + 4 * C, *g_bias = g_weight_t + I * C;
    REAL *g_out = g_bias + C, *g = g_out + K2 * C, *g_y = g + P * C, *g_m = g_y + P * C;
    REAL *g_r = g_m + 2 * C, *g_near_t = g_r + 2 * C;
    NAME(State) st = NAME(state_views)(shape, (REAL *)state_base);
    const double *syn = constants->synthesis, *residual_rows = constants->residual_rows;
    for (int64_t b = 0; b < B; ++b) {
        NAME(gather)(shape, spectrum_gradient, shape->spectrum_stride, b, g_out);
        /* through exact() and act(): dL/d(corrected) */
        const REAL *g_next = near_gradient + b * C * P;
        for (int64_t p = 0; p < P; ++p)
            for (int64_t o = 0; o < C; ++o)
                g[p * C + o] = (p == 0 || p == P - 1) ? 0 : g_next[o * P + p];
        for (int e = 0; e < 2; ++e) {
            int64_t p_end = e == 0 ? 0 : P - 1;
            for (int64_t p = 0; p < P; ++p) {
                REAL row = (REAL)constants->end_rows[e * P + p];
                for (int64_t o = 0; o < C; ++o) g[p * C + o] += row * g_next[o * P + p_end];
            }
        }
        const REAL *slope = st.slope + b * P * C;
        for (int64_t i = 0; i < P * C; ++i) g[i] *= slope[i];
        /* dL/dm, dL/dV, dL/dQ */
        const REAL *m = st.multiples + b * 2 * C, *res = st.residuals + b * 2 * C;
        for (int j = 0; j < 2; ++j) {
            REAL *g_mj = g_m + j * C;
            memset(g_mj, 0, sizeof(REAL) * C);
            for (int64_t p = 0; p < P; ++p) {
                const REAL *v = st.vectors + (j * P + p) * C, *g_p = g + p * C;
                REAL *g_v = g_vectors + (j * P + p) * C;
                for (int64_t o = 0; o < C; ++o)
                    g_mj[o] += g_p[o] * v[o], g_v[o] += m[j * C + o] * g_p[o];
            }
            for (int64_t k = 0; k < K2; ++k) {
                const REAL *q = st.spectra + (j * K2 + k) * C, *g_k = g_out + k * C;
                REAL *g_q = g_spectra + (j * K2 + k) * C;
                for (int64_t o = 0; o < C; ++o)
                    g_mj[o] += g_k[o] * q[o], g_q[o] += m[j * C + o] * g_k[o];
            }
        }
        /* m = M^-1 r: dL/dM^-1 += dL/dm r^T, dL/dr = M^-T dL/dm */
        const REAL *inv = st.inverse;
        for (int64_t o = 0; o < C; ++o) {
            for (int j = 0; j < 2; ++j)
                for (int e = 0; e < 2; ++e)
                    g_inverse[(j * 2 + e) * C + o] += g_m[j * C + o] * res[e * C + o];
            g_r[o] = inv[o] * g_m[o] + inv[2 * C + o] * g_m[C + o];
            g_r[C + o] = inv[C + o] * g_m[o] + inv[3 * C + o] * g_m[C + o];
        }
        /* r = t - rows y and corrected = y + ...: dL/dy */
        for (int64_t p = 0; p < P; ++p) {
            REAL *g_yp = g_y + p * C;
            memcpy(g_yp, g + p * C, sizeof(REAL) * C);
            for (int e = 0; e < 2; ++e)
                NAME(axpy)(g_yp, (REAL)-residual_rows[e * P + p], g_r + e * C, C);
            NAME(axpy)(g_bias, 1, g_yp, C);
        }
        /* y = syn x + W v + b: dL/dx (the spectrum passes x through), dL/dW, dL/dv */
        for (int64_t k = 0; k < K2; ++k)
            for (int64_t p = 0; p < P; ++p) NAME(axpy)(g_out + k * C, (REAL)syn[k * P + p], g_y + p * C, C);
        NAME(scatter)(shape, g_out, shape->mixed_stride, b, mixed_gradient);
        memset(g_near_t, 0, sizeof(REAL) * P * I);
        for (int64_t i = 0; i < I; ++i)
            for (int64_t p = 0; p < P; ++p)
                NAME(axpy)(g_weight_t + i * C, near_input[(b * I + i) * P + p], g_y + p * C, C);
        for (int64_t o = 0; o < C; ++o)
            for (int64_t p = 0; p < P; ++p)
                NAME(axpy)(g_near_t + p * I, g_y[p * C + o], pointwise_weight + o * I, I);
        for (int64_t i = 0; i < I; ++i)
            for (int64_t p = 0; p < P; ++p)
                near_input_gradient[(b * I + i) * P + p] = g_near_t[p * I + i];
    }
    /* Through the systems to the responses, S c_j, S and W 1 (channels on impulses: none). */
    REAL *g_summed = g_out; /* (C, K2), reusing the per-sample space (K2 * C values) */
    memset(g_summed, 0, sizeof(REAL) * C * K2);
    for (int64_t o = 0; o < C; ++o) {
        REAL row_sum_gradient = 0;
        if (st.keep[o] != 0) {
            double inverse[2][2], g_inv[2][2], g_matrix[2][2];
            for (int j = 0; j < 2; ++j)
                for (int e = 0; e < 2; ++e)
                    inverse[j][e] = st.inverse[(j * 2 + e) * C + o],
                    g_inv[j][e] = g_inverse[(j * 2 + e) * C + o];
            for (int e = 0; e < 2; ++e) /* -M^-T dL/dM^-1 M^-T: [equation e][vector j] */
                for (int j = 0; j < 2; ++j) {
                    double value = 0;
                    for (int a = 0; a < 2; ++a)
                        for (int c = 0; c < 2; ++c) value += inverse[a][e] * g_inv[a][c] * inverse[j][c];
                    g_matrix[e][j] = -value;
                }
            for (int j = 0; j < 2; ++j) {
                double g_q[K2]; /* dL/d(S c_j) */
                for (int64_t k = 0; k < K2; ++k) g_q[k] = g_spectra[(j * K2 + k) * C + o];
                for (int64_t p = 0; p < P; ++p) {
                    double g_response = g_vectors[(j * P + p) * C + o] +
                                        constants->rows[p] * g_matrix[0][j] +
                                        constants->rows[P + p] * g_matrix[1][j];
                    for (int64_t k = 0; k < K2; ++k) g_q[k] += g_response * syn[k * P + p];
                    row_sum_gradient += (REAL)(g_response * constants->impulses[j * P + p]);
                }
                for (int64_t k = 0; k < K; ++k) { /* dL/dS += dL/d(S c) conj(c) */
                    const double *c = constants->coefficients + (j * K + k) * 2;
                    g_summed[o * K2 + 2 * k] += (REAL)(g_q[2 * k] * c[0] + g_q[2 * k + 1] * c[1]);
                    g_summed[o * K2 + 2 * k + 1] += (REAL)(g_q[2 * k + 1] * c[0] - g_q[2 * k] * c[1]);
                }
            }
        }
        for (int64_t i = 0; i < I; ++i)
            pointwise_weight_gradient[o * I + i] = g_weight_t[i * C + o] + row_sum_gradient;
        pointwise_bias_gradient[o] = g_bias[o];
    }
    for (int64_t i = 0; i < I; ++i) /* S sums the weights over input channels */
        memcpy(spectral_weight_gradient + i * C * K2, g_summed, sizeof(REAL) * C * K2);
    free(work);
    return 0;
}

#undef NAME
#undef NAME__
#undef NAME_
