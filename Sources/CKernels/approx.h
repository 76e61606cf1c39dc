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

static inline float exp_approx(float x) {
    x = clampf(x, -87.33f, 88.72f);
    // Round x·log2(e) to the nearest integer n by adding 1.5·2^23: the low mantissa bits then hold n.
    float shifted = x * 1.44269504f + 12582912.0f;
    float n = shifted - 12582912.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    int32_t integer = bits - 0x4B400000;
    // Cody–Waite reduction with ln2 split into an exact part and a correction; |r| <= ln2/2.
    float r = x - n * 0.69314575f - n * 1.4286068e-6f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t exponent = (integer + 127) << 23;
    float scale;
    memcpy(&scale, &exponent, sizeof scale);
    return p * scale;
}

#endif
