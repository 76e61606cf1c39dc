#ifndef ASR_LOWP_H
#define ASR_LOWP_H

#include <stddef.h>
#include <stdint.h>

// Reduced-precision matrix products for the forward pass, on oneDNN (libdnnl): bf16 products through its matmul
// primitive (VDPBF16PS where the CPU has AVX512_BF16), int8 products through dnnl_gemm_u8s8s32 (VPDPBUSD with VNNI).
// Every product here is C (m × n) = A (m × k) · Wᵀ (+ C), with W stored n × k (PyTorch's Linear layout), A and C
// row-major fp32: the conversions of A happen inside, so the Swift side never sees a reduced-precision activation.
// Each call runs on the calling thread only (oneDNN's OpenMP team is set to one thread there): the caller splits
// products across its own threads, as it does for OpenBLAS. Scratch memory is per thread, kept between calls.

#ifdef __cplusplus
extern "C" {
#endif

/// The instruction set oneDNN dispatches to ("avx512_core_bf16", "avx2", ...), after ONEDNN_MAX_CPU_ISA.
const char *asr_lowp_isa(void);

/// 1 when oneDNN can run bf16 matmul here (natively or emulated); 0 otherwise (callers fall back to fp32).
int asr_lowp_bf16_available(void);

/// 1 when oneDNN's bf16 products run on the CPU's bf16 dot-product instructions (AVX512_BF16), not emulated.
int asr_lowp_bf16_native(void);

/// 1 when oneDNN's int8 products use VNNI (VPDPBUSD: products summed in int32, no intermediate saturation).
/// Without it the u8×s8 pairs are summed in int16 (VPMADDUBSW) and can saturate: weights must then stay within
/// ±63 so that 255·63·2 fits (what FBGEMM calls reduce_range).
int asr_lowp_int8_vnni(void);

/// fp32 → bf16, rounding to nearest even (NaN stays NaN).
void asr_f32_to_bf16(size_t count, const float *in, uint16_t *out);
/// bf16 → fp32 (exact).
void asr_bf16_to_f32(size_t count, const uint16_t *in, float *out);

/// Symmetric per-row quantization of a weight matrix (n × k): scale[r] = max|w[r, :]| / max_q, q = round(w / scale)
/// in [-max_q, max_q]; row_sum[r] = Σ q[r, :] (for the activations' zero-point correction).
void asr_quantize_weights_s8(int n, int k, const float *w, int max_q, int8_t *q, float *scale, int32_t *row_sum);

/// Copies stored int8 codes (n × k) into `q` (unless q is NULL: codes read in place) and sets row_sum[r] = Σ q[r, :] and row_largest[r] = max |q[r, :]|
/// (128 for a -128, which callers refuse).
void asr_copy_weights_s8(int n, int k, const int8_t *codes, int8_t *q, int32_t *row_sum, int32_t *row_largest);

/// Asymmetric per-row quantization of activations (m × k, rows lda apart) to u8: the range [min(x, 0), max(x, 0)]
/// maps onto 0…255, zero[r] is the code of 0.0 (exactly representable), x ≈ scale[r] · (q − zero[r]).
void asr_quantize_rows_u8(int m, int k, const float *a, int lda, uint8_t *q, float *scale, int32_t *zero);

/// C = A · Wᵀ (+ C when accumulate, else + bias[j] when bias is not NULL) with A quantized per row to u8 and W per output
/// channel to s8 (int32 sums, then C[i, j] = sa[i] · sw[j] · (Σ qa·qw − za[i] · Σ qw)). The codes are `w` (n × k), or,
/// when `packed` is not NULL, the same codes packed by asr_pack_weights (format 2; `w` is then not read). Returns 0,
/// or a oneDNN status on failure.
int asr_gemm_int8(int m, int n, int k, const float *a, int lda, const int8_t *w, const void *packed, const float *w_scale,
                  const float *bias, const int32_t *w_row_sum, float *c, int ldc, int accumulate);

/// C = A · Wᵀ (+ C when accumulate, else + bias[j] when bias is not NULL), A rounded to bf16, W bf16, fp32 accumulation
/// and output. Returns 0, or a oneDNN status on failure.
int asr_gemm_bf16(int m, int n, int k, const float *a, int lda, const uint16_t *w, const float *bias, float *c, int ldc,
                  int accumulate);

/// Bytes of W (n × k; `format` as asr_pack_weights) packed once into the layout oneDNN's matmul reads on this CPU; 0 where
/// it does not run its brgemm (AVX-512) kernels here, and products should use the plain paths.
size_t asr_packed_weights_bytes(int format, int n, int k);
/// Packs W (n × k row-major; `format` 0: fp32, 1: bf16 bits, 2: int8 codes for asr_gemm_int8) into `packed`
/// (asr_packed_weights_bytes(format, n, k) bytes).
int asr_pack_weights(int format, int n, int k, const void *w, void *packed);
/// C = A · Wᵀ (+ C when accumulate, else + bias[j] when bias is not NULL) against weights packed by
/// asr_pack_weights; A fp32 (rounded to bf16 as it is read when `bf16`), fp32 accumulation and output. Rows of A may
/// overlap (lda < k). Single-threaded on the caller's thread. Returns 0 or a dnnl_status_t.
int asr_gemm_packed(int bf16, int m, int n, int k, const float *a, int lda, const void *packed, const float *bias, float *c,
                    int ldc, int accumulate);

/// 1 where oneDNN runs AVX-512 (the fp32 weight products then use asr_sgemm_onednn).
int asr_lowp_sgemm_preferred(void);

/// C = A · Wᵀ + beta · C in fp32 on oneDNN's sgemm (single-threaded on the caller's thread); W stored n × k.
int asr_sgemm_onednn(int m, int n, int k, const float *a, int lda, const float *w, float *c, int ldc, float beta);

/// One core's measured peak in operations per second (multiply and add counted apart) for `format` (0 fp32, 1 bf16,
/// 2 int8), from about `seconds` of 12 independent chains of the widest instruction this CPU has for it (named in
/// `isa`); 0 where the CPU has none (bf16 without AVX512_BF16, or not x86-64).
double asr_peak_ops_per_second(int format, double seconds, const char **isa);

#ifdef __cplusplus
}
#endif

#endif

