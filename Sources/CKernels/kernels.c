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

static inline float erf_approx(float x) {
    float a = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = 1.061405429f;
    poly = poly * t - 1.453152027f;
    poly = poly * t + 1.421413741f;
    poly = poly * t - 0.284496736f;
    poly = poly * t + 0.254829592f;
    poly = poly * t;
    float y = 1.0f - poly * exp_approx(-a * a);
    return x < 0 ? -y : y;
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
void asr_layer_norm_rows(float *x, size_t rows, size_t cols, const float *weight, const float *bias, float eps) {
    // Two passes (mean, then squared deviations) with 16 independent partial sums each, so the reductions vectorise;
    // 16 lanes keep each partial sum short (48 terms for 768 channels).
    enum { LANES = 16 };
    size_t whole = cols / LANES * LANES;
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
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
        for (size_t i = 0; i < cols; i++) row[i] = (row[i] - mean) * inverse_std * weight[i] + bias[i];
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
