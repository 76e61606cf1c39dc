#ifndef ASR_KERNELS_H
#define ASR_KERNELS_H
#include <stddef.h>

/// In place: x[i] = e^x[i] (relative error < 3e-7 on [-87, 88]; clamped outside).
void asr_exp(float *x, size_t count);

/// In place: the exact (erf) GELU, 0.5·x·(1 + erf(x/√2)), with erf to 1.5e-7 (Abramowitz & Stegun 7.1.26).
void asr_gelu(float *x, size_t count);

/// In place: each of `rows` rows of `cols` floats becomes its softmax (max subtracted first, so it cannot overflow).
void asr_softmax_rows(float *x, size_t rows, size_t cols);

#endif
