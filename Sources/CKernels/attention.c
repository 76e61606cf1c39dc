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

        // Running softmax over key chunks (as in FlashAttention): per query the largest score so far, the sum of
        // exp(score − largest), and outᵀ accumulated with the same shift; when a chunk raises the largest score,
        // what was accumulated is rescaled by exp(old − new).
        v16 largest_lo = SPLAT16(-__builtin_inff()), largest_hi = largest_lo;
        v16 total_lo = (v16){}, total_hi = (v16){};
        float carry[NR] __attribute__((aligned(64)));
        for (size_t c0 = 0; c0 < t; c0 += KEY_CHUNK) {
            size_t chunk = t - c0 < KEY_CHUNK ? t - c0 : KEY_CHUNK;
            // Sᵀ chunk (chunk × NR) = K_chunk · Q_blockᵀ; rows past `chunk` are padding keys and never read.
            for (size_t k0 = 0; k0 < chunk; k0 += MR)
                tile_product(d, packed_k + (c0 + k0) * d, packed_q, scores_t + k0 * NR, NR, NULL);

            // Softmax step on 2 × 16 lanes (NR = 32 queries).
            v16 max_lo = largest_lo, max_hi = largest_hi;
            for (size_t p = 0; p < chunk; p++) {
                max_lo = __builtin_elementwise_max(max_lo, LOAD16(scores_t + p * NR));
                max_hi = __builtin_elementwise_max(max_hi, LOAD16(scores_t + p * NR + 16));
            }
            // The first chunk has nothing to carry (the accumulators are not read).
            v16 carry_lo = c0 == 0 ? (v16){} : EXP16(largest_lo - max_lo);
            v16 carry_hi = c0 == 0 ? (v16){} : EXP16(largest_hi - max_hi);
            largest_lo = max_lo, largest_hi = max_hi;
            total_lo *= carry_lo, total_hi *= carry_hi;
            STORE16(carry, carry_lo), STORE16(carry + 16, carry_hi);
            for (size_t p = 0; p < chunk; p++) {
                v16 e_lo = EXP16(LOAD16(scores_t + p * NR) - largest_lo);
                v16 e_hi = EXP16(LOAD16(scores_t + p * NR + 16) - largest_hi);
                STORE16(scores_t + p * NR, e_lo), STORE16(scores_t + p * NR + 16, e_hi);
                total_lo += e_lo, total_hi += e_hi;
            }
            // outᵀ (dims × NR) = carry ⊙ outᵀ + Vᵀ_chunk · P_chunkᵀ, one MR-dim panel at a time.
            for (size_t d0 = 0; d0 < dims; d0 += MR)
                tile_product(chunk, packed_vt + d0 * t + c0 * MR, scores_t, out_t + d0 * NR, NR,
                             c0 == 0 ? NULL : carry);
        }
        // out[query][dim] = outᵀ[dim][query] / Σ exp, written back transposed.
        float total[NR];
        STORE16(total, total_lo), STORE16(total + 16, total_hi);
        for (size_t j = 0; j < queries; j++) {
            float inverse = 1.0f / total[j];
            float *dst = out + (q0 + j) * ldo;
            for (size_t i = 0; i < d; i++) dst[i] = out_t[i * NR + j] * inverse;
        }
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
