/* Hand-written library kernels that compiled plans call: matmul (with bias, activation and
 * activation-backward epilogues), and the pieces of convolution and pooling (im2col, col2im,
 * max-pool and its backward). Fused attention is in attention.c, built appended to this file.
 *
 * Matmul stays with BLAS (MKL's or OpenBLAS's sgemm is faster than anything a code generator of
 * this size would emit), but it runs on *our* OpenMP threads: each thread calls single-threaded
 * sgemm on its share of rows, columns, the batch or (weight gradients) the inner dim. One thread
 * pool for BLAS and the fused kernels means neither pool spins on the cores the other needs (see
 * ember/_threadpools.py).
 *
 * im2col, col2im and max-pool keep the exact layouts and summation orders of the NumPy kernels in
 * ops/nn.py, so the fused kernels around them see the strides they were generated for.
 *
 * Strides are in elements; a matrix operand needs unit stride along one of its two dims.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#pragma GCC target("prefer-vector-width=512")
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <omp.h>

/* inside `omp simd` loops GCC then calls glibc's vector expf (libmvec) instead of the scalar one */
#pragma omp declare simd notinbranch
float expf(float);

typedef int64_t i64;
typedef void (*sgemm64_t)(int, int, int, i64, i64, i64, float, const float *, i64, const float *, i64,
                          float, float *, i64);
typedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                          float, float *, int);
typedef void (*set_threads_t)(int);
typedef int (*get_threads_t)(void);

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static void *g_sgemm;
static int g_ilp64;
static set_threads_t g_set_threads;
static get_threads_t g_get_threads;

void ember_lib_init(void *sgemm, int ilp64, void *set_threads, void *get_threads) {
    g_sgemm = sgemm;
    g_ilp64 = ilp64;
    g_set_threads = (set_threads_t)set_threads;
    g_get_threads = (get_threads_t)get_threads;
}

/* C (m x n, row stride ldc) = alpha * op(A) op(B) + beta * C, row-major */
static void gemm(int ta, int tb, i64 m, i64 n, i64 k, float alpha, const float *a, i64 lda, const float *b,
                 i64 ldb, float beta, float *c, i64 ldc) {
    if (g_ilp64)
        ((sgemm64_t)g_sgemm)(ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        ((sgemm32_t)g_sgemm)(ROW_MAJOR, ta, tb, (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta,
                             c, (int)ldc);
}

/* BLAS runs single-threaded inside our parallel regions; its own count is restored after */
static int blas_serial(void) {
    int prev = g_get_threads ? g_get_threads() : 1;
    if (g_set_threads && prev != 1) g_set_threads(1);
    return prev;
}

static void blas_restore(int prev) {
    if (g_set_threads && prev != 1) g_set_threads(prev);
}

/* transpose flag and leading dimension of a (rows x cols) operand with strides (s_row, s_col) */
static int layout(i64 s_row, i64 s_col, i64 cols, i64 *ld) {
    if (s_col == 1) {
        *ld = s_row > cols ? s_row : cols;
        return NO_TRANS;
    }
    *ld = s_col;
    return TRANS;
}

/* offset of row i of an operand read with transpose flag t and leading dimension ld */
static inline i64 row_at(int t, i64 ld, i64 i) { return t == NO_TRANS ? i * ld : i; }

/* how BLAS reads the operands of op(A) (M x K) op(B) (K x N) given their element strides */
typedef struct {
    int ta, tb;
    i64 lda, ldb;
} operands_t;

static operands_t operands(i64 M, i64 N, i64 K, i64 sam, i64 sak, i64 sbk, i64 sbn) {
    operands_t o;
    o.ta = layout(sam, sak, K, &o.lda);
    o.tb = layout(sbk, sbn, N, &o.ldb);
    if (o.ta == TRANS && o.lda < M) o.lda = M;
    if (o.tb == TRANS && o.ldb < K) o.ldb = K;
    return o;
}

/* rows [lo, hi) of C = op(A) op(B) (M x N, row stride N), or columns [lo, hi) with by_cols, on this
 * thread: returns the block's offset in C, its row and column counts in *m, *n */
static i64 gemm_block(operands_t o, int by_cols, i64 lo, i64 hi, i64 M, i64 N, i64 K, const float *A,
                      const float *B, float *C, i64 *m, i64 *n) {
    i64 off;
    *m = M;
    *n = N;
    if (by_cols) {
        B += row_at(o.tb == NO_TRANS ? TRANS : NO_TRANS, o.ldb, lo);  /* column lo of op(B) */
        off = lo;
        *n = hi - lo;
    } else {
        A += row_at(o.ta, o.lda, lo);
        off = lo * N;
        *m = hi - lo;
    }
    gemm(o.ta, o.tb, *m, *n, K, 1.0f, A, o.lda, B, o.ldb, 0.0f, C + off, N);
    return off;
}

/* the epilogue activations, the same arithmetic as generated kernels (codegen_c.py; but for gelu_tanh
 * with AVX-512: gelu_tanh_rows below): 1 relu,
 * 2 gelu with the tanh approximation, 3 exact gelu (erf), 4 tanh, 5 sigmoid, 6 silu */
#pragma omp declare simd notinbranch
float tanhf(float);
#pragma omp declare simd notinbranch
float erff(float);

static inline float sigmoidf_(float x) {
    float e = expf(-fabsf(x));
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* y[r * ld + q] = act(h[r * ld + q]) for r < m, q < n: one vectorised loop per activation (a
 * switch inside the loop would keep GCC from vectorising it) */
#define ACT_LOOP(EXPR)                                                                                  \
    for (i64 r = 0; r < m; r++) {                                                                       \
        const float *hr = h + r * ld;                                                                   \
        float *yr = y + r * ld;                                                                         \
        _Pragma("omp simd") for (i64 q = 0; q < n; q++) {                                              \
            const float x = hr[q];                                                                      \
            yr[q] = (EXPR);                                                                             \
        }                                                                                               \
    }

#if defined(__AVX512F__)
#include <immintrin.h>

/* For 16 values z = 2u log2(e): sigma = e / (e + 1) with
 * e = exp(2u) = 2^z, and *rest = 1 - sigma = 1 / (e + 1). GELU's tanh through it: 1 + tanh(u) =
 * 2 sigma, 1 - tanh(u)^2 = 4 sigma (1 - sigma). 2^z = 2^n 2^f, n = round(z), 2^f from its Taylor
 * series to f^7 (|f| <= 1/2: relative error ~5e-9), 1 / (e + 1) from rcp14 and one Newton step.
 * ~7 cycles per 16 values where libmvec's tanhf took ~14 (W3's GELU epilogues: ~0.5 ms a step).
 * z is capped at 100 (e stays finite); below, -inf gives NaN as eager's 0.5 x (1 + tanh(u)) does. */
static inline __m512 sigmoid_exp2(__m512 z, __m512 *rest) {
    const __m512 one = _mm512_set1_ps(1.0f);
    z = _mm512_min_ps(z, _mm512_set1_ps(100.0f));
    __m512 nz = _mm512_roundscale_ps(z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(z, nz);
    __m512 p = _mm512_set1_ps(1.525273380405984e-05f);  /* ln2^k / k!, k = 7 .. 0 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
    p = _mm512_fmadd_ps(p, f, one);
    __m512 e = _mm512_scalef_ps(p, nz);
    __m512 d = _mm512_add_ps(e, one);
    __m512 r = _mm512_rcp14_ps(d);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
    *rest = r;
    return _mm512_mul_ps(e, r);  /* e / (e + 1), accurate for small e too (1 - r would not be) */
}

/* 2u log2(e), u = sqrt(2/pi) (x + 0.044715 x^3): GELU's tanh argument, scaled for sigmoid_exp2 */
static inline __m512 gelu_z(__m512 x) {
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(x2, _mm512_set1_ps(0.044715f)), x, x);
    return _mm512_mul_ps(inner, _mm512_set1_ps(0.7978845608028654f * 2.0f * 1.4426950408889634f));
}

/* y = gelu_tanh(h) = h sigmoid(2u) (0.5 h (1 + tanh u) rewritten), row by row, 16 at a time */
static void gelu_tanh_rows(const float *h, float *y, i64 m, i64 n, i64 ld) {
    for (i64 r = 0; r < m; r++)
        for (i64 q = 0; q < n; q += 16) {
            __mmask16 k = n - q >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - q)) - 1);
            __m512 x = _mm512_maskz_loadu_ps(k, h + r * ld + q), rest;
            __m512 sg = sigmoid_exp2(gelu_z(x), &rest);
            _mm512_mask_storeu_ps(y + r * ld + q, k, _mm512_mul_ps(x, sg));
        }
}

/* dh = g gelu_tanh'(x) in place: gelu' = sigma (1 + 2 x (1 - sigma) u'), u' = sqrt(2/pi)
 * (1 + 0.134145 x^2); where x^2 overflows (|x| > 1.8e19, inf) NaN, as eager's formula gives */
static void gelu_tanh_grad_rows(float *dh, const float *s, i64 m, i64 n, i64 ld) {
    for (i64 r = 0; r < m; r++)
        for (i64 q = 0; q < n; q += 16) {
            __mmask16 k = n - q >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - q)) - 1);
            __m512 x = _mm512_maskz_loadu_ps(k, s + r * ld + q), rest;
            __m512 g = _mm512_maskz_loadu_ps(k, dh + r * ld + q);
            __m512 sg = sigmoid_exp2(gelu_z(x), &rest);
            __m512 du = _mm512_mul_ps(_mm512_fmadd_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(0.134145f),
                                                      _mm512_set1_ps(1.0f)), _mm512_set1_ps(0.7978845608028654f));
            __m512 xr = _mm512_mul_ps(_mm512_add_ps(x, x), rest);
            __m512 d = _mm512_mul_ps(sg, _mm512_fmadd_ps(xr, du, _mm512_set1_ps(1.0f)));
            __mmask16 inf = _mm512_cmp_ps_mask(_mm512_mul_ps(x, x), _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
            d = _mm512_mask_mov_ps(d, inf, _mm512_set1_ps(NAN));
            _mm512_mask_storeu_ps(dh + r * ld + q, k, _mm512_mul_ps(g, d));
        }
}
#endif

static void activate_rows(int act, const float *h, float *y, i64 m, i64 n, i64 ld) {
    switch (act) {
    case 1: ACT_LOOP((x > 0.0f || x != x) ? x : 0.0f) break;
#if defined(__AVX512F__)
    case 2: gelu_tanh_rows(h, y, m, n, ld); break;
#else
    case 2: ACT_LOOP(0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)))) break;
#endif
    case 3: ACT_LOOP(0.5f * x * (1.0f + erff(x / 1.4142135623730951f))) break;
    case 4: ACT_LOOP(tanhf(x)) break;
    case 5: ACT_LOOP(sigmoidf_(x)) break;
    default: ACT_LOOP(x * sigmoidf_(x)) break;
    }
}

/* A product much longer in K than wide (a weight gradient X^T dY summed over B*T rows) is split
 * along K: each thread multiplies its share of the rows of X and dY, and the partial products are
 * added after (in thread order). Each thread then reads half of both operands, the rows it wrote
 * itself in the kernels before, instead of all of X and half of dY's columns: W3's step 58.6 ->
 * 55.9 ms (same process, alternating). */
#define SPLIT_K_RATIO 4

static void matmul_split_k(i64 M, i64 N, i64 K, int ta, int tb, const float *A, i64 lda, const float *B,
                           i64 ldb, float *C, int nt) {
    float *part = malloc(sizeof(float) * (size_t)((nt - 1) * M * N));
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        i64 k0 = K * t / nt, k1 = K * (t + 1) / nt;
        const float *a = A + row_at(ta == NO_TRANS ? TRANS : NO_TRANS, lda, k0);  /* column k0 of op(A) */
        const float *b = B + row_at(tb, ldb, k0);  /* row k0 of op(B) */
        gemm(ta, tb, M, N, k1 - k0, 1.0f, a, lda, b, ldb, 0.0f, t == 0 ? C : part + (t - 1) * M * N, N);
    }
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < M; i++)
        for (int t = 1; t < nt; t++) {
            const float *p = part + (t - 1) * M * N + i * N;
#pragma omp simd
            for (i64 j = 0; j < N; j++) C[i * N + j] += p[j];
        }
    free(part);
}

/* C[i,j] (M x N, contiguous) = A[i,j] (M x K) @ B[i,j] (K x N) for i < b1, j < b2: two batch dims
 * with their own strides (sa1, sa2; sb1, sb2), so attention's (B, H) heads of a strided q, k, v
 * need no copy. Batches and row blocks are spread over the threads (products under min_parallel
 * multiply-adds stay on the calling thread); bias (length N, or NULL) is added; with act != 0, C keeps
 * the pre-activation and Y (laid out as C) receives activate(act, C). */
void ember_matmul(i64 b1, i64 b2, i64 M, i64 N, i64 K, const float *A, i64 sa1, i64 sa2, i64 sam, i64 sak,
                  const float *B, i64 sb1, i64 sb2, i64 sbk, i64 sbn, float *C, const float *bias,
                  i64 min_parallel, int act, float *Y) {
    i64 batch = b1 * b2;
    operands_t o = operands(M, N, K, sam, sak, sbk, sbn);
    /* a small product runs on this thread alone: waking the others would cost more than it */
    int nt = batch * M * N * K < min_parallel ? 1 : omp_get_max_threads();
    if (batch == 1 && nt > 1 && !bias && !act && K >= SPLIT_K_RATIO * (M > N ? M : N)) {
        int prev = blas_serial();
        matmul_split_k(M, N, K, o.ta, o.tb, A, o.lda, B, o.ldb, C, nt);
        blas_restore(prev);
        return;
    }
    /* fewer matrices than threads: cut each into blocks of rows, or of columns when it is wider than
     * tall (a weight gradient (128, 512) = (2048, 128)^T (2048, 512) ran 1.17x faster as two
     * 128 x 256 halves than as two 64 x 512 ones) */
    int by_cols = N > M;
    i64 extent = by_cols ? N : M;
    i64 chunks = batch >= nt ? 1 : (nt + batch - 1) / batch;
    if (chunks > extent) chunks = extent > 0 ? extent : 1;
    i64 tasks = batch * chunks;
    int prev = blas_serial();
#pragma omp parallel for schedule(static) if (nt > 1 && tasks > 1)
    for (i64 t = 0; t < tasks; t++) {
        i64 bi = t / chunks, c = t % chunks, i1 = bi / b2, i2 = bi % b2;
        i64 lo = extent * c / chunks, hi = extent * (c + 1) / chunks;
        if (hi <= lo) continue;
        i64 m, n;
        float *out = C + bi * M * N;
        out += gemm_block(o, by_cols, lo, hi, M, N, K, A + i1 * sa1 + i2 * sa2, B + i1 * sb1 + i2 * sb2, out, &m, &n);
        if (bias)
            for (i64 r = 0; r < m; r++) {
                const float *bb = bias + (by_cols ? lo : 0);
#pragma omp simd
                for (i64 q = 0; q < n; q++) out[r * N + q] += bb[q];
            }
        if (act)  /* the activation epilogue, on the block while it is in cache */
            activate_rows(act, out, Y + (out - C), m, n, N);
    }
    blas_restore(prev);
}

/* dh = f(g, s) in place over an m x n block (row stride ld), g the product already in dh: the
 * activation backward ops as ops/elementwise.py computes them (codes as in library.py) */
#define GRAD_LOOP(EXPR)                                                                                 \
    for (i64 r = 0; r < m; r++) {                                                                       \
        float *gr = dh + r * ld;                                                                        \
        const float *sr = s + r * ld;                                                                   \
        _Pragma("omp simd") for (i64 q = 0; q < n; q++) {                                              \
            const float g = gr[q], x = sr[q];                                                           \
            gr[q] = (EXPR);                                                                             \
        }                                                                                               \
    }

static inline float gelu_grad_tanh(float g, float x) {
    float x2 = x * x, t = tanhf(0.7978845608028654f * (x + 0.044715f * x2 * x));
    float d = 1 - t * t;
    d = d * (0.7978845608028654f * (1 + 0.134145f * x2));
    d = d * x;
    d = d + t;
    d = d + 1;
    d = d * 0.5f;
    return g * d;
}

static void act_grad_rows(int code, float *dh, const float *s, i64 m, i64 n, i64 ld) {
    switch (code) {
    case 1: GRAD_LOOP((float)(x > 0) * g) break;  /* threshold_backward */
#if defined(__AVX512F__)
    case 2: gelu_tanh_grad_rows(dh, s, m, n, ld); break;
#else
    case 2: GRAD_LOOP(gelu_grad_tanh(g, x)) break;
#endif
    case 3: GRAD_LOOP(g * (0.5f * (1 + erff(x / 1.4142135623730951f)) + x * expf(-0.5f * x * x) * 0.3989422804014327f))
            break;
    case 4: GRAD_LOOP((1 - x * x) * g) break;  /* tanh_backward: s is tanh's output */
    default: GRAD_LOOP(((1 - x) * x) * g) break;  /* sigmoid_backward: s is sigmoid's output */
    }
}

/* dH (M x N, contiguous) = f(A @ B, S) for A (M x K), B (K x N) read through their strides, S (M x N
 * contiguous) and the activation backward `code`; with dbias != NULL also dbias[j] = sum_i dH[i, j].
 * Each thread takes a block of rows (or of columns when wider than tall), multiplies, applies f and
 * sums its block's columns while it is in cache, in double precision; the blocks' partial sums are
 * added in block order. */
void ember_matmul_act_backward(i64 M, i64 N, i64 K, const float *A, i64 sam, i64 sak, const float *B, i64 sbk,
                               i64 sbn, const float *S, float *dH, float *dbias, i64 min_parallel, int code) {
    operands_t o = operands(M, N, K, sam, sak, sbk, sbn);
    int nt = M * N * K < min_parallel ? 1 : omp_get_max_threads();
    int by_cols = N > M;
    i64 extent = by_cols ? N : M, chunks = nt < extent ? nt : (extent > 0 ? extent : 1);
    double *part = dbias ? calloc((size_t)(chunks * N), sizeof(double)) : NULL;
    int prev = blas_serial();
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (i64 c = 0; c < chunks; c++) {
        i64 lo = extent * c / chunks, hi = extent * (c + 1) / chunks;
        if (hi <= lo) continue;
        i64 m, n, off = gemm_block(o, by_cols, lo, hi, M, N, K, A, B, dH, &m, &n);
        act_grad_rows(code, dH + off, S + off, m, n, N);
        if (!part) continue;
        double *acc = part + c * N + (by_cols ? lo : 0);  /* this block's columns, this block's slot */
        for (i64 r = 0; r < m; r++) {
            const float *row = dH + off + r * N;
#pragma omp simd
            for (i64 q = 0; q < n; q++) acc[q] += row[q];
        }
    }
    blas_restore(prev);
    if (part) {
        for (i64 q = 0; q < N; q++) {
            double acc = part[q];
            for (i64 c = 1; c < chunks; c++) acc += part[c * N + q];
            dbias[q] = (float)acc;
        }
        free(part);
    }
}


/* im2col as ops/nn.py's Unfold lays it out: cols (N, oh*ow, kh*kw*C) contiguous, entry (i, j, c) of
 * block (oy, ox) = x[n, c, oy*sh - pt + i*dh, ox*sw - pl + j*dw], or `value` in the padding.
 * x is read through its element strides sx (N, C, H, W). */
void ember_unfold(i64 N, i64 C, i64 H, i64 W, const float *x, const i64 *sx, i64 kh, i64 kw, i64 dh, i64 dw,
                  i64 pt, i64 pl, i64 sh, i64 sw, i64 oh, i64 ow, float value, float *cols) {
    i64 KC = kh * kw * C;
#pragma omp parallel for schedule(static)
    for (i64 r = 0; r < N * oh; r++) {
        i64 n = r / oh, oy = r % oh;
        if (C == 1) {  /* one channel (a first layer): walk each kernel offset along the output row */
            for (i64 i = 0; i < kh; i++) {
                i64 h = oy * sh - pt + i * dh;
                for (i64 j = 0; j < kw; j++) {
                    float *dst = cols + r * ow * KC + i * kw + j;
                    const float *src = x + n * sx[0] + h * sx[2];
                    for (i64 ox = 0; ox < ow; ox++) {
                        i64 w = ox * sw - pl + j * dw;
                        dst[ox * KC] = (h < 0 || h >= H || w < 0 || w >= W) ? value : src[w * sx[3]];
                    }
                }
            }
            continue;
        }
        for (i64 ox = 0; ox < ow; ox++) {
            float *dst = cols + (r * ow + ox) * KC;
            for (i64 i = 0; i < kh; i++) {
                i64 h = oy * sh - pt + i * dh;
                for (i64 j = 0; j < kw; j++, dst += C) {
                    i64 w = ox * sw - pl + j * dw;
                    if (h < 0 || h >= H || w < 0 || w >= W) {
                        for (i64 c = 0; c < C; c++) dst[c] = value;
                        continue;
                    }
                    const float *src = x + n * sx[0] + h * sx[2] + w * sx[3];
                    if (sx[1] == 1) {  /* channels adjacent (channels-last input): a plain copy */
#pragma omp simd
                        for (i64 c = 0; c < C; c++) dst[c] = src[c];
                    } else {
                        for (i64 c = 0; c < C; c++) dst[c] = src[c * sx[1]];
                    }
                }
            }
        }
    }
}

/* col2im (Fold): out (N, Hp, Wp, C) contiguous, the padded image, zeroed, then every block entry
 * added at its position, kernel offsets (i, j) in the outer loops: the order ops/nn.py adds them.
 * cols (N, kh*kw*C, oh*ow) is read through its element strides sc. */
void ember_fold(i64 N, i64 C, i64 Hp, i64 Wp, const float *cols, const i64 *sc, i64 kh, i64 kw, i64 dh, i64 dw,
                i64 sh, i64 sw, i64 oh, i64 ow, float *out) {
#pragma omp parallel for schedule(static)
    for (i64 n = 0; n < N; n++) {
        float *img = out + n * Hp * Wp * C;
        for (i64 e = 0; e < Hp * Wp * C; e++) img[e] = 0.0f;
        for (i64 i = 0; i < kh; i++)
            for (i64 j = 0; j < kw; j++)
                for (i64 oy = 0; oy < oh; oy++)
                    for (i64 ox = 0; ox < ow; ox++) {
                        float *dst = img + ((oy * sh + i * dh) * Wp + ox * sw + j * dw) * C;
                        const float *src = cols + n * sc[0] + (i * kw + j) * C * sc[1] + (oy * ow + ox) * sc[2];
                        if (sc[1] == 1) {
#pragma omp simd
                            for (i64 c = 0; c < C; c++) dst[c] += src[c];
                        } else {
                            for (i64 c = 0; c < C; c++) dst[c] += src[c * sc[1]];
                        }
                    }
    }
}

/* max_pool2d as ops/nn.py's MaxPool2d: out (N, oh, ow, C) contiguous (seen as NCHW) and the winning
 * kernel offset per output (the first maximum; NaN propagates and wins), padding reading -inf.
 * arg is uint8 when kh*kw < 256 (arg8), else int32 (arg32). Channels must be adjacent in x (sx[1] == 1,
 * as a convolution's output is here): each window step then compares all channels in one vector loop. */
void ember_max_pool2d(i64 N, i64 C, i64 H, i64 W, const float *x, const i64 *sx, i64 kh, i64 kw, i64 dh,
                      i64 dw, i64 pt, i64 pl, i64 sh, i64 sw, i64 oh, i64 ow, float *out, unsigned char *arg8,
                      int *arg32) {
#pragma omp parallel for schedule(static)
    for (i64 r = 0; r < N * oh * ow; r++) {
        i64 n = r / (oh * ow), oy = r / ow % oh, ox = r % ow;
        float *b = out + r * C;
        int a[C];
        for (i64 c = 0; c < C; c++) a[c] = 0;
        int k = 0;
        for (i64 i = 0; i < kh; i++) {
            i64 h = oy * sh - pt + i * dh;
            for (i64 j = 0; j < kw; j++, k++) {
                i64 w = ox * sw - pl + j * dw;
                int inside = h >= 0 && h < H && w >= 0 && w < W;
                const float *v = x + n * sx[0] + h * sx[2] + w * sx[3];
                if (k == 0) {
                    for (i64 c = 0; c < C; c++) b[c] = inside ? v[c] : -INFINITY;
                    continue;
                }
                if (!inside) continue;  /* -inf never beats the running maximum */
#pragma omp simd
                for (i64 c = 0; c < C; c++) {
                    int take = v[c] > b[c] || v[c] != v[c];
                    a[c] = take ? k : a[c];
                    b[c] = take ? v[c] : b[c];
                }
            }
        }
        for (i64 c = 0; c < C; c++) {
            if (arg8) arg8[r * C + c] = (unsigned char)a[c]; else arg32[r * C + c] = a[c];
        }
    }
}

/* max_pool2d's backward (ops/nn.py's MaxPool2dBackward): out (N, Hp, Wp, C), the padded channels-last
 * image, zeroed, then each g[n, c, oy, ox] added where its window's maximum was: offset arg, which
 * lies offs[arg] elements past the window's corner. g is read through its element strides sg
 * (N, C, oh, ow); arg as in ember_max_pool2d. */
void ember_max_pool2d_backward(i64 N, i64 C, i64 Hp, i64 Wp, const float *g, const i64 *sg,
                               const unsigned char *arg8, const int *arg32, const i64 *offs, i64 sh, i64 sw,
                               i64 oh, i64 ow, float *out) {
#pragma omp parallel for schedule(static)
    for (i64 n = 0; n < N; n++) {
        float *img = out + n * Hp * Wp * C;
        for (i64 e = 0; e < Hp * Wp * C; e++) img[e] = 0.0f;
        for (i64 oy = 0; oy < oh; oy++)
            for (i64 ox = 0; ox < ow; ox++) {
                i64 r = (n * oh + oy) * ow + ox;
                const float *gp = g + n * sg[0] + oy * sg[2] + ox * sg[3];
                float *corner = img + (oy * sh * Wp + ox * sw) * C;
                for (i64 c = 0; c < C; c++)
                    corner[offs[arg8 ? arg8[r * C + c] : arg32[r * C + c]] + c] += gp[c * sg[1]];
            }
    }
}
