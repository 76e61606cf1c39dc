// Fused multi-head attention for one head: softmax(q·kᵀ·scale)·v without materialising the (t × t) score matrix.
//
// Why not two sgemm calls and a softmax: with a head size of 64 the score product has K = 64, so a BLAS library
// spends much of its time packing and writing a t × t matrix (9 MB at 30 s of audio) that the softmax then reads
// and rewrites and the second product reads again; on 2 cores that ran at ~50 GFLOP/s. Here each block of 32
// queries keeps its scores in cache, and both products run through one register-tiled 8 × 32 kernel on
// operands packed once per head. Keys are taken in chunks of 192 so a chunk's scores stay in L1. MR = 8 divides the
// usual head sizes (64, 80, 120), so no lanes of the second product are padding; measured faster than 12 × 32.
//
// Layout trick: the scores are computed transposed, Sᵀ[key][query] = K·Qᵀ, which is exactly the packed form the
// second product wants for its wide operand, and makes the softmax (over keys, per query) a column pass that
// vectorises across the 32 queries. The second product is computed as outᵀ[dim][query] = Vᵀ·Pᵀ, accumulated over
// chunks of keys with a running softmax, and written back transposed and divided by each query's Σ exp.
#include "kernels.h"
#include "approx.h"
#include <stdint.h>
#include <string.h>

enum { MR = 8, NR = 32 };   // tile: MR rows of the narrow operand × NR columns (two 16-float vectors)

// 16-float vectors in the compiler's vector extension: AVX-512 registers in the avx512f clone, pairs or quadruples of
// narrower registers in the others. Helpers are macros: passing these by value to functions is an ABI error in the
// clones without AVX-512.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16_unaligned __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64)));

#define LOAD16(p) (*(const v16_unaligned *)(p))
#define STORE16(p, v) (*(v16_unaligned *)(p) = (v))
#define SPLAT16(x) ((v16){} + (x))

// exp_approx (approx.h) on 16 lanes: the compiler does not vectorise the scalar version across the 32 queries of a
// score row (it unrolls them as scalars instead).
#define EXP16(value) ({                                                                                   \
    v16 x_ = __builtin_elementwise_min(__builtin_elementwise_max((value), SPLAT16(EXP_LOWEST)), SPLAT16(EXP_HIGHEST)); \
    v16 shifted_ = x_ * 1.44269504f + EXP_SHIFTER;                                                        \
    v16 n_ = shifted_ - EXP_SHIFTER;                                                                      \
    EXP_POLYNOMIAL(EXP_REDUCED(x_, n_)) * (v16)(((v16i)shifted_ - EXP_SHIFTER_BITS + 127) << 23);         \
})

static inline size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// c[MR][NR] (row stride ldc) = Σ_p x[p][0..MR) ⊗ w[p][0..NR), for operands packed as x[p·MR + i], w[p·NR + j];
// with `carry`, c's old value scaled per column by carry[j] is added. 16 accumulators stay in registers (AVX-512 has
// 32); each step loads two vectors of w and broadcasts MR scalars of x.
static inline __attribute__((always_inline)) void tile_product(size_t kc, const float *restrict x,
                                                               const float *restrict w, float *restrict c,
                                                               size_t ldc, const float *restrict carry) {
    v16 lo[MR], hi[MR];
    if (carry) {
        v16 scale_lo = LOAD16(carry), scale_hi = LOAD16(carry + 16);
        for (int i = 0; i < MR; i++) lo[i] = LOAD16(c + i * ldc) * scale_lo, hi[i] = LOAD16(c + i * ldc + 16) * scale_hi;
    } else {
        for (int i = 0; i < MR; i++) lo[i] = hi[i] = (v16){0};
    }
    for (size_t p = 0; p < kc; p++) {
        v16 w0 = LOAD16(w), w1 = LOAD16(w + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            lo[i] += x[i] * w0;
            hi[i] += x[i] * w1;
        }
        x += MR;
        w += NR;
    }
    for (int i = 0; i < MR; i++) {
        STORE16(c + i * ldc, lo[i]);
        STORE16(c + i * ldc + 16, hi[i]);
    }
}

// Rows of q, k and v are a head's slice of a wide (t × 3·hidden) matrix: 256 bytes out of every ~9 KB, a stride
// the hardware prefetcher does not follow. Packing loops ask for rows a few iterations ahead.
static inline __attribute__((always_inline)) void prefetch_row(const float *row, size_t count) {
    for (size_t i = 0; i < count; i += 16) __builtin_prefetch(row + i);
}

enum { KEY_CHUNK = 24 * MR };   // keys per step of the running softmax (whole panels): 24 KB of scores, in L1

size_t asr_attention_workspace(size_t t, size_t d) {
    size_t keys = round_up(t, MR), dims = round_up(d, MR);
    // packed K, packed Vᵀ, score chunk, packed Q block, outᵀ accumulators; 16 floats of slack each for alignment.
    return keys * d + dims * t + KEY_CHUNK * NR + d * NR + dims * NR + 5 * 16;
}

static float *aligned_region(float **cursor, size_t count) {
    float *start = (float *)(((uintptr_t)*cursor + 63) & ~(uintptr_t)63);
    *cursor = start + count;
    return start;
}

// Running softmax over key chunks (as in FlashAttention) for one block of NR queries, on 2 × 16 lanes: per query the
// largest score so far and the sum of exp(score − largest); the output accumulated with the same shift is rescaled by
// exp(old − new) when a chunk raises the largest score. Shared by the fp32 and bf16 kernels. The helpers take the
// state by pointer and are always inlined: passing 16-float vectors by value is an ABI error in the clones without
// AVX-512.
typedef struct { v16 largest_lo, largest_hi, total_lo, total_hi; } running_softmax;

static inline __attribute__((always_inline)) void softmax_start(running_softmax *s) {
    s->largest_lo = s->largest_hi = SPLAT16(-__builtin_inff());
    s->total_lo = s->total_hi = (v16){};
}

// Raises the largest scores to those of a chunk (Sᵀ: `chunk` rows of NR), rescales the sums, and writes to carry[NR]
// the factor the accumulated output must be multiplied by (the first chunk has nothing to carry: its accumulators
// are not read). The chunk's exponentials, exp(score − s->largest_*), are then the caller's to take and add.
static inline __attribute__((always_inline)) void softmax_raise(running_softmax *s, const float *scores_t, size_t chunk,
                                                                int first, float *carry) {
    v16 max_lo = s->largest_lo, max_hi = s->largest_hi;
    for (size_t p = 0; p < chunk; p++) {
        max_lo = __builtin_elementwise_max(max_lo, LOAD16(scores_t + p * NR));
        max_hi = __builtin_elementwise_max(max_hi, LOAD16(scores_t + p * NR + 16));
    }
    v16 carry_lo = first ? (v16){} : EXP16(s->largest_lo - max_lo);
    v16 carry_hi = first ? (v16){} : EXP16(s->largest_hi - max_hi);
    s->largest_lo = max_lo, s->largest_hi = max_hi;
    s->total_lo *= carry_lo, s->total_hi *= carry_hi;
    STORE16(carry, carry_lo), STORE16(carry + 16, carry_hi);
}

// out[query][dim] = outᵀ[dim][query] / Σ exp for the block's `queries` queries, written back transposed.
static inline __attribute__((always_inline)) void softmax_write(const running_softmax *s, const float *out_t,
                                                                size_t queries, size_t d, float *out, size_t ldo) {
    float total[NR];
    STORE16(total, s->total_lo), STORE16(total + 16, s->total_hi);
    for (size_t j = 0; j < queries; j++) {
        float inverse = 1.0f / total[j];
        float *dst = out + j * ldo;
        for (size_t i = 0; i < d; i++) dst[i] = out_t[i * NR + j] * inverse;
    }
}

ASR_CLONES
void asr_attention_head(size_t t, size_t d, const float *q, const float *k, const float *v, size_t ld, float scale,
                        float *out, size_t ldo, float *workspace) {
    if (t == 0 || d == 0) return;
    size_t keys = round_up(t, MR), dims = round_up(d, MR);
    float *cursor = workspace;
    float *packed_k = aligned_region(&cursor, keys * d);        // [key panel][dim][MR keys]
    float *packed_vt = aligned_region(&cursor, dims * t);       // [dim panel][key][MR dims]
    float *scores_t = aligned_region(&cursor, KEY_CHUNK * NR);  // Sᵀ of one key chunk: [key][NR queries]
    float *packed_q = aligned_region(&cursor, d * NR);          // [dim][NR queries], scaled
    float *out_t = aligned_region(&cursor, dims * NR);          // outᵀ accumulators: [dim][NR queries]

    // Pack K as the narrow operand of Sᵀ = K·Qᵀ (zero keys pad the last panel) and Vᵀ as the narrow operand of
    // outᵀ = Vᵀ·Pᵀ (zero dims pad the last panel). Once per head.
    for (size_t k0 = 0; k0 < keys; k0 += MR) {
        float *panel = packed_k + k0 * d;
        for (size_t i = 0; i < MR; i++) {
            if (k0 + i + 2 * MR < t) prefetch_row(k + (k0 + i + 2 * MR) * ld, d);
            const float *row = k0 + i < t ? k + (k0 + i) * ld : NULL;
            for (size_t p = 0; p < d; p++) panel[p * MR + i] = row ? row[p] : 0;
        }
    }
    for (size_t p = 0; p < t; p++) {
        if (p + 16 < t) prefetch_row(v + (p + 16) * ld, d);
        const float *row = v + p * ld;
        for (size_t d0 = 0; d0 < dims; d0 += MR) {
            float *dst = packed_vt + d0 * t + p * MR;
            size_t width = d - d0 < MR ? d - d0 : MR;
            for (size_t i = 0; i < MR; i++) dst[i] = i < width ? row[d0 + i] : 0;
        }
    }

    for (size_t q0 = 0; q0 < t; q0 += NR) {
        size_t queries = t - q0 < NR ? t - q0 : NR;
        // Q block, transposed and scaled (as transformers scales q before the product); zero queries pad it.
        for (size_t j = 0; j < NR; j++) {
            if (q0 + NR + j < t) prefetch_row(q + (q0 + NR + j) * ld, d);
            const float *row = j < queries ? q + (q0 + j) * ld : NULL;
            for (size_t p = 0; p < d; p++) packed_q[p * NR + j] = row ? row[p] * scale : 0;
        }

        // The block's output rows are written at the end, 256 bytes in each of 32 rows a few KB apart: ask for them
        // now so the writes do not wait on memory.
        for (size_t j = 0; j < queries; j++)
            for (size_t i = 0; i < d; i += 16) __builtin_prefetch(out + (q0 + j) * ldo + i, 1);

        running_softmax softmax;
        softmax_start(&softmax);
        float carry[NR] __attribute__((aligned(64)));
        for (size_t c0 = 0; c0 < t; c0 += KEY_CHUNK) {
            size_t chunk = t - c0 < KEY_CHUNK ? t - c0 : KEY_CHUNK;
            // Sᵀ chunk (chunk × NR) = K_chunk · Q_blockᵀ; rows past `chunk` are padding keys and never read.
            for (size_t k0 = 0; k0 < chunk; k0 += MR)
                tile_product(d, packed_k + (c0 + k0) * d, packed_q, scores_t + k0 * NR, NR, NULL);

            softmax_raise(&softmax, scores_t, chunk, c0 == 0, carry);
            for (size_t p = 0; p < chunk; p++) {
                v16 e_lo = EXP16(LOAD16(scores_t + p * NR) - softmax.largest_lo);
                v16 e_hi = EXP16(LOAD16(scores_t + p * NR + 16) - softmax.largest_hi);
                STORE16(scores_t + p * NR, e_lo), STORE16(scores_t + p * NR + 16, e_hi);
                softmax.total_lo += e_lo, softmax.total_hi += e_hi;
            }
            // outᵀ (dims × NR) = carry ⊙ outᵀ + Vᵀ_chunk · P_chunkᵀ, one MR-dim panel at a time.
            for (size_t d0 = 0; d0 < dims; d0 += MR)
                tile_product(chunk, packed_vt + d0 * t + c0 * MR, scores_t, out_t + d0 * NR, NR,
                             c0 == 0 ? NULL : carry);
        }
        softmax_write(&softmax, out_t, queries, d, out + q0 * ldo, ldo);
    }
}

int asr_attention_is_fast(void) {
#if defined(__x86_64__) && defined(__clang__)
    // The 8 × 32 tile needs 16 accumulators of 16 floats: AVX-512 holds them in registers, AVX2 would need 32.
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

// MARK: bf16 scores (models loaded with --precision bf16 or int8, on CPUs with AVX512_BF16)
//
// The same algorithm with both products on VDPBF16PS: each instruction multiplies pairs of bf16 values and adds both
// products to one fp32 lane, so a step consumes two values of the reduction dimension and does twice the work of an
// FMA step. Operands are packed as pairs along that dimension: K and the scaled Q as (dim 2p, dim 2p+1), Vᵀ and the
// probabilities as (key 2p, key 2p+1). Rounded to bf16 (nearest even) as they are packed: q·scale, k, v and the
// probabilities, as transformers' bf16 autocast rounds its matmul inputs; the scores, the running softmax, its sums
// and the output accumulate in fp32.
#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

// bf16 bits of x, rounded to nearest even; a NaN stays a NaN.
static inline uint32_t bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// Two values as one 32-bit pair: `first` in the low half (the lower address), `second` in the high half.
static inline uint32_t bf16_pair(float first, float second) { return bf16_bits(first) | (bf16_bits(second) << 16); }

// The packing below rounds with VCVTNE2PS2BF16 (nearest even, as bf16_bits; it reads denormal inputs as zero, which
// moves nothing above 1e-38): one instruction per 32 values instead of a dozen per 16, which made packing a fifth of
// the kernel's time.

// 16 pairs (first[j], second[j]) from two vectors of 16: the instruction puts `second` in the upper half of its
// result, and one permutation interleaves the halves.
BF16_TARGET static inline __attribute__((always_inline)) __m512i bf16_interleave(__m512 first, __m512 second) {
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(order, (__m512i)_mm512_cvtne2ps_pbh(second, first));
}

// A row of d values (times `scale`) as (d + 1) / 2 pairs of consecutive values; an odd last value pairs with a zero.
BF16_TARGET static inline __attribute__((always_inline)) void bf16_row_pairs(const float *row, size_t d, float scale,
                                                                            uint32_t *pairs) {
    __m512 factor = _mm512_set1_ps(scale);
    size_t p = 0;
    // 32 consecutive values: the instruction's lower half holds the first 16 rounded, its upper half the next 16,
    // so its 32-bit lanes are already the pairs (2p, 2p+1), (2p+2, 2p+3), … in order.
    for (; 2 * p + 32 <= d; p += 16) {
        __m512 low = _mm512_mul_ps(_mm512_loadu_ps(row + 2 * p), factor);
        __m512 high = _mm512_mul_ps(_mm512_loadu_ps(row + 2 * p + 16), factor);
        _mm512_storeu_si512(pairs + p, (__m512i)_mm512_cvtne2ps_pbh(high, low));
    }
    for (; 2 * p < d; p++) pairs[p] = bf16_pair(row[2 * p] * scale, 2 * p + 1 < d ? row[2 * p + 1] * scale : 0);
}

// Column `column` of a panel whose pair p sits at panel[p · width + column]: `row` (d values, times `scale`) as pairs,
// or zeros for a padding row (NULL). `scratch` holds one row's pairs on their way to the strided column.
BF16_TARGET static inline __attribute__((always_inline)) void bf16_panel_column(const float *row, size_t d, float scale,
                                                                               uint32_t *scratch, uint32_t *panel,
                                                                               size_t width, size_t column) {
    size_t dim_pairs = (d + 1) / 2;
    if (row) bf16_row_pairs(row, d, scale, scratch);
    for (size_t p = 0; p < dim_pairs; p++) panel[p * width + column] = row ? scratch[p] : 0;
}

// c[MR][NR] (row stride ldc) = Σ_p pairs x[p][i] · w[p][j] (each a dot product of two bf16), plus c's old value
// scaled per column by carry[j] when `carry` is given. x is packed [pair][MR] (32-bit pairs, broadcast), w [pair][NR]
// pairs (two vectors of 16 pairs).
BF16_TARGET static inline __attribute__((always_inline)) void tile_product_bf16(size_t pairs, const uint32_t *restrict x,
                                                                               const uint32_t *restrict w,
                                                                               float *restrict c, size_t ldc,
                                                                               const float *restrict carry) {
    __m512 lo[MR], hi[MR];
    if (carry) {
        __m512 scale_lo = _mm512_loadu_ps(carry), scale_hi = _mm512_loadu_ps(carry + 16);
        for (int i = 0; i < MR; i++) {
            lo[i] = _mm512_mul_ps(_mm512_loadu_ps(c + i * ldc), scale_lo);
            hi[i] = _mm512_mul_ps(_mm512_loadu_ps(c + i * ldc + 16), scale_hi);
        }
    } else {
        for (int i = 0; i < MR; i++) lo[i] = hi[i] = _mm512_setzero_ps();
    }
    for (size_t p = 0; p < pairs; p++) {
        __m512bh w0 = (__m512bh)_mm512_loadu_si512(w), w1 = (__m512bh)_mm512_loadu_si512(w + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512bh xi = (__m512bh)_mm512_set1_epi32((int)x[i]);
            lo[i] = _mm512_dpbf16_ps(lo[i], xi, w0);
            hi[i] = _mm512_dpbf16_ps(hi[i], xi, w1);
        }
        x += MR;
        w += NR;
    }
    for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(c + i * ldc, lo[i]);
        _mm512_storeu_ps(c + i * ldc + 16, hi[i]);
    }
}

size_t asr_attention_workspace_bf16(size_t t, size_t d) {
    size_t keys = round_up(t, MR), dims = round_up(d, MR), dim_pairs = (d + 1) / 2, key_pairs = (t + 1) / 2;
    // packed K, packed Vᵀ (32-bit pairs), score chunk (fp32), probability pairs, packed Q pairs, outᵀ accumulators,
    // one row's pairs.
    return keys * dim_pairs + dims * key_pairs + KEY_CHUNK * NR + KEY_CHUNK / 2 * NR + dim_pairs * NR + dims * NR +
           dim_pairs + 7 * 16;
}

static uint32_t *aligned_pairs(float **cursor, size_t count) { return (uint32_t *)aligned_region(cursor, count); }

BF16_TARGET void asr_attention_head_bf16(size_t t, size_t d, const float *q, const float *k, const float *v, size_t ld,
                                         float scale, float *out, size_t ldo, float *workspace) {
    if (t == 0 || d == 0) return;
    size_t keys = round_up(t, MR), dims = round_up(d, MR), dim_pairs = (d + 1) / 2, key_pairs = (t + 1) / 2;
    float *cursor = workspace;
    uint32_t *packed_k = aligned_pairs(&cursor, keys * dim_pairs);       // [key panel][dim pair][MR keys]
    uint32_t *packed_vt = aligned_pairs(&cursor, dims * key_pairs);      // [dim panel][key pair][MR dims]
    float *scores_t = aligned_region(&cursor, KEY_CHUNK * NR);           // Sᵀ of one key chunk: [key][NR queries]
    uint32_t *probabilities = aligned_pairs(&cursor, KEY_CHUNK / 2 * NR); // [key pair][NR queries]
    uint32_t *packed_q = aligned_pairs(&cursor, dim_pairs * NR);         // [dim pair][NR queries], scaled
    float *out_t = aligned_region(&cursor, dims * NR);                   // outᵀ accumulators: [dim][NR queries]
    uint32_t *row_pairs = aligned_pairs(&cursor, dim_pairs);             // one row of K or Q as pairs

    // K and Vᵀ, once per head; zeros pad keys past t and dims past d.
    for (size_t k0 = 0; k0 < keys; k0 += MR) {
        uint32_t *panel = packed_k + k0 * dim_pairs;
        for (size_t i = 0; i < MR; i++) {
            if (k0 + i + 2 * MR < t) prefetch_row(k + (k0 + i + 2 * MR) * ld, d);
            bf16_panel_column(k0 + i < t ? k + (k0 + i) * ld : NULL, d, 1.0f, row_pairs, panel, MR, i);
        }
    }
    for (size_t p = 0; p < key_pairs; p++) {
        if (2 * p + 16 < t) prefetch_row(v + (2 * p + 16) * ld, d), prefetch_row(v + (2 * p + 17 < t ? 2 * p + 17 : 2 * p + 16) * ld, d);
        const float *first = v + 2 * p * ld, *second = 2 * p + 1 < t ? v + (2 * p + 1) * ld : NULL;
        size_t d0 = 0;
        // 16 dims at a time: 16 pairs (key 2p, key 2p+1), the first 8 into one dim panel and the next 8 into the next.
        for (; d0 + 16 <= d; d0 += 16) {
            __m512 a = _mm512_loadu_ps(first + d0), b = second ? _mm512_loadu_ps(second + d0) : _mm512_setzero_ps();
            __m512i pairs = bf16_interleave(a, b);
            _mm256_storeu_si256((__m256i *)(packed_vt + d0 * key_pairs + p * MR), _mm512_castsi512_si256(pairs));
            _mm256_storeu_si256((__m256i *)(packed_vt + (d0 + MR) * key_pairs + p * MR), _mm512_extracti64x4_epi64(pairs, 1));
        }
        for (; d0 < dims; d0 += MR) {
            uint32_t *dst = packed_vt + d0 * key_pairs + p * MR;
            for (size_t i = 0; i < MR; i++) {
                size_t dim = d0 + i;
                dst[i] = dim < d ? bf16_pair(first[dim], second ? second[dim] : 0) : 0;
            }
        }
    }

    for (size_t q0 = 0; q0 < t; q0 += NR) {
        size_t queries = t - q0 < NR ? t - q0 : NR;
        for (size_t j = 0; j < NR; j++) {
            if (q0 + NR + j < t) prefetch_row(q + (q0 + NR + j) * ld, d);
            bf16_panel_column(j < queries ? q + (q0 + j) * ld : NULL, d, scale, row_pairs, packed_q, NR, j);
        }
        for (size_t j = 0; j < queries; j++)
            for (size_t i = 0; i < d; i += 16) __builtin_prefetch(out + (q0 + j) * ldo + i, 1);

        running_softmax softmax;
        softmax_start(&softmax);
        float carry[NR] __attribute__((aligned(64)));
        for (size_t c0 = 0; c0 < t; c0 += KEY_CHUNK) {   // KEY_CHUNK is even: chunks start on a key pair
            size_t chunk = t - c0 < KEY_CHUNK ? t - c0 : KEY_CHUNK;
            for (size_t k0 = 0; k0 < chunk; k0 += MR)
                tile_product_bf16(dim_pairs, packed_k + (c0 + k0) * dim_pairs, packed_q, scores_t + k0 * NR, NR, NULL);

            softmax_raise(&softmax, scores_t, chunk, c0 == 0, carry);
            // exp, summed in fp32, and stored as bf16 pairs of consecutive keys; an odd last key pairs with a zero.
            size_t pairs = (chunk + 1) / 2;
            for (size_t p = 0; p < pairs; p++) {
                const float *first = scores_t + 2 * p * NR;
                int has_second = 2 * p + 1 < chunk;
                v16 a_lo = EXP16(LOAD16(first) - softmax.largest_lo), a_hi = EXP16(LOAD16(first + 16) - softmax.largest_hi);
                v16 b_lo = has_second ? EXP16(LOAD16(first + NR) - softmax.largest_lo) : (v16){};
                v16 b_hi = has_second ? EXP16(LOAD16(first + NR + 16) - softmax.largest_hi) : (v16){};
                softmax.total_lo += a_lo + b_lo, softmax.total_hi += a_hi + b_hi;
                _mm512_storeu_si512(probabilities + p * NR, bf16_interleave((__m512)a_lo, (__m512)b_lo));
                _mm512_storeu_si512(probabilities + p * NR + 16, bf16_interleave((__m512)a_hi, (__m512)b_hi));
            }
            for (size_t d0 = 0; d0 < dims; d0 += MR)
                tile_product_bf16(pairs, packed_vt + d0 * key_pairs + c0 / 2 * MR, probabilities, out_t + d0 * NR, NR,
                                  c0 == 0 ? NULL : carry);
        }
        softmax_write(&softmax, out_t, queries, d, out + q0 * ldo, ldo);
    }
}

int asr_attention_bf16_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}
#else
size_t asr_attention_workspace_bf16(size_t t, size_t d) { (void)t, (void)d; return 0; }
void asr_attention_head_bf16(size_t t, size_t d, const float *q, const float *k, const float *v, size_t ld,
                             float scale, float *out, size_t ldo, float *workspace) {
    (void)t, (void)d, (void)q, (void)k, (void)v, (void)ld, (void)scale, (void)out, (void)ldo, (void)workspace;
}
int asr_attention_bf16_available(void) { return 0; }
#endif
