#ifndef ASR_KERNELS_H
#define ASR_KERNELS_H
#include <stddef.h>

/// In place: x[i] = e^x[i] (relative error < 3e-7 on [-87, 88]; clamped outside).
void asr_exp(float *x, size_t count);

/// In place: the exact (erf) GELU, 0.5·x·(1 + erf(x/√2)), with erf to 1.5e-7 (Abramowitz & Stegun 7.1.26).
void asr_gelu(float *x, size_t count);

/// In place: each of `rows` rows of `cols` floats becomes its softmax (max subtracted first, so it cannot overflow).
void asr_softmax_rows(float *x, size_t rows, size_t cols);

/// How many of `count` floats are NaN or infinite.
size_t asr_count_nonfinite(const float *x, size_t count);

/// LayerNorm of each of `rows` rows of `cols` floats of x (biased variance, as torch), then · weight + bias, into y
/// (which may be x: in place).
void asr_layer_norm_rows(const float *x, float *y, size_t rows, size_t cols, const float *weight, const float *bias,
                         float eps);

/// Floats of scratch `asr_attention_head` needs for `t` frames and head size `d`.
size_t asr_attention_workspace(size_t t, size_t d);

/// One attention head: out (t × d, row stride ldo) = softmax(scale · q·kᵀ) · v, where q, k and v are t × d with row
/// stride ld. `workspace` holds asr_attention_workspace(t, d) floats; concurrent calls need their own.
void asr_attention_head(size_t t, size_t d, const float *q, const float *k, const float *v, size_t ld, float scale,
                        float *out, size_t ldo, float *workspace);

/// asr_attention_head with both products on AVX512_BF16 dot products: q·scale, k, v and the probabilities rounded to
/// bf16, scores, softmax and sums in fp32. Only where asr_attention_bf16_available(); workspace holds
/// asr_attention_workspace_bf16(t, d) floats.
void asr_attention_head_bf16(size_t t, size_t d, const float *q, const float *k, const float *v, size_t ld, float scale,
                             float *out, size_t ldo, float *workspace);
size_t asr_attention_workspace_bf16(size_t t, size_t d);
/// 1 when this CPU has the instructions asr_attention_head_bf16 runs on (AVX512_BF16).
int asr_attention_bf16_available(void);

/// 1 when this CPU runs asr_attention_head at full speed (AVX-512); elsewhere it is correct but slower than BLAS.
int asr_attention_is_fast(void);

/// Mean (`window`) and covariance (`window` × `window`, divided by `rows`) of `rows` windows of `window` floats that
/// start `row_step` floats apart, in double; `scratch` holds `window` doubles.
void asr_window_moments_f64(const float *x, size_t rows, size_t row_step, size_t window, double *mean,
                            double *covariance, double *scratch);

/// One frame of CTC forced alignment's Viterbi (CTCViterbi.Lattice.step) over states [first, end), first >= 2: each
/// state takes the best of staying (previous[s]), advancing (previous[s − 1]) and, where skip_allowed[s], skipping
/// a blank (previous[s − 2]); a move other than staying only when strictly better than both others; then adds
/// row[labels[s]]. Back-pointers (0 stay, 1 advance, 2 skip) into back[s] when back is not NULL.
void asr_viterbi_step(const float *previous, float *current, const unsigned char *skip_allowed, const int *labels,
                      const float *row, signed char *back, size_t first, size_t end);

/// Makes glibc keep freed memory in the heap for reuse instead of returning it to the kernel (see
/// keepFreedMemoryForReuse in Sources/asr/ASR.swift). For applications; the library never calls it.
void asr_keep_freed_memory(void);

#endif
