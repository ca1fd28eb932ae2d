/* Fused attention for compiled plans (ember/ops/attention.py's sdpa and sdpa_backward): built
 * together with library.c (appended to it), whose gemm, layout helpers and BLAS binding it uses.
 *
 * Attention runs per (batch, head) on one thread: S = scale * Q K^T, the causal mask and softmax,
 * O = P V; backward from the saved probabilities P. Its products are too small for BLAS to pay
 * off: they are register-tiled loops of their own. */

/* ---- fused attention ------------------------------------------------------------------------
 *
 * Per head the products are small (the GPT's L = S = 128 queries and keys, E = 32 head dims), and
 * through BLAS each sgemm call's dispatch and packing weigh on them. Here they are register-tiled
 * loops: C (m x n) = alpha A B with B's rows contiguous (packed once per head where its layout
 * needs it: K^T, V, 16 KB each) and A read through any strides by broadcasts. A tile of R rows x NV
 * vectors of C stays in registers for its whole k loop: per k, NV loads of B, R broadcasts of A,
 * R * NV multiply-adds. With AVX-512 (32 registers) the tiles are 6 x 4 vectors (6 x 64 floats)
 * for the S-wide products (scores, dP) and 8 x 2 for the E-wide ones (P V, dQ, dK, dV): 16-24
 * accumulators hide the multiply-add latency while loads stay within two per cycle; in L1 both
 * run at ~200 GFLOP/s on one core of this project's machine (its big-sgemm peak). 12 x 2 tiles
 * spill (1.6x slower). Other machines get the same loops on 8-float (AVX) or 4-float (SSE)
 * vectors with 4-row tiles. Causal attention skips masked work tile by tile rather than in
 * 32-row blocks. Softmax has its own vector exp (AVX-512) and works on 4 rows at once.
 *
 * Measured on the W3 GPT shape (B=16, H=4, L=S=128, E=32, q/k/v strided views of one projection),
 * 2 threads, best of 3 runs of /work/scratch/sdpabench.py, against the BLAS version this replaced
 * bound to MKL (OpenBLAS in brackets): forward 680 (891) -> 539 us, causal 761 (1038) -> 398 us;
 * backward 934 (1150) -> 929 us, causal 745 (975) -> 596 us. The products run near the core's
 * peak; MKL's did too for the non-causal backward (268 MFLOP, ~140 GFLOP/s a core either way).
 * What remains per head is softmax (~30% of the forward), copying the strided q/k/v rows into
 * place (~10%) and the outputs (P, the gradients) missing cache. Tried without gain: prefetching
 * the next head's rows and P (in bursts, or a few lines per tile: 5-10% slower), blocking dK and
 * dV by query blocks (P and dS in L1), reading strided q/k/dO rows in place, bigger row blocks.
 */

#if defined(__AVX512F__)
#include <immintrin.h>
#define VW 16 /* floats per vector */
#define NV_MAX 4
typedef __m512 vf;
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, x) _mm512_storeu_ps(p, x)
#define V_SET1(s) _mm512_set1_ps(s)
#define V_ZERO() _mm512_setzero_ps()
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c) /* a * b + c */
static inline int tile_rows(int nv) { return nv >= 4 ? 6 : 8; }
#else
#if defined(__AVX__)
#define VW 8
#else
#define VW 4
#endif
#define NV_MAX 3
typedef float vf __attribute__((vector_size(VW * 4)));
static inline vf v_load(const float *p) {
    vf x;
    __builtin_memcpy(&x, p, sizeof x);
    return x;
}
static inline void v_store(float *p, vf x) { __builtin_memcpy(p, &x, sizeof x); }
#define V_LOAD(p) v_load(p)
#define V_STORE(p, x) v_store(p, x)
#define V_SET1(s) ((vf){0} + (float)(s))
#define V_ZERO() ((vf){0})
#define V_MUL(a, b) ((a) * (b))
#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#define V_FMA(a, b, c) ((vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#else
#define V_FMA(a, b, c) ((a) * (b) + (c))
#endif
static inline int tile_rows(int nv) { return (void)nv, 4; }
#endif
#define TILE_R_MAX 8

static inline i64 round_vw(i64 n) { return (n + VW - 1) / VW * VW; }
static inline i64 min64(i64 a, i64 b) { return a < b ? a : b; }

/* C[r, v*VW..] (R rows x NV vectors, row stride ldc) = alpha * sum_{k0 <= k < k1} A[r, k] B[k, v*VW..];
 * A[r, k] at a[r*sar + k*sak], B's row k at b + k*ldb. R and NV are constants where it is inlined. */
static inline __attribute__((always_inline)) void tile_body(const int R, const int NV, i64 k0, i64 k1,
                                                            const float *a, i64 sar, i64 sak, const float *b,
                                                            i64 ldb, float *c, i64 ldc, float alpha) {
    vf acc[TILE_R_MAX][NV_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = V_ZERO();
    /* A read down its columns (sar == 1: dS^T, P^T) gets constant offsets: no register per row */
#define TILE_K_LOOP(SAR)                                                                                    \
    for (i64 kk = k0; kk < k1; kk++) {                                                                      \
        const float *bk = b + kk * ldb, *ak = a + kk * sak;                                                 \
        vf bv[NV_MAX];                                                                                      \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = V_LOAD(bk + v * VW);                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                               \
            vf x = V_SET1(ak[r * (SAR)]);                                                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = V_FMA(x, bv[v], acc[r][v]);    \
        }                                                                                                   \
    }
    if (sar == 1)
        TILE_K_LOOP(1)
    else
        TILE_K_LOOP(sar)
#undef TILE_K_LOOP
    vf al = V_SET1(alpha);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) V_STORE(c + r * ldc + v * VW, V_MUL(acc[r][v], al));
}

typedef void (*tile_fn)(i64, i64, const float *, i64, i64, const float *, i64, float *, i64, float);
#define TILE(R, NV)                                                                                          \
    static void tile_##R##x##NV(i64 k0, i64 k1, const float *a, i64 sar, i64 sak, const float *b, i64 ldb,   \
                                float *c, i64 ldc, float alpha) {                                            \
        tile_body(R, NV, k0, k1, a, sar, sak, b, ldb, c, ldc, alpha);                                        \
    }
#if VW == 16
#define TILE_ROWS(NV) TILE(1, NV) TILE(2, NV) TILE(3, NV) TILE(4, NV) TILE(5, NV) TILE(6, NV) TILE(7, NV) TILE(8, NV)
#define TILE_ROW_FNS(NV) {tile_1x##NV, tile_2x##NV, tile_3x##NV, tile_4x##NV, tile_5x##NV, tile_6x##NV, \
                          tile_7x##NV, tile_8x##NV}
TILE_ROWS(1)
TILE_ROWS(2)
TILE_ROWS(3)
TILE(1, 4) TILE(2, 4) TILE(3, 4) TILE(4, 4) TILE(5, 4) TILE(6, 4)
static const tile_fn TILES[NV_MAX][TILE_R_MAX] = {
    TILE_ROW_FNS(1), TILE_ROW_FNS(2), TILE_ROW_FNS(3),
    {tile_1x4, tile_2x4, tile_3x4, tile_4x4, tile_5x4, tile_6x4, 0, 0}};
#else
#define TILE_ROWS(NV) TILE(1, NV) TILE(2, NV) TILE(3, NV) TILE(4, NV)
#define TILE_ROW_FNS(NV) {tile_1x##NV, tile_2x##NV, tile_3x##NV, tile_4x##NV, 0, 0, 0, 0}
TILE_ROWS(1)
TILE_ROWS(2)
TILE_ROWS(3)
static const tile_fn TILES[NV_MAX][TILE_R_MAX] = {TILE_ROW_FNS(1), TILE_ROW_FNS(2), TILE_ROW_FNS(3)};
#endif

/* which part of a product causal attention needs, for C's rows (global index row0 + i):
 * MASK_COLS: row i needs columns j <= i (scores); MASK_KEND: terms k <= i only (A is zero beyond:
 * P V, dS K); MASK_KBEG: terms k >= i only (A^T is zero before: P^T dO, dS^T Q) */
enum { MASK_NONE, MASK_COLS, MASK_KEND, MASK_KBEG };

/* C (m x n, row stride ldc) = alpha * A (m x k, A[i, j] at a[i*sar + j*sak]) B (k x n, row stride ldb)
 * with n a whole number of vectors. Column panels of NV_MAX vectors outside (the panel of B,
 * k x 64 floats, stays in L1 across the row tiles), row tiles inside. Under MASK_COLS the columns
 * a row does not need are left unwritten. */
static void small_mm(i64 m, i64 n, i64 k, float alpha, const float *a, i64 sar, i64 sak, const float *b,
                     i64 ldb, float *c, i64 ldc, int mask, i64 row0) {
    i64 nvec = n / VW;
    for (i64 p0 = 0; p0 < nvec; p0 += NV_MAX) {
        int nv = nvec - p0 < NV_MAX ? (int)(nvec - p0) : NV_MAX, rt = tile_rows(nv);
        for (i64 i0 = 0; i0 < m; i0 += rt) {
            int r = m - i0 < rt ? (int)(m - i0) : rt, nvt = nv;
            i64 g0 = row0 + i0, g1 = g0 + r, k0 = 0, k1 = k;
            if (mask == MASK_COLS) {
                i64 need = (g1 - p0 * VW + VW - 1) / VW;
                if (need <= 0) continue;
                if (need < nvt) nvt = (int)need;
            } else if (mask == MASK_KEND) {
                k1 = min64(k, g1);
            } else if (mask == MASK_KBEG) {
                k0 = min64(k, g0);
            }
            TILES[nvt - 1][r - 1](k0, k1, a + i0 * sar, sar, sak, b + p0 * VW, ldb, c + i0 * ldc + p0 * VW, ldc,
                                  alpha);
        }
    }
}

/* small_mm into C of any width n: through tmp (m x round_vw(n)) when n is not whole vectors
 * (B then needs round_vw(n) readable columns, as `operand` packs it) */
static void small_mm_to(i64 m, i64 n, i64 k, float alpha, const float *a, i64 sar, i64 sak, const float *b,
                        i64 ldb, float *c, i64 ldc, int mask, i64 row0, float *tmp) {
    i64 np = round_vw(n);
    if (np == n) {
        small_mm(m, n, k, alpha, a, sar, sak, b, ldb, c, ldc, mask, row0);
        return;
    }
    small_mm(m, np, k, alpha, a, sar, sak, b, ldb, tmp, np, mask, row0);
    for (i64 i = 0; i < m; i++)
        for (i64 j = 0; j < n; j++) c[i * ldc + j] = tmp[i * np + j];
}

#if defined(__AVX512F__)
/* e^x for x <= 0 (scores minus their row's max): x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts,
 * as Cephes' expf), e^r = 1 + r + r^2 q(r) with q a degree-3 fit of minimal relative error (1e-7),
 * then times 2^n by scalef, which flushes e^-104 and below (-inf included) to 0. Within 3 ulp of
 * expf and fewer instructions than glibc's vector expf: with the 4-row groups below, softmax over
 * a 128 x 128 head went from 6.4 to 3.9 us. */
static inline __m512 exp_neg(__m512 x) {
    const __m512 shift = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shift), shift);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(8.312525227665901e-3f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1890114545822144e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6667114198207855e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.99992311000824e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* lanes of the vector at column j that lie below m */
static inline __mmask16 below(i64 m, i64 j) {
    i64 n = m - j;
    n = n < 0 ? 0 : n > VW ? VW : n;
    return (__mmask16)((1u << n) - 1u);
}

/* p[j] (j < n) = row * inv for j < m, 0 beyond */
static inline void scale_row(const float *row, __m512 inv, float *p, i64 m, i64 n) {
    i64 j = 0;
    for (; j + VW <= m; j += VW) _mm512_storeu_ps(p + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), inv));
    for (; j < n; j += VW)
        _mm512_mask_storeu_ps(p + j, below(n, j), _mm512_mul_ps(_mm512_maskz_loadu_ps(below(m, j), row + j), inv));
}

/* R rows at once (their max and sum chains interleave; one row at a time is latency-bound):
 * row r of p (width n, row stride ldp) = softmax of s's row r over its first m[r] entries, 0
 * beyond; s (row stride lds) receives the exponentials. Whole vectors that all R rows see run
 * unmasked. */
static inline __attribute__((always_inline)) void softmax_group(const int R, float *s, i64 lds, float *p,
                                                                i64 ldp, const i64 *m, i64 n) {
    __m512 mx[4], sum[4];
    i64 lo = m[0], hi = m[0], j;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        mx[r] = _mm512_set1_ps(-INFINITY);
        sum[r] = _mm512_setzero_ps();
        lo = m[r] < lo ? m[r] : lo;
        hi = m[r] > hi ? m[r] : hi;
    }
    lo = lo / VW * VW;
    for (j = 0; j < lo; j += VW)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) mx[r] = _mm512_max_ps(mx[r], _mm512_loadu_ps(s + r * lds + j));
    for (; j < hi; j += VW)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __mmask16 t = below(m[r], j);
            mx[r] = _mm512_mask_max_ps(mx[r], t, mx[r], _mm512_maskz_loadu_ps(t, s + r * lds + j));
        }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) mx[r] = _mm512_set1_ps(_mm512_reduce_max_ps(mx[r]));
    for (j = 0; j < lo; j += VW)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 e = exp_neg(_mm512_sub_ps(_mm512_loadu_ps(s + r * lds + j), mx[r]));
            _mm512_storeu_ps(s + r * lds + j, e);
            sum[r] = _mm512_add_ps(sum[r], e);
        }
    for (; j < hi; j += VW)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __mmask16 t = below(m[r], j);
            __m512 e = exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, s + r * lds + j), mx[r]));
            _mm512_mask_storeu_ps(s + r * lds + j, t, e);
            sum[r] = _mm512_mask_add_ps(sum[r], t, sum[r], e);
        }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        scale_row(s + r * lds, _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum[r])), p + r * ldp, m[r], n);
}

/* rows [row0, row0 + rows) of attention's probabilities: p (rows x S, row stride S) from the scores s
 * (row stride lds; scratch, overwritten); under `causal` row i sees keys j <= i only */
static void softmax_block(float *s, i64 lds, float *p, i64 rows, i64 row0, int causal, i64 S) {
    i64 m[4];
    for (i64 i = 0; i < rows; i += 4) {
        int r = rows - i < 4 ? (int)(rows - i) : 4;
        for (int t = 0; t < r; t++) m[t] = causal ? min64(row0 + i + t + 1, S) : S;
        if (r == 4)
            softmax_group(4, s + i * lds, lds, p + i * S, S, m, S);
        else
            for (int t = 0; t < r; t++) softmax_group(1, s + (i + t) * lds, lds, p + (i + t) * S, S, m + t, S);
    }
}
#else
/* p[j] (j < n) = softmax(s[0..m))[j], and 0 for m <= j < n (s may be p) */
static void softmax_row(float *s, float *p, i64 m, i64 n) {
    float mx = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : mx)
    for (i64 j = 0; j < m; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd reduction(+ : sum)
    for (i64 j = 0; j < m; j++) {
        p[j] = expf(s[j] - mx);
        sum += p[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (i64 j = 0; j < m; j++) p[j] *= inv;
    for (i64 j = m; j < n; j++) p[j] = 0.0f;
}

static void softmax_block(float *s, i64 lds, float *p, i64 rows, i64 row0, int causal, i64 S) {
    for (i64 i = 0; i < rows; i++) softmax_row(s + i * lds, p + i * S, causal ? min64(row0 + i + 1, S) : S, S);
}
#endif

#if defined(__AVX512F__)
/* the 16 x 16 block r[0..16) transposed in place: unpacks of 32-bit pairs, then of 64-bit pairs,
 * then two rounds of 128-bit lane shuffles */
static inline void transpose16(__m512 *r) {
    __m512 t[16];
    for (int a = 0; a < 16; a += 2) {
        t[a] = _mm512_unpacklo_ps(r[a], r[a + 1]);
        t[a + 1] = _mm512_unpackhi_ps(r[a], r[a + 1]);
    }
    for (int a = 0; a < 16; a += 4) {
        r[a] = _mm512_shuffle_ps(t[a], t[a + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[a + 1] = _mm512_shuffle_ps(t[a], t[a + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[a + 2] = _mm512_shuffle_ps(t[a + 1], t[a + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[a + 3] = _mm512_shuffle_ps(t[a + 1], t[a + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int a = 0; a < 4; a++) {
        t[a] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0x88);
        t[a + 4] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0xdd);
        t[a + 8] = _mm512_shuffle_f32x4(r[a + 8], r[a + 12], 0x88);
        t[a + 12] = _mm512_shuffle_f32x4(r[a + 8], r[a + 12], 0xdd);
    }
    for (int a = 0; a < 8; a++) {
        r[a] = _mm512_shuffle_f32x4(t[a], t[a + 8], 0x88);
        r[a + 8] = _mm512_shuffle_f32x4(t[a], t[a + 8], 0xdd);
    }
}
#endif

/* dst (rows x ld, zero in columns cols..ld) = the (rows x cols) matrix x[i*s_row + j*s_col]; ld is
 * round_vw(cols) or more */
static void pack(const float *x, i64 s_row, i64 s_col, i64 rows, i64 cols, float *dst, i64 ld) {
#if defined(__AVX512F__)
    if (s_row == 1 && s_col != 1 && ld == round_vw(cols)) {  /* a transpose (K^T): by 16 x 16 blocks */
        for (i64 j0 = 0; j0 < cols; j0 += 16)
            for (i64 i0 = 0; i0 < rows; i0 += 16) {
                __mmask16 mi = below(rows, i0);
                __m512 r[16];
                for (int a = 0; a < 16; a++)
                    r[a] = j0 + a < cols ? _mm512_maskz_loadu_ps(mi, x + (j0 + a) * s_col + i0) : _mm512_setzero_ps();
                transpose16(r);
                for (int a = 0; a < 16 && i0 + a < rows; a++) _mm512_storeu_ps(dst + (i0 + a) * ld + j0, r[a]);
            }
        return;
    }
#endif
    for (i64 i = 0; i < rows; i++) {
        float *d = dst + i * ld;
        if (s_col == 1) {
#pragma omp simd
            for (i64 j = 0; j < cols; j++) d[j] = x[i * s_row + j];
        } else {
            for (i64 j = 0; j < cols; j++) d[j] = x[i * s_row + j * s_col];
        }
        for (i64 j = cols; j < ld; j++) d[j] = 0.0f;
    }
}

/* a B operand of small_mm: x itself where it is dense (rows of whole vectors, back to back), else
 * packed into buf. A strided view's rows (1.5 KB apart in the GPT) would crowd a few L1 sets: every
 * tile reads the whole operand, and packing it (16 KB) cost less than the conflict misses. */
static const float *operand(const float *x, i64 s_row, i64 s_col, i64 rows, i64 cols, float *buf, i64 *ld) {
    if (s_col == 1 && cols % VW == 0 && (rows == 1 || s_row == cols)) {
        *ld = cols;
        return x;
    }
    *ld = round_vw(cols);
    pack(x, s_row, s_col, rows, cols, buf, *ld);
    return buf;
}

/* n floats, 64-byte aligned, inside *raw (to free) */
static float *scratch(i64 n, void **raw) {
    *raw = malloc(sizeof(float) * (size_t)n + 64);
    return (float *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
}

/* the softmax backward for rows [row0, row0 + rows): ds (row stride lds) holds dP = dO V^T and
 * receives dS = scale * P * (dP - rowsum(P * dP)) (p: the rows of P, row stride L). Under `causal`
 * row i uses j <= i only and the TILE_R_MAX entries after that must become 0: the tiles of
 * dQ = dS K and dK = dS^T Q that straddle the diagonal read that far (and no farther). P is 0
 * above the diagonal (as the forward leaves it) and dP is computed up to the next whole vector,
 * so whole vectors run unmasked: their entries past the diagonal come out 0 exactly. */
#if defined(__AVX512F__)
static inline __attribute__((always_inline)) void dsoftmax_group(const int R, float *ds, i64 lds, const float *p,
                                                                 const i64 *m, i64 L, float scale) {
    __m512 d[4];
    i64 e[4], lo, hi, lf = L / VW * VW, lp = round_vw(L), j;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        d[r] = _mm512_setzero_ps();
        e[r] = round_vw(m[r]);
    }
    lo = e[0], hi = e[0];
#pragma GCC unroll 4
    for (int r = 1; r < R; r++) {
        lo = e[r] < lo ? e[r] : lo;
        hi = e[r] > hi ? e[r] : hi;
    }
    lo = lo < lf ? lo : lf;
    for (j = 0; j < lo; j += VW)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            d[r] = _mm512_fmadd_ps(_mm512_loadu_ps(p + r * L + j), _mm512_loadu_ps(ds + r * lds + j), d[r]);
    for (; j < hi; j += VW)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            if (j < e[r]) {
                __mmask16 t = below(L, j);
                d[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(t, p + r * L + j), _mm512_loadu_ps(ds + r * lds + j), d[r]);
            }
    __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        __m512 dr = _mm512_set1_ps(_mm512_reduce_add_ps(d[r]));
        float *row = ds + r * lds;
        const float *pr = p + r * L;
        i64 ef = e[r] < lf ? e[r] : lf;
        for (j = 0; j < ef; j += VW) {
            __m512 ps = _mm512_mul_ps(_mm512_loadu_ps(pr + j), sc);
            _mm512_storeu_ps(row + j, _mm512_mul_ps(ps, _mm512_sub_ps(_mm512_loadu_ps(row + j), dr)));
        }
        if (j < e[r]) {  /* the vector across L */
            __m512 ps = _mm512_mul_ps(_mm512_maskz_loadu_ps(below(L, j), pr + j), sc);
            _mm512_storeu_ps(row + j, _mm512_mul_ps(ps, _mm512_sub_ps(_mm512_loadu_ps(row + j), dr)));
            j += VW;
        }
        if (j < lp) _mm512_storeu_ps(row + j, _mm512_setzero_ps());
    }
}

static void dsoftmax_block(float *ds, i64 lds, const float *p, i64 rows, i64 row0, int causal, i64 L, float scale) {
    i64 m[4];
    for (i64 i = 0; i < rows; i += 4) {
        int r = rows - i < 4 ? (int)(rows - i) : 4;
        for (int t = 0; t < r; t++) m[t] = causal ? row0 + i + t + 1 : L;
        if (r == 4)
            dsoftmax_group(4, ds + i * lds, lds, p + i * L, m, L, scale);
        else
            for (int t = 0; t < r; t++) dsoftmax_group(1, ds + (i + t) * lds, lds, p + (i + t) * L, m + t, L, scale);
    }
}
#else
static void dsoftmax_block(float *ds, i64 lds, const float *p, i64 rows, i64 row0, int causal, i64 L, float scale) {
    for (i64 i = 0; i < rows; i++) {
        const float *pr = p + i * L;
        float *dr = ds + i * lds, d = 0.0f;
        i64 m = causal ? row0 + i + 1 : L, z = m + TILE_R_MAX < L ? m + TILE_R_MAX : L;
#pragma omp simd reduction(+ : d)
        for (i64 j = 0; j < m; j++) d += pr[j] * dr[j];
#pragma omp simd
        for (i64 j = 0; j < m; j++) dr[j] = scale * (pr[j] * (dr[j] - d));
        for (i64 j = m; j < z; j++) dr[j] = 0.0f;
    }
}
#endif

/* rows of a query block: its scores (rows x S) stay in L1 (~16 KB) between the two products */
static i64 query_block(i64 Sp) {
    i64 fb = 4096 / Sp;
    return fb < 8 ? 8 : fb > 128 ? 128 : fb;
}

/* wider heads than this go through BLAS (its blocking for cache pays off there) */
#define SMALL_HEAD 128

/* ---- the BLAS path (E or Ev > SMALL_HEAD) ---- */

/* softmax of each row of S (rows x Sn, row stride Sn) in place; row i is query row0 + i, which under
 * `causal` sees keys j <= row0 + i only (the rest, computed or not, become 0) */
static void softmax_rows(float *s, i64 row0, i64 rows, i64 Sn, int causal) {
    softmax_block(s, Sn, s, rows, row0, causal, Sn);
}

/* causal attention works in blocks of query rows: block [r0, r1) needs keys < r1 only, so the
 * products skip the masked upper triangle (about 3/8 of the work at L = 128) */
#define CAUSAL_BLOCK 32

static void sdpa_fwd_blas(i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev, const float *q, const i64 *sq,
                          const float *k, const i64 *sk, const float *v, const i64 *sv, float scale, int causal,
                          float *out, float *P) {
    i64 ldq, ldk, ldv;
    int tq = layout(sq[2], sq[3], E, &ldq), tk = layout(sk[2], sk[3], E, &ldk);
    int tv = layout(sv[2], sv[3], Ev, &ldv);
    int prev = blas_serial();
#pragma omp parallel for schedule(static)
    for (i64 bh = 0; bh < B * H; bh++) {
        i64 b = bh / H, h = bh % H;
        const float *qh = q + b * sq[0] + h * sq[1], *kh = k + b * sk[0] + h * sk[1];
        const float *vh = v + b * sv[0] + h * sv[1];
        for (i64 r0 = 0; r0 < L; r0 += causal ? CAUSAL_BLOCK : L) {
            i64 r1 = causal && r0 + CAUSAL_BLOCK < L ? r0 + CAUSAL_BLOCK : L;
            i64 nk = causal && r1 < S ? r1 : S;  /* keys these rows can see */
            float *p = P + (bh * L + r0) * S;
            /* k^T: a NO_TRANS k (rows = keys) is read transposed, and vice versa */
            gemm(tq, tk == NO_TRANS ? TRANS : NO_TRANS, r1 - r0, nk, E, scale, qh + row_at(tq, ldq, r0), ldq, kh,
                 ldk, 0.0f, p, S);
            softmax_rows(p, r0, r1 - r0, S, causal);
            gemm(NO_TRANS, tv, r1 - r0, Ev, nk, 1.0f, p, S, vh, ldv, 0.0f, out + ((b * L + r0) * H + h) * Ev, H * Ev);
        }
    }
    blas_restore(prev);
}

static void sdpa_bwd_blas(i64 B, i64 H, i64 L, i64 E, const float *g, const i64 *sg, const float *q,
                          const i64 *sq, const float *k, const i64 *sk, const float *v, const i64 *sv,
                          const float *P, float scale, int causal, float *grads) {
    i64 ldg, ldq, ldk, ldv, ld3 = 3 * H * E;  /* grads: (B, L, 3, H, E) */
    int tg = layout(sg[2], sg[3], E, &ldg), tq = layout(sq[2], sq[3], E, &ldq);
    int tk = layout(sk[2], sk[3], E, &ldk), tv = layout(sv[2], sv[3], E, &ldv);
    int prev = blas_serial();
#pragma omp parallel
    {
        float *ds = malloc(sizeof(float) * L * L);
#pragma omp for schedule(static)
        for (i64 bh = 0; bh < B * H; bh++) {
            i64 b = bh / H, h = bh % H;
            const float *gh = g + b * sg[0] + h * sg[1], *qh = q + b * sq[0] + h * sq[1];
            const float *kh = k + b * sk[0] + h * sk[1], *vh = v + b * sv[0] + h * sv[1];
            const float *p = P + bh * L * L;
            float *dq = grads + (b * L * 3 * H + h) * E, *dk = dq + H * E, *dv = dq + 2 * H * E;
            i64 blk = causal ? CAUSAL_BLOCK : L;
            for (i64 r0 = 0; r0 < L; r0 += blk) {  /* query rows: dS, then dQ */
                i64 r1 = r0 + blk < L ? r0 + blk : L, nk = causal ? r1 : L;
                gemm(tg, tv == NO_TRANS ? TRANS : NO_TRANS, r1 - r0, nk, E, 1.0f, gh + row_at(tg, ldg, r0), ldg, vh,
                     ldv, 0.0f, ds + r0 * L, L);
                for (i64 i = r0; i < r1; i++) {
                    const float *pr = p + i * L;
                    float *dr = ds + i * L, d = 0.0f;
                    i64 m = causal ? i + 1 : L;
#pragma omp simd reduction(+ : d)
                    for (i64 j = 0; j < m; j++) d += pr[j] * dr[j];
#pragma omp simd
                    for (i64 j = 0; j < m; j++) dr[j] = pr[j] * (dr[j] - d);
                    for (i64 j = m; j < nk; j++) dr[j] = 0.0f;
                }
                gemm(NO_TRANS, tk, r1 - r0, E, nk, scale, ds + r0 * L, L, kh, ldk, 0.0f, dq + r0 * ld3, ld3);
            }
            for (i64 c0 = 0; c0 < L; c0 += blk) {  /* keys: only queries i >= c0 attend to them */
                i64 c1 = c0 + blk < L ? c0 + blk : L, m0 = causal ? c0 : 0;
                gemm(TRANS, tg, c1 - c0, E, L - m0, 1.0f, p + m0 * L + c0, L, gh + row_at(tg, ldg, m0), ldg, 0.0f,
                     dv + c0 * ld3, ld3);
                gemm(TRANS, tq, c1 - c0, E, L - m0, scale, ds + m0 * L + c0, L, qh + row_at(tq, ldq, m0), ldq, 0.0f,
                     dk + c0 * ld3, ld3);
            }
        }
        free(ds);
    }
    blas_restore(prev);
}

/* ---- the entry points ---- */

/* out (B,H,L,Ev laid out as (B,L,H,Ev), so that merging the heads back is a view) =
 * softmax(scale * q k^T [causal]) v; P (B,H,L,S contiguous) keeps the
 * probabilities for backward. q (B,H,L,E), k (B,H,S,E), v (B,H,S,Ev) with strides sq, sk, sv.
 * Per head: K^T packed once; per block of query rows, the scores (small_mm), softmax into P, and
 * P V (small_mm, causal rows summing over the keys they see only). */
void ember_sdpa_fwd(i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev, const float *q, const i64 *sq, const float *k,
                    const i64 *sk, const float *v, const i64 *sv, float scale, int causal, float *out, float *P) {
    if (E > SMALL_HEAD || Ev > SMALL_HEAD) {
        sdpa_fwd_blas(B, H, L, S, E, Ev, q, sq, k, sk, v, sv, scale, causal, out, P);
        return;
    }
    i64 Sp = round_vw(S), Evp = round_vw(Ev), fb = query_block(Sp);
    if (fb > L) fb = L;
#pragma omp parallel
    {
        void *raw;
        float *kt = scratch(E * Sp + S * Evp + fb * Sp + fb * Evp, &raw);
        float *vbuf = kt + E * Sp, *sbuf = vbuf + S * Evp, *tmp = sbuf + fb * Sp;
#pragma omp for schedule(static)
        for (i64 bh = 0; bh < B * H; bh++) {
            i64 b = bh / H, h = bh % H, ldv;
            const float *qh = q + b * sq[0] + h * sq[1], *kh = k + b * sk[0] + h * sk[1];
            pack(kh, sk[3], sk[2], E, S, kt, Sp);  /* K^T */
            const float *vb = operand(v + b * sv[0] + h * sv[1], sv[2], sv[3], S, Ev, vbuf, &ldv);
            for (i64 r0 = 0; r0 < L; r0 += fb) {
                i64 r1 = min64(r0 + fb, L), rows = r1 - r0;
                float *p = P + (bh * L + r0) * S;
                small_mm(rows, Sp, E, scale, qh + r0 * sq[2], sq[2], sq[3], kt, Sp, sbuf, Sp,
                         causal ? MASK_COLS : MASK_NONE, r0);
                softmax_block(sbuf, Sp, p, rows, r0, causal, S);
                small_mm_to(rows, Ev, causal ? min64(r1, S) : S, 1.0f, p, S, 1, vb, ldv,
                            out + ((b * L + r0) * H + h) * Ev, H * Ev, causal ? MASK_KEND : MASK_NONE, r0, tmp);
            }
        }
        free(raw);
    }
}

/* Gradients of ember_sdpa_fwd into grads = (3, B, H, L, E) laid out as (B, L, 3, H, E): dq, dk, dv
 * (L == S, E == Ev) side by side in each row, as the gradient of one fused qkv projection is.
 * dV = P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(P * dP));  dQ = scale dS K;  dK = scale dS^T Q.
 * Under `causal`, P and dS are zero above the diagonal: the products skip those terms. */
/* part[j * E + e] = sum over the L rows (stride ld) of dq, dk, dv (j = 0, 1, 2; each E wide, H * E
 * apart in a row) of one head: its share of the qkv projection's bias gradient */
static void head_sums(const float *dq, i64 ld, i64 L, i64 H, i64 E, double *part) {
    for (int j = 0; j < 3; j++) {
        double *acc = part + j * H * E;
        for (i64 e = 0; e < E; e++) acc[e] = 0.0;
        for (i64 r = 0; r < L; r++) {
            const float *x = dq + r * ld + j * H * E;
#pragma omp simd
            for (i64 e = 0; e < E; e++) acc[e] += x[e];
        }
    }
}

/* dbias[c] = sum over b of part[b * n + c], in batch order: the same sum for any thread count */
static void batch_sums(const double *part, i64 B, i64 n, float *dbias) {
    for (i64 c = 0; c < n; c++) {
        double s = 0.0;
        for (i64 b = 0; b < B; b++) s += part[b * n + c];
        dbias[c] = (float)s;
    }
}

/* With dbias (else NULL), also the bias gradient of the fused qkv projection whose gradient grads
 * is: grads summed over the batch and the rows, laid out (3, H, E), from each head's rows while they
 * are in cache (a separate column sum re-read the 3 MB gradient of W3's layer: ~0.15 ms). */
void ember_sdpa_bwd(i64 B, i64 H, i64 L, i64 E, const float *g, const i64 *sg, const float *q, const i64 *sq,
                    const float *k, const i64 *sk, const float *v, const i64 *sv, const float *P, float scale,
                    int causal, float *grads, float *dbias) {
    i64 n3 = 3 * H * E;
    double *part = dbias ? malloc(sizeof(double) * B * n3) : NULL;  /* (B, 3, H, E) */
    if (E > SMALL_HEAD) {
        sdpa_bwd_blas(B, H, L, E, g, sg, q, sq, k, sk, v, sv, P, scale, causal, grads);
        if (dbias) {
            for (i64 bh = 0; bh < B * H; bh++)
                head_sums(grads + ((bh / H) * L * 3 * H + bh % H) * E, n3, L, H, E,
                          part + (bh / H) * n3 + (bh % H) * E);
            batch_sums(part, B, n3, dbias);
            free(part);
        }
        return;
    }
    i64 ld3 = 3 * H * E, Lp = round_vw(L), Ep = round_vw(E), fb = query_block(Lp);  /* grads: (B, L, 3, H, E) */
    if (fb > L) fb = L;
#pragma omp parallel
    {
        void *raw;
        float *vt = scratch(E * Lp + 4 * L * Ep + L * Lp, &raw);
        float *kbuf = vt + E * Lp, *qbuf = kbuf + L * Ep, *gbuf = qbuf + L * Ep, *tmp = gbuf + L * Ep;
        float *ds = tmp + L * Ep;
        int mc = causal ? MASK_COLS : MASK_NONE, me = causal ? MASK_KEND : MASK_NONE;
        int mb = causal ? MASK_KBEG : MASK_NONE;
#pragma omp for schedule(static)
        for (i64 bh = 0; bh < B * H; bh++) {
            i64 b = bh / H, h = bh % H, ldk, ldq, ldg;
            const float *gh = g + b * sg[0] + h * sg[1], *p = P + bh * L * L;
            float *dq = grads + (b * L * 3 * H + h) * E, *dk = dq + H * E, *dv = dq + 2 * H * E;
            pack(v + b * sv[0] + h * sv[1], sv[3], sv[2], E, L, vt, Lp);  /* V^T */
            const float *kb = operand(k + b * sk[0] + h * sk[1], sk[2], sk[3], L, E, kbuf, &ldk);
            const float *qb = operand(q + b * sq[0] + h * sq[1], sq[2], sq[3], L, E, qbuf, &ldq);
            const float *gb = operand(gh, sg[2], sg[3], L, E, gbuf, &ldg);
            for (i64 r0 = 0; r0 < L; r0 += fb) {  /* query rows: dP, dS (scaled), dQ */
                i64 r1 = min64(r0 + fb, L);
                small_mm(r1 - r0, Lp, E, 1.0f, gh + r0 * sg[2], sg[2], sg[3], vt, Lp, ds + r0 * Lp, Lp, mc, r0);
                dsoftmax_block(ds + r0 * Lp, Lp, p + r0 * L, r1 - r0, r0, causal, L, scale);
                small_mm_to(r1 - r0, E, causal ? r1 : L, 1.0f, ds + r0 * Lp, Lp, 1, kb, ldk, dq + r0 * ld3, ld3, me,
                            r0, tmp);
            }
            /* keys' rows: dK = dS^T Q, dV = P^T dO (A read down the columns of dS and P) */
            small_mm_to(L, E, L, 1.0f, ds, 1, Lp, qb, ldq, dk, ld3, mb, 0, tmp);
            small_mm_to(L, E, L, 1.0f, p, 1, L, gb, ldg, dv, ld3, mb, 0, tmp);
            if (part) head_sums(dq, ld3, L, H, E, part + b * n3 + h * E);
        }
        free(raw);
    }
    if (part) {
        batch_sums(part, B, n3, dbias);
        free(part);
    }
}
