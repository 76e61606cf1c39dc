// Scalar approximations shared by the kernels; plain code the compiler vectorises inside their loops.
#ifndef ASR_APPROX_H
#define ASR_APPROX_H
#include <stdint.h>
#include <string.h>

// target_clones builds an AVX-512, an AVX2 and a baseline version of a function and the loader picks the best the
// CPU has, so the binary stays portable.
#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define ASR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ASR_CLONES
#endif

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// exp(x) = 2^n · e^r: n = round(x·log2 e), found by adding 1.5·2^23 (the low mantissa bits then hold n); r = x − n·ln2
// by Cody–Waite reduction with ln2 split into an exact part and a correction, so |r| <= ln2/2; e^r by its degree-6
// Taylor polynomial. The steps are macros over any float type, shared by exp_approx and the 16-lane EXP16
// (attention.c), which scalar code does not vectorise into.
#define EXP_LOWEST -87.33f
#define EXP_HIGHEST 88.72f
#define EXP_SHIFTER 12582912.0f
#define EXP_SHIFTER_BITS 0x4B400000
#define EXP_REDUCED(x, n) ((x) - (n) * 0.69314575f - (n) * 1.4286068e-6f)
#define EXP_POLYNOMIAL(r) \
    ((((((((r) * (1.0f / 720) + 1.0f / 120) * (r) + 1.0f / 24) * (r) + 1.0f / 6) * (r) + 0.5f) * (r) + 1.0f) * (r)) + 1.0f)

static inline float exp_approx(float x) {
    x = clampf(x, EXP_LOWEST, EXP_HIGHEST);
    float shifted = x * 1.44269504f + EXP_SHIFTER;
    float n = shifted - EXP_SHIFTER;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    int32_t exponent = (bits - EXP_SHIFTER_BITS + 127) << 23;
    float scale;
    memcpy(&scale, &exponent, sizeof scale);
    return EXP_POLYNOMIAL(EXP_REDUCED(x, n)) * scale;
}

#endif
