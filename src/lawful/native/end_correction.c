/* BOON's correction of a 1-D Fourier layer near the two ends of its grid, forward and backward
 * (lawful.operators.boon, BoundaryCorrectedFNO._corrected_spectral_layer).
 *
 * Everything here acts on small arrays: the layer's kept spectrum (batch, channels, modes), its
 * input on the P points near the ends, the weights. In eager PyTorch the same work is some
 * ninety operations and their backward twice as many, each costing more to dispatch than to
 * compute; here it is one call each way. Per output channel o, with the spectral weights
 * summed over input channels S_o, W the pointwise weight, b its bias:
 *
 *   response spectra  Q_jo = S_o c_j                 c_j: kept coefficients of the impulse e_j
 *   response near     R_jo = syn Q_jo + (W 1)_o e_j             syn: irfft near the ends
 *   system            M_o[e][j] = rows_e . R_jo,   near-singular: the impulses' matrix instead
 *   plain near        y_bo = syn X_bo + W v_b + b      (X the mixed spectrum, v the input near)
 *   multiples         m_bo = M_o^-1 (t_b - residual_rows y_bo)
 *   outputs           spectrum_bo = X_bo + sum_j m_boj Q_jo   (no Q on near-singular channels),
 *                     next_bo = exact(act(y_bo + sum_j m_boj V_jo))  (V = R, or the impulses)
 *
 * where act is GELU (0.5 z (1 + erf(z / sqrt 2))) or the identity, and exact sets the two end
 * entries as the conditions do (lawful.constraints.boundary.apply_boundary_conditions, affine:
 * end_e = end_rows_e . a + end_values_be): next is the next layer's input near the ends.
 *
 * The eager form scales each response to max-norm 1 first, which takes a synthesis over the
 * whole grid; here none is needed: the layer is circular, so the response to e_N is the response
 * to e_0 shifted by N, both have the same max-norm, and the pivot test and the correction are
 * invariant to a scale common to both vectors. The backward is the adjoint of each line in
 * reverse (d M^-1 = -M^-1 dM M^-1).
 *
 * The arithmetic is in the caller's dtype (float or double), as the eager form's, except the
 * 2 x 2 systems, solved in double; end_correction_body.h is that code, included once per dtype.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vectorised.h"

/* The sizes of one call, mirrored by lawful.native._EndShape. Strides of the spectra are in
 * complex values (real and imaginary parts adjacent); every other array is dense in the layout
 * its comment gives. */
typedef struct {
    int64_t batch, channels, in_channels, modes, near;
    int64_t mixed_stride[3];    /* the mixed spectrum X, or its gradient: batch, channel, mode */
    int64_t spectrum_stride[3]; /* the corrected spectrum, or its gradient: the same */
    int64_t target_stride;      /* 0: one pair of targets for every sample, else 2 */
    int64_t end_value_stride;   /* the same for the end values */
    int64_t gelu;               /* 1: the activation is GELU, 0: the identity */
    double pivot_tolerance;
} EndShape;

/* The constants of the grid and the conditions, in double (lawful.native.EndConstants). */
typedef struct {
    const double *synthesis;     /* (2 modes, near): irfft near the ends of a unit coefficient */
    const double *coefficients;  /* (2 ends, modes, 2): the impulses' kept coefficients c_j */
    const double *rows;          /* (2 equations, near) */
    const double *residual_rows; /* (2 equations, near): rows of the equations with data */
    const double *impulses;      /* (2 ends, near): e_0 and e_N near the ends */
    const double *targets;       /* (batch or 1, 2): the boundary data */
    const double *end_rows;      /* (2 ends, near): the exact end entries' linear part */
    const double *end_values;    /* (batch or 1, 2): and their data part */
} EndConstants;

/* Values (of the caller's dtype) the forward leaves for the backward: end_correction_body.h's
 * State. */
int64_t lawful_end_state_size(const EndShape *shape) {
    int64_t b = shape->batch, c = shape->channels, k2 = 2 * shape->modes, p = shape->near;
    return 4 * b * c + 4 * c + 2 * k2 * c + 2 * p * c + c + b * p * c;
}

#define REAL float
#define SUFFIX f32
#define ERF erff
#define EXP expf
#include "end_correction_body.h"
#undef REAL
#undef SUFFIX
#undef ERF
#undef EXP

#define REAL double
#define SUFFIX f64
#define ERF erf
#define EXP exp
#include "end_correction_body.h"
#undef REAL
#undef SUFFIX
#undef ERF
#undef EXP
