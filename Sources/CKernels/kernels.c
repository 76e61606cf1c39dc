// Element-wise kernels the forward pass runs tens of millions of times per audio minute. Plain loops that the
// compiler vectorises, built once per instruction set (ASR_CLONES, approx.h). (Swift's SIMD types compile to SSE2
// with spills here.)
#include "kernels.h"
#include <stdint.h>
#include <string.h>
#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>
#endif
#include "approx.h"

// erf(x) ≈ x·P(x²)/Q(x²) on [-4, 4] (beyond, erf is ±1 to within 2e-8), P and Q of degree 5 in x², fitted here for
// least maximum error (2e-8 in exact arithmetic; GELU in float within 1.1e-6 absolute / 3.5e-5 relative of erf's
// definition on [-20, 20]). Twelve multiply-adds and a division, no exp: the exp-based Abramowitz–Stegun form took
// 1.87 cycles per value on AVX-512 (Zen 4), this one 1.29, and GELU runs on every value of every feed-forward block.
static inline float erf_approx(float x) {
    x = clampf(x, -4.0f, 4.0f);
    float s = x * x;
    float p = 1.974629185e-06f;
    p = p * s + 2.880152315e-04f;
    p = p * s + 4.003345966e-03f;
    p = p * s + 5.346658826e-02f;
    p = p * s + 1.962446719e-01f;
    p = p * s + 1.128378987e+00f;
    float q = 3.747735900e-05f;
    q = q * s + 1.216248493e-03f;
    q = q * s + 1.544387452e-02f;
    q = q * s + 1.164743379e-01f;
    q = q * s + 5.072484612e-01f;
    q = q * s + 1.0f;
    return x * p / q;
}

ASR_CLONES
void asr_exp(float *x, size_t count) {
    for (size_t i = 0; i < count; i++) x[i] = exp_approx(x[i]);
}

ASR_CLONES
void asr_gelu(float *x, size_t count) {
    for (size_t i = 0; i < count; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + erf_approx(v * 0.70710678118654752f));
    }
}

ASR_CLONES
void asr_softmax_rows(float *x, size_t rows, size_t cols) {
    // Max and sum are kept in 16 independent lanes so the compiler can vectorise the reductions without
    // reassociating floating-point additions (which it may not do on its own).
    enum { LANES = 16 };
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        size_t whole = cols / LANES * LANES;
        float lane_max[LANES];
        for (int l = 0; l < LANES; l++) lane_max[l] = -__builtin_inff();
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) lane_max[l] = row[i + l] > lane_max[l] ? row[i + l] : lane_max[l];
        float max_value = -__builtin_inff();
        for (int l = 0; l < LANES; l++) max_value = lane_max[l] > max_value ? lane_max[l] : max_value;
        for (size_t i = whole; i < cols; i++) max_value = row[i] > max_value ? row[i] : max_value;

        float lane_sum[LANES] = {0};
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float e = exp_approx(row[i + l] - max_value);
                row[i + l] = e;
                lane_sum[l] += e;
            }
        float sum = 0;
        for (size_t i = whole; i < cols; i++) {
            float e = exp_approx(row[i] - max_value);
            row[i] = e;
            sum += e;
        }
        for (int l = 0; l < LANES; l++) sum += lane_sum[l];
        float inverse = 1.0f / sum;
        for (size_t i = 0; i < cols; i++) row[i] *= inverse;
    }
}

ASR_CLONES
void asr_layer_norm_rows(const float *x, float *y, size_t rows, size_t cols, const float *weight, const float *bias,
                         float eps) {
    // Two passes (mean, then squared deviations) with 16 independent partial sums each, so the reductions vectorise;
    // 16 lanes keep each partial sum short (48 terms for 768 channels). y may be x (in place).
    enum { LANES = 16 };
    size_t whole = cols / LANES * LANES;
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        float *out = y + r * cols;
        float lane[LANES] = {0};
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) lane[l] += row[i + l];
        float sum = 0;
        for (size_t i = whole; i < cols; i++) sum += row[i];
        for (int l = 0; l < LANES; l++) sum += lane[l];
        float mean = sum / (float)cols;

        // Second pass: squared deviations, plus the deviations themselves, whose sum is the rounding error of the
        // first mean (the corrected two-pass algorithm; matters when the mean is large next to the spread).
        float squares_lane[LANES] = {0}, deviation_lane[LANES] = {0};
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = row[i + l] - mean;
                squares_lane[l] += d * d;
                deviation_lane[l] += d;
            }
        float squares = 0, deviation = 0;
        for (size_t i = whole; i < cols; i++) {
            float d = row[i] - mean;
            squares += d * d;
            deviation += d;
        }
        for (int l = 0; l < LANES; l++) squares += squares_lane[l], deviation += deviation_lane[l];
        float correction = deviation / (float)cols;
        mean += correction;
        squares -= deviation * correction;
        float inverse_std = 1.0f / __builtin_sqrtf(squares / (float)cols + eps);
        for (size_t i = 0; i < cols; i++) out[i] = (row[i] - mean) * inverse_std * weight[i] + bias[i];
    }
}

ASR_CLONES
size_t asr_count_nonfinite(const float *x, size_t count) {
    // A float is NaN or infinite when its exponent bits are all ones; integer lanes let the loop vectorise.
    size_t nonfinite = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        nonfinite += (bits & 0x7F800000u) == 0x7F800000u;
    }
    return nonfinite;
}

// GroupNorm statistics of the first conv layer come from its input windows, not from its output (see
// ConvFeatureEncoder.folded in FeatureEncoder.swift): every output channel is a dot product with one window, so its mean and
// variance over time follow from the windows' mean and covariance (window × window, 10 × 10 for wav2vec2), and the
// layer runs once instead of twice. Two passes in double (mean, then centred products) as a two-pass variance is.
ASR_CLONES
void asr_window_moments_f64(const float *x, size_t rows, size_t row_step, size_t window, double *mean,
                            double *covariance, double *scratch) {
    for (size_t j = 0; j < window; j++) mean[j] = 0;
    for (size_t j = 0; j < window * window; j++) covariance[j] = 0;
    if (rows == 0) return;
    for (size_t r = 0; r < rows; r++) {
        const float *w = x + r * row_step;
        for (size_t j = 0; j < window; j++) mean[j] += (double)w[j];
    }
    for (size_t j = 0; j < window; j++) mean[j] /= (double)rows;
    for (size_t r = 0; r < rows; r++) {
        const float *w = x + r * row_step;
        for (size_t j = 0; j < window; j++) scratch[j] = (double)w[j] - mean[j];
        for (size_t j = 0; j < window; j++) {
            double dj = scratch[j];
            double *row = covariance + j * window;
            for (size_t k = 0; k < window; k++) row[k] += dj * scratch[k];
        }
    }
    for (size_t j = 0; j < window * window; j++) covariance[j] /= (double)rows;
}

void asr_keep_freed_memory(void) {
#if defined(__linux__) && defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
#endif
}

// The alignment Viterbi's inner loop (CTCViterbi.swift): branch-free selects the compiler vectorises, the same
// comparisons and the same one addition per state as the Swift reference, so the path and its ties do not change.
static inline void viterbi_states(const float *restrict previous, float *restrict current,
                                  const unsigned char *restrict skip_allowed, const int *restrict labels,
                                  const float *restrict row, signed char *restrict back, size_t first, size_t end,
                                  int with_back) {
    for (size_t s = first; s < end; s++) {
        float stay = previous[s], advance = previous[s - 1];
        float skip = skip_allowed[s] ? previous[s - 2] : -__builtin_inff();
        int take_skip = (skip > advance) & (skip > stay);
        int take_advance = (advance > stay) & (advance > skip);
        float best = take_skip ? skip : (take_advance ? advance : stay);
        if (with_back) back[s] = (signed char)(take_skip ? 2 : take_advance);
        current[s] = best + row[labels[s]];
    }
}

ASR_CLONES
void asr_viterbi_step(const float *previous, float *current, const unsigned char *skip_allowed, const int *labels,
                      const float *row, signed char *back, size_t first, size_t end) {
    if (back) viterbi_states(previous, current, skip_allowed, labels, row, back, first, end, 1);
    else viterbi_states(previous, current, skip_allowed, labels, row, back, first, end, 0);
}
