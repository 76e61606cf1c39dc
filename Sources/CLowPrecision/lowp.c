#include "lowp.h"

#include <dnnl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// libgomp (oneDNN's threading runtime in Debian's build). The thread count is a per-thread setting in OpenMP, so
// setting it to one on the calling thread keeps oneDNN from starting a team there without touching other threads.
extern void omp_set_num_threads(int);

// The element-wise loops around the products (conversions, quantization, scaling back) are built for AVX-512, AVX2
// and baseline x86-64, and the loader picks the best the CPU has (as CKernels does).
#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define LOWP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LOWP_CLONES
#endif

// MARK: oneDNN objects shared by every call

static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_runtime_error;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void create_engine(void) { engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0); }

// Per-thread state: a stream (streams are not for concurrent use) and a growing scratch buffer (bf16 copy of A,
// quantized A and its int32 products, oneDNN's scratchpad). Freed when the thread ends.
typedef struct {
    dnnl_stream_t stream;
    void *scratch;
    size_t capacity;
} thread_state;

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void free_state(void *p) {
    thread_state *s = p;
    if (s->stream) dnnl_stream_destroy(s->stream);
    free(s->scratch);
    free(s);
}

static void create_state_key(void) { pthread_key_create(&state_key, free_state); }

static thread_state *state(void) {
    pthread_once(&state_once, create_state_key);
    thread_state *s = pthread_getspecific(state_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        pthread_setspecific(state_key, s);
    }
    return s;
}

static void *scratch(thread_state *s, size_t bytes) {
    if (bytes > s->capacity) {
        free(s->scratch);
        size_t grown = bytes + bytes / 4;
        // 64-byte alignment for the vector kernels on both sides.
        s->scratch = aligned_alloc(64, (grown + 63) / 64 * 64);
        s->capacity = s->scratch ? grown : 0;
    }
    return s->scratch;
}

static size_t align64(size_t bytes) { return (bytes + 63) / 64 * 64; }

// MARK: Capabilities

const char *asr_lowp_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse4.1";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "baseline";
    }
}

int asr_lowp_int8_vnni(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    // The isa values are bit sets: each level contains the bits of the ones below it.
    return (isa & dnnl_cpu_isa_avx512_core_vnni) == dnnl_cpu_isa_avx512_core_vnni;
}

int asr_lowp_bf16_native(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

// MARK: Conversions

LOWP_CLONES
void asr_f32_to_bf16(size_t count, const float *in, uint16_t *out) {
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &in[i], 4);
        // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate. A NaN keeps a set mantissa bit.
        uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        out[i] = (uint16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? ((u >> 16) | 0x40u) : rounded);
    }
}

LOWP_CLONES
void asr_bf16_to_f32(size_t count, const uint16_t *in, float *out) {
    for (size_t i = 0; i < count; i++) {
        uint32_t u = (uint32_t)in[i] << 16;
        memcpy(&out[i], &u, 4);
    }
}

// Runs at every int8 load over every quantized weight (base: 85 M values), so it is built per instruction set. roundf
// (half away from zero, which the asr_int8 format and tools/precision/check_quantized.py specify) is a libm call
// the compiler cannot vectorise; the same rounding is written with truncf, which it can: v − trunc(v) is exact.
LOWP_CLONES
void asr_quantize_weights_s8(int n, int k, const float *w, int max_q, int8_t *q, float *scale, int32_t *row_sum) {
    for (int r = 0; r < n; r++) {
        const float *row = w + (size_t)r * k;
        float amax = 0;
        for (int j = 0; j < k; j++) {
            float a = fabsf(row[j]);
            amax = a > amax ? a : amax;
        }
        float s = amax > 0 ? amax / (float)max_q : 1;
        int32_t sum = 0;
        int8_t *out = q + (size_t)r * k;
        for (int j = 0; j < k; j++) {
            float v = row[j] / s;
            float t = truncf(v);
            float away = fabsf(v - t) >= 0.5f ? (v < 0 ? -1.0f : 1.0f) : 0.0f;
            v = t + away;
            v = v < (float)-max_q ? (float)-max_q : (v > (float)max_q ? (float)max_q : v);
            out[j] = (int8_t)(int)v;
            sum += (int)v;
        }
        scale[r] = s;
        row_sum[r] = sum;
    }
}

// An asr_int8 checkpoint's codes, at load (base: 85 M of them).
LOWP_CLONES
void asr_copy_weights_s8(int n, int k, const int8_t *codes, int8_t *q, int32_t *row_sum, int32_t *row_largest) {
    for (int r = 0; r < n; r++) {
        const int8_t *row = codes + (size_t)r * k;
        int8_t *out = q ? q + (size_t)r * k : NULL;
        int32_t sum = 0;
        int largest = 0;
        for (int j = 0; j < k; j++) {
            int v = row[j];
            if (out) out[j] = (int8_t)v;
            sum += v;
            int a = v < 0 ? -v : v;
            largest = a > largest ? a : largest;
        }
        row_sum[r] = sum;
        row_largest[r] = largest;
    }
}

// 16-float vectors (compiler vector extension): one AVX-512 register in the avx512f clone, pairs or quadruples of
// narrower registers elsewhere. fminf/fmaxf reductions do not vectorise on their own (NaN rules), so the row range
// is taken with explicit element-wise min/max.
typedef float v16 __attribute__((vector_size(64), aligned(4)));

LOWP_CLONES
void asr_quantize_rows_u8(int m, int k, const float *a, int lda, uint8_t *q, float *scale, int32_t *zero) {
    for (int r = 0; r < m; r++) {
        const float *row = a + (size_t)r * lda;
        // The range always holds 0, so that zero padding and exact zeros (ReLU, padding) stay exact.
        v16 low = {0}, high = {0};
        int j = 0;
        for (; j + 16 <= k; j += 16) {
            v16 x = *(const v16 *)(row + j);
            low = __builtin_elementwise_min(low, x);
            high = __builtin_elementwise_max(high, x);
        }
        float lo = 0, hi = 0;
        for (int lane = 0; lane < 16; lane++) {
            lo = low[lane] < lo ? low[lane] : lo;
            hi = high[lane] > hi ? high[lane] : hi;
        }
        for (; j < k; j++) {
            lo = row[j] < lo ? row[j] : lo;
            hi = row[j] > hi ? row[j] : hi;
        }
        float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
        float inverse = 1.0f / s;
        int z = (int)lrintf(-lo * inverse);
        z = z < 0 ? 0 : (z > 255 ? 255 : z);
        // x · (1/s) + z lies in [0, 255] up to rounding; + 0.5 and truncation round it (all values non-negative).
        float offset = (float)z + 0.5f;
        uint8_t *out = q + (size_t)r * k;
        for (j = 0; j < k; j++) {
            float v = row[j] * inverse + offset;
            v = v < 0 ? 0 : (v > 255.0f ? 255.0f : v);
            out[j] = (uint8_t)(int)v;
        }
        scale[r] = s;
        zero[r] = z;
    }
}

// MARK: fp32 products on oneDNN

int asr_lowp_sgemm_preferred(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

int asr_sgemm_onednn(int m, int n, int k, const float *a, int lda, const float *w, float *c, int ldc, float beta) {
    omp_set_num_threads(1);
    // Row-major C (m × n) = A (m × k) · Wᵀ + beta · C, W stored n × k.
    return dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, lda, w, k, beta, c, ldc);
}

// MARK: bf16 and packed products (oneDNN's matmul primitive)

// Matmul primitives by shape and layout, rows rounded up to a multiple of 16 so that chunks of varying length reuse
// a few primitives (creating one JIT-compiles kernels: ~0.5 ms). Entries are never removed, so a primitive is never
// destroyed while another thread runs it; past the table's size a call makes and destroys its own.
#define CACHE_SIZE 1024
#define ROW_BUCKET 16

// What a product reads: bf16 activations against plain bf16 weights (W n × k as stored), or against weights packed
// once into the matmul's own blocked layout for this CPU (bf16, fp32, or int8 codes against u8 activations with int32
// sums), which spares every call the packing of W that oneDNN's sgemm and gemm_u8s8s32 do each time.
enum { PLAIN_BF16 = 0, PACKED_BF16 = 1, PACKED_F32 = 2, PACKED_S8 = 3 };

typedef struct {
    int rows, n, k, lda, ldc;
    int kind, bias, accumulate;
} matmul_spec;

typedef struct {
    matmul_spec spec;
    dnnl_primitive_t primitive;
    size_t scratchpad_bytes;
} cached_matmul;

static cached_matmul cache[CACHE_SIZE];
static int cache_count;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static dnnl_data_type_t input_type(int kind) {
    return kind == PACKED_F32 ? dnnl_f32 : (kind == PACKED_S8 ? dnnl_u8 : dnnl_bf16);
}
static dnnl_data_type_t weight_type(int kind) { return kind == PACKED_S8 ? dnnl_s8 : input_type(kind); }
static dnnl_data_type_t output_type(int kind) { return kind == PACKED_S8 ? dnnl_s32 : dnnl_f32; }

// Rows of a product rounded up to the primitives' bucket.
static int bucket_rows(int m) { return (m + ROW_BUCKET - 1) / ROW_BUCKET * ROW_BUCKET; }

// Whether oneDNN chose its brgemm kernels (AVX-512 and up) for a primitive, by its implementation name.
static int is_brgemm(const char *impl) { return impl && strncmp(impl, "brg", 3) == 0; }

// W (n × k) row-major as stored, read as Wᵀ (k × n).
static dnnl_status_t plain_weights(int kind, int n, int k, dnnl_memory_desc_t *md) {
    dnnl_dims_t dims = {k, n}, strides = {1, k};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, weight_type(kind), strides);
}

// The blocked layout oneDNN's matmul picks for W (k × n, read as Wᵀ) on this CPU; it depends on n, k, the type and
// the instruction set, not on the row count (checked for 16 to 8224 rows), so one packing serves every call.
static dnnl_status_t packed_layout(int kind, int n, int k, dnnl_memory_desc_t *layout, const char **impl) {
    pthread_once(&engine_once, create_engine);
    if (engine_status != dnnl_success) return engine_status;
    dnnl_memory_desc_t src, weights, dst;
    dnnl_dims_t src_dims = {256, k}, weight_dims = {k, n}, dst_dims = {256, n};
    dnnl_status_t status;
    if ((status = dnnl_memory_desc_init_by_tag(&src, 2, src_dims, input_type(kind), dnnl_ab))) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&weights, 2, weight_dims, weight_type(kind), dnnl_format_tag_any))) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&dst, 2, dst_dims, output_type(kind), dnnl_ab))) return status;
    dnnl_matmul_desc_t desc;
    if ((status = dnnl_matmul_desc_init(&desc, &src, &weights, NULL, &dst))) return status;
    dnnl_primitive_desc_t pd;
    if ((status = dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL))) return status;
    *layout = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (impl) dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl);
    dnnl_primitive_desc_destroy(pd);
    return dnnl_success;
}

static dnnl_status_t weights_desc(int kind, int n, int k, dnnl_memory_desc_t *md) {
    return kind == PLAIN_BF16 ? plain_weights(kind, n, k, md) : packed_layout(kind, n, k, md, NULL);
}

static dnnl_status_t create_matmul(matmul_spec spec, dnnl_primitive_t *primitive, size_t *scratchpad_bytes) {
    dnnl_memory_desc_t src, weights, dst, bias;
    dnnl_dims_t src_dims = {spec.rows, spec.k}, src_strides = {spec.lda, 1};
    dnnl_dims_t dst_dims = {spec.rows, spec.n}, dst_strides = {spec.ldc, 1}, bias_dims = {1, spec.n};
    dnnl_status_t status;
    if ((status = dnnl_memory_desc_init_by_strides(&src, 2, src_dims, input_type(spec.kind), src_strides))) return status;
    if ((status = weights_desc(spec.kind, spec.n, spec.k, &weights))) return status;
    if ((status = dnnl_memory_desc_init_by_strides(&dst, 2, dst_dims, output_type(spec.kind), dst_strides))) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&bias, 2, bias_dims, dnnl_f32, dnnl_ab))) return status;
    dnnl_matmul_desc_t desc;
    if ((status = dnnl_matmul_desc_init(&desc, &src, &weights, spec.bias ? &bias : NULL, &dst))) return status;
    dnnl_primitive_attr_t attr;
    if ((status = dnnl_primitive_attr_create(&attr))) return status;
    // The caller's scratch, not a library-wide one: the same primitive runs on several threads at once.
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_post_ops_t post_ops = NULL;
    if (spec.accumulate) {  // C += product: the sum post-op adds C's previous contents
        if (!(status = dnnl_post_ops_create(&post_ops)) && !(status = dnnl_post_ops_append_sum(post_ops, 1.0f)))
            status = dnnl_primitive_attr_set_post_ops(attr, post_ops);
        if (post_ops) dnnl_post_ops_destroy(post_ops);
        if (status) {
            dnnl_primitive_attr_destroy(attr);
            return status;
        }
    }
    dnnl_primitive_desc_t pd;
    status = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (status) return status;
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (spec.kind != PLAIN_BF16 && !is_brgemm(impl)) {
        // Packed weights are only made where brgemm runs (asr_packed_weights_bytes); anything else here would be
        // oneDNN's reference loop. Refused rather than run ~1000 times slower.
        dnnl_primitive_desc_destroy(pd);
        return dnnl_unimplemented;
    }
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    *scratchpad_bytes = pad ? dnnl_memory_desc_get_size(pad) : 0;
    status = dnnl_primitive_create(primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return status;
}

static dnnl_status_t matmul(matmul_spec spec, dnnl_primitive_t *primitive, size_t *scratchpad_bytes, int *owned) {
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < cache_count; i++) {
        if (!memcmp(&cache[i].spec, &spec, sizeof spec)) {
            *primitive = cache[i].primitive;
            *scratchpad_bytes = cache[i].scratchpad_bytes;
            *owned = 0;
            pthread_mutex_unlock(&cache_lock);
            return dnnl_success;
        }
    }
    // Created under the lock: two threads asking for the same new shape compile it once.
    dnnl_status_t status = create_matmul(spec, primitive, scratchpad_bytes);
    if (status == dnnl_success && cache_count < CACHE_SIZE) {
        cache[cache_count++] = (cached_matmul){spec, *primitive, *scratchpad_bytes};
        *owned = 0;
    } else {
        *owned = 1;
    }
    pthread_mutex_unlock(&cache_lock);
    return status;
}

// Runs `primitive` (made from its spec, whose layouts it carries) on A, W, the bias when not NULL and C (`out`: fp32,
// or int32 for int8) with the caller's scratchpad.
static dnnl_status_t run_matmul(const void *a, const void *w, const float *bias, void *out, void *pad,
                                dnnl_primitive_t primitive, thread_state *s) {
    dnnl_status_t status;
    if (!s->stream && (status = dnnl_stream_create(&s->stream, engine, dnnl_stream_default_flags))) return status;
    const_dnnl_primitive_desc_t pd;
    if ((status = dnnl_primitive_get_primitive_desc(primitive, &pd))) return status;
    const int arg_kinds[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS, DNNL_ARG_SCRATCHPAD};
    const dnnl_query_t queries[5] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md, dnnl_query_weights_md,
                                     dnnl_query_scratchpad_md};
    void *handles[5] = {(void *)a, (void *)w, out, (void *)bias, pad};
    dnnl_memory_t memories[5] = {0};
    dnnl_exec_arg_t args[5];
    int count = 0;
    for (int i = 0; i < 5; i++) {
        if (!handles[i]) continue;
        // The bias is the primitive's second weights-like input (index 1 of the weights query).
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, queries[i], i == 3 ? 1 : 0);
        if (!md) { status = dnnl_invalid_arguments; goto done; }
        if ((status = dnnl_memory_create(&memories[i], md, engine, handles[i]))) goto done;
        args[count++] = (dnnl_exec_arg_t){arg_kinds[i], memories[i]};
    }
    if ((status = dnnl_primitive_execute(primitive, s->stream, count, args))) goto done;
    status = dnnl_stream_wait(s->stream);
done:
    for (int i = 0; i < 5; i++) if (memories[i]) dnnl_memory_destroy(memories[i]);
    return status;
}

// The product went to scratch (its row count is the bucket's, not m); copy or add the m real rows into C, with the
// bias (same float as filling C with it first and accumulating).
LOWP_CLONES
static void copy_rows(int m, int n, const float *product, const float *bias, float *c, int ldc, int accumulate) {
    for (int i = 0; i < m; i++) {
        const float *p = product + (size_t)i * n;
        float *dst = c + (size_t)i * ldc;
        if (accumulate) {
            for (int j = 0; j < n; j++) dst[j] += p[j];
        } else if (bias) {
            for (int j = 0; j < n; j++) dst[j] = p[j] + bias[j];
        } else {
            memcpy(dst, p, (size_t)n * 4);
        }
    }
}

// C (m × n) = A · Wᵀ on a matmul primitive of `kind`. A whole bucket of rows (m a multiple of 16) is written straight
// into C when C's rows are dense, the bias or C's previous contents added by the primitive, and read in place when
// A's rows are dense fp32; otherwise the rows are copied (bf16: rounded) into scratch padded with zero rows, the product
// goes to scratch and copy_rows moves the m real rows.
static int gemm_matmul(int kind, int m, int n, int k, const float *a, int lda, const void *w, const float *bias, float *c,
                       int ldc, int accumulate) {
    if (m <= 0 || n <= 0) return 0;
    pthread_once(&engine_once, create_engine);
    if (engine_status != dnnl_success) return engine_status;
    thread_state *s = state();
    if (!s) return dnnl_out_of_memory;
    omp_set_num_threads(1);
    int rows = bucket_rows(m);
    // Only dense rows: with a row stride of its own (a slice of a wider matrix) oneDNN 2.6 leaves its brgemm kernels
    // for a reference loop hundreds of times slower.
    int in_place = kind == PACKED_F32 && rows == m && lda == k;
    // Plain bf16 runs wherever bf16 does, emulated too, and there oneDNN adds a bias inside its sums (one ulp away
    // from adding it after them): its output always goes through copy_rows. On packed weights (brgemm) the bias and
    // the sum post-op come after the sums, bit for bit what copy_rows does (ReducedPrecisionCheck.checkEpilogue).
    int direct = kind != PLAIN_BF16 && rows == m && ldc == n;
    matmul_spec spec = {rows, n, k, in_place ? lda : k, direct ? ldc : n, kind, direct && bias != NULL,
                        direct && accumulate};
    dnnl_primitive_t primitive;
    size_t pad_bytes;
    int owned;
    dnnl_status_t status = matmul(spec, &primitive, &pad_bytes, &owned);
    if (status != dnnl_success) return status;

    size_t element = kind == PACKED_F32 ? 4 : 2;
    size_t a_bytes = in_place ? 0 : align64((size_t)rows * k * element);
    size_t out_bytes = direct ? 0 : align64((size_t)rows * n * 4);
    char *base = scratch(s, a_bytes + out_bytes + align64(pad_bytes));
    if (!base) {
        if (owned) dnnl_primitive_destroy(primitive);
        return dnnl_out_of_memory;
    }
    const void *input = a;
    if (!in_place) {
        if (kind == PACKED_F32) {
            float *a32 = (float *)base;
            for (int i = 0; i < m; i++) memcpy(a32 + (size_t)i * k, a + (size_t)i * lda, (size_t)k * 4);
        } else {
            uint16_t *a16 = (uint16_t *)base;
            for (int i = 0; i < m; i++) asr_f32_to_bf16((size_t)k, a + (size_t)i * lda, a16 + (size_t)i * k);
        }
        // Padding rows: zeros, so their (discarded) products are finite.
        memset(base + (size_t)m * k * element, 0, (size_t)(rows - m) * k * element);
        input = base;
    }
    float *out = direct ? c : (float *)(base + a_bytes);
    status = run_matmul(input, w, spec.bias ? bias : NULL, out, pad_bytes ? base + a_bytes + out_bytes : NULL,
                        primitive, s);
    if (owned) dnnl_primitive_destroy(primitive);
    if (status != dnnl_success) return status;
    if (!direct) copy_rows(m, n, out, bias, c, ldc, accumulate);
    return 0;
}

int asr_gemm_bf16(int m, int n, int k, const float *a, int lda, const uint16_t *w, const float *bias, float *c, int ldc,
                  int accumulate) {
    return gemm_matmul(PLAIN_BF16, m, n, k, a, lda, w, bias, c, ldc, accumulate);
}

static int packed_kind(int format) { return format == 2 ? PACKED_S8 : (format == 1 ? PACKED_BF16 : PACKED_F32); }

size_t asr_packed_weights_bytes(int format, int n, int k) {
    dnnl_memory_desc_t layout;
    const char *impl = NULL;
    if (packed_layout(packed_kind(format), n, k, &layout, &impl) != dnnl_success) return 0;
    // Only where the matmul runs on oneDNN's brgemm kernels (AVX-512); elsewhere the plain products stay.
    if (!is_brgemm(impl)) return 0;
    return dnnl_memory_desc_get_size(&layout);
}

int asr_pack_weights(int format, int n, int k, const void *w, void *packed) {
    pthread_once(&engine_once, create_engine);
    if (engine_status != dnnl_success) return engine_status;
    thread_state *s = state();
    if (!s) return dnnl_out_of_memory;
    int kind = packed_kind(format);
    dnnl_memory_desc_t plain, layout;
    dnnl_status_t status;
    if ((status = plain_weights(kind, n, k, &plain))) return status;
    if ((status = packed_layout(kind, n, k, &layout, NULL))) return status;
    if (!s->stream && (status = dnnl_stream_create(&s->stream, engine, dnnl_stream_default_flags))) return status;
    dnnl_primitive_desc_t pd;
    if ((status = dnnl_reorder_primitive_desc_create(&pd, &plain, engine, &layout, engine, NULL))) return status;
    dnnl_primitive_t reorder;
    status = dnnl_primitive_create(&reorder, pd);
    dnnl_primitive_desc_destroy(pd);
    if (status) return status;
    dnnl_memory_t from = NULL, to = NULL;
    if (!(status = dnnl_memory_create(&from, &plain, engine, (void *)w)) &&
        !(status = dnnl_memory_create(&to, &layout, engine, packed))) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        omp_set_num_threads(1);
        if (!(status = dnnl_primitive_execute(reorder, s->stream, 2, args))) status = dnnl_stream_wait(s->stream);
    }
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    dnnl_primitive_destroy(reorder);
    return status;
}

int asr_gemm_packed(int bf16, int m, int n, int k, const float *a, int lda, const void *packed, const float *bias, float *c,
                    int ldc, int accumulate) {
    return gemm_matmul(bf16 ? PACKED_BF16 : PACKED_F32, m, n, k, a, lda, packed, bias, c, ldc, accumulate);
}

// MARK: int8 products

// x ≈ sa·(qa − za) and w ≈ sw·qw, so x·w ≈ sa·sw·(Σ qa·qw − za·Σ qw): the zero point is folded in here, and the
// bias added in the same pass (bias + v and v + bias are the same float, so this equals filling C with the bias
// and accumulating, bit for bit).
LOWP_CLONES
static void scale_back(int m, int n, const int32_t *products, const float *a_scale, const int32_t *a_zero,
                       const float *w_scale, const int32_t *w_row_sum, const float *bias, float *c, int ldc,
                       int accumulate) {
    for (int i = 0; i < m; i++) {
        const int32_t *p = products + (size_t)i * n;
        float *out = c + (size_t)i * ldc;
        float sa = a_scale[i];
        int32_t za = a_zero[i];
        if (accumulate) {
            for (int j = 0; j < n; j++) out[j] += sa * w_scale[j] * (float)(p[j] - za * w_row_sum[j]);
        } else if (bias) {
            for (int j = 0; j < n; j++) out[j] = sa * w_scale[j] * (float)(p[j] - za * w_row_sum[j]) + bias[j];
        } else {
            for (int j = 0; j < n; j++) out[j] = sa * w_scale[j] * (float)(p[j] - za * w_row_sum[j]);
        }
    }
}

int asr_gemm_int8(int m, int n, int k, const float *a, int lda, const int8_t *w, const void *packed, const float *w_scale,
                  const float *bias, const int32_t *w_row_sum, float *c, int ldc, int accumulate) {
    if (m <= 0 || n <= 0) return 0;
    thread_state *s = state();
    if (!s) return dnnl_out_of_memory;
    // Packed weights: the matmul primitive on a bucket of rows (zero rows padding qa), as for bf16.
    int rows = packed ? bucket_rows(m) : m;
    dnnl_primitive_t primitive = NULL;
    size_t pad_bytes = 0;
    int owned = 0;
    matmul_spec spec = {rows, n, k, k, n, PACKED_S8, 0, 0};
    dnnl_status_t status;
    if (packed) {
        pthread_once(&engine_once, create_engine);
        if (engine_status != dnnl_success) return engine_status;
        if ((status = matmul(spec, &primitive, &pad_bytes, &owned)) != dnnl_success) return status;
    }
    size_t qa_bytes = align64((size_t)rows * k), products_bytes = align64((size_t)rows * n * 4);
    size_t row_bytes = align64((size_t)m * 4);
    char *base = scratch(s, qa_bytes + products_bytes + 2 * row_bytes + align64(pad_bytes));
    if (!base) {
        if (owned) dnnl_primitive_destroy(primitive);
        return dnnl_out_of_memory;
    }
    uint8_t *qa = (uint8_t *)base;
    int32_t *products = (int32_t *)(base + qa_bytes);
    float *a_scale = (float *)(base + qa_bytes + products_bytes);
    int32_t *a_zero = (int32_t *)(base + qa_bytes + products_bytes + row_bytes);

    asr_quantize_rows_u8(m, k, a, lda, qa, a_scale, a_zero);
    omp_set_num_threads(1);
    if (packed) {
        memset(qa + (size_t)m * k, 0, (size_t)(rows - m) * k);
        void *pad = pad_bytes ? base + qa_bytes + products_bytes + 2 * row_bytes : NULL;
        status = run_matmul(qa, packed, NULL, products, pad, primitive, s);
        if (owned) dnnl_primitive_destroy(primitive);
    } else {
        const int32_t no_offset = 0;
        // Row-major: products (m × n) = qa (m × k) · qwᵀ, qw stored n × k.
        status = dnnl_gemm_u8s8s32('N', 'T', 'F', m, n, k, 1.0f, qa, k, 0, w, k, 0, 0.0f, products, n, &no_offset);
    }
    if (status != dnnl_success) return status;
    scale_back(m, n, products, a_scale, a_zero, w_scale, w_row_sum, bias, c, ldc, accumulate);
    return 0;
}

int asr_lowp_bf16_available(void) {
    pthread_once(&engine_once, create_engine);
    if (engine_status != dnnl_success) return 0;
    dnnl_primitive_t primitive;
    size_t pad;
    int owned;
    matmul_spec spec = {ROW_BUCKET, 16, 32, 32, 16, PLAIN_BF16, 0, 0};
    if (matmul(spec, &primitive, &pad, &owned) != dnnl_success) return 0;
    if (owned) dnnl_primitive_destroy(primitive);
    return 1;
}

// MARK: Peaks

// The most multiply-adds one core can issue with the instructions our products run on, measured: 12 independent accumulator chains of the widest instruction
// this CPU has for the format (FMA for fp32, VDPBF16PS for bf16, VPDPBUSD, or VPMADDUBSW + VPMADDWD + VPADDD without
// VNNI, for int8), as ../shared/perf-notes.md measured them. `asr bench` divides each stage's operations by these.
#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#include <time.h>

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Each macro body runs `rounds` iterations of 12 independent instructions; the result is folded into a value the
// caller keeps, so that nothing is optimised away.
#define PEAK_LOOP(type, init, step, fold)                                                                  \
    type acc[12];                                                                                      \
    for (int i = 0; i < 12; i++) acc[i] = init;                                                        \
    for (long r = 0; r < rounds; r++) {                                                                \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < 12; i++) acc[i] = step(acc[i]);         \
    }                                                                                                  \
    for (int i = 1; i < 12; i++) acc[0] = fold(acc[0], acc[i]);                                        \
    float first;                                                                                       \
    memcpy(&first, &acc[0], sizeof first);                                                             \
    return first;

__attribute__((target("avx512f"))) static float fp32_avx512(long rounds, float x) {
    __m512 a = _mm512_set1_ps(x), b = _mm512_set1_ps(0.999f);
#define FMA512(v) _mm512_fmadd_ps(v, b, a)
    PEAK_LOOP(__m512, _mm512_set1_ps(x), FMA512, _mm512_add_ps)
}
__attribute__((target("avx2,fma"))) static float fp32_avx2(long rounds, float x) {
    __m256 a = _mm256_set1_ps(x), b = _mm256_set1_ps(0.999f);
#define FMA256(v) _mm256_fmadd_ps(v, b, a)
    PEAK_LOOP(__m256, _mm256_set1_ps(x), FMA256, _mm256_add_ps)
}
__attribute__((target("avx512f,avx512bf16"))) static float bf16_avx512(long rounds, float x) {
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f7f);
#define DPBF16(v) _mm512_dpbf16_ps(v, a, b)
    PEAK_LOOP(__m512, _mm512_set1_ps(x), DPBF16, _mm512_add_ps)
}
__attribute__((target("avx512f,avx512vnni"))) static float int8_vnni(long rounds, int x) {
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
#define DPBUSD(v) _mm512_dpbusd_epi32(v, a, b)
    PEAK_LOOP(__m512i, _mm512_set1_epi32(x), DPBUSD, _mm512_add_epi32)
}
// Without VNNI: VPMADDUBSW + VPMADDWD + VPADDD per 64 (AVX-512) or 32 (AVX2) byte products. Each chain's u8 operand
// passes through an empty asm statement every step, so the compiler can neither hoist the products out of the loop
// (their operands would be constants) nor merge the chains' identical products; the accumulators stay the only
// dependency, so the loop is bound by throughput, not by the three instructions' latency.
__attribute__((target("avx512f,avx512bw"))) static float int8_avx512bw(long rounds, int x) {
    __m512i b = _mm512_set1_epi8(-2), ones = _mm512_set1_epi16(1), operand[12], acc[12];
    for (int i = 0; i < 12; i++) operand[i] = _mm512_set1_epi8((char)(3 + i)), acc[i] = _mm512_set1_epi32(x);
    for (long r = 0; r < rounds; r++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) {
            __asm__ volatile("" : "+v"(operand[i]));
            acc[i] = _mm512_add_epi32(acc[i], _mm512_madd_epi16(_mm512_maddubs_epi16(operand[i], b), ones));
        }
    }
    for (int i = 1; i < 12; i++) acc[0] = _mm512_add_epi32(acc[0], acc[i]);
    float first;
    memcpy(&first, &acc[0], sizeof first);
    return first;
}
__attribute__((target("avx2"))) static float int8_avx2(long rounds, int x) {
    // 6 chains: AVX2 has 16 registers for the operands and accumulators.
    __m256i b = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1), operand[6], acc[6];
    for (int i = 0; i < 6; i++) operand[i] = _mm256_set1_epi8((char)(3 + i)), acc[i] = _mm256_set1_epi32(x);
    for (long r = 0; r < rounds; r++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 6; i++) {
            __asm__ volatile("" : "+x"(operand[i]));
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(operand[i], b), ones));
        }
    }
    for (int i = 1; i < 6; i++) acc[0] = _mm256_add_epi32(acc[0], acc[i]);
    float first;
    memcpy(&first, &acc[0], sizeof first);
    return first;
}

static volatile float peak_sink_f;
static volatile int peak_sink_i;

// Operations (multiply and add counted apart) one call of `rounds` does, and the call.
static int peak_kernel(int format, long rounds, double *ops, const char **isa) {
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f");
    if (format == 0) {
        if (avx512) {
            *ops = 12.0 * 16 * 2 * rounds, *isa = "AVX-512 FMA";
            if (rounds) peak_sink_f = fp32_avx512(rounds, 1.0f);
        } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            *ops = 12.0 * 8 * 2 * rounds, *isa = "AVX2 FMA";
            if (rounds) peak_sink_f = fp32_avx2(rounds, 1.0f);
        } else return 0;
    } else if (format == 1) {
        // The instructions the products run on: oneDNN's choice (ONEDNN_MAX_CPU_ISA can hold it lower).
        if (!asr_lowp_bf16_native()) return 0;
        *ops = 12.0 * 32 * 2 * rounds, *isa = "AVX512_BF16 VDPBF16PS";
        if (rounds) peak_sink_f = bf16_avx512(rounds, 1.0f);
    } else {
        dnnl_cpu_isa_t onednn = dnnl_get_effective_cpu_isa();
        if (asr_lowp_int8_vnni()) {
            *ops = 12.0 * 64 * 2 * rounds, *isa = "AVX512_VNNI VPDPBUSD";
            if (rounds) peak_sink_i = (int)int8_vnni(rounds, 1);
        } else if ((onednn & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core) {
            *ops = 12.0 * 64 * 2 * rounds, *isa = "AVX-512BW VPMADDUBSW";
            if (rounds) peak_sink_i = (int)int8_avx512bw(rounds, 1);
        } else if ((onednn & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2) {
            *ops = 6.0 * 32 * 2 * rounds, *isa = "AVX2 VPMADDUBSW";
            if (rounds) peak_sink_i = (int)int8_avx2(rounds, 1);
        } else return 0;
    }
    return 1;
}

double asr_peak_ops_per_second(int format, double seconds, const char **isa) {
    double ops;
    *isa = "none";
    if (!peak_kernel(format, 0, &ops, isa)) return 0;
    // Grow the round count until one call takes a measurable time, then keep the best of several calls.
    long rounds = 1 << 12;
    double best = 0, start = seconds_now();
    while (seconds_now() - start < seconds) {
        double t0 = seconds_now();
        peak_kernel(format, rounds, &ops, isa);
        double t = seconds_now() - t0;
        if (t < 1e-3) { rounds *= 4; continue; }
        double rate = ops / t;
        best = rate > best ? rate : best;
    }
    return best;
}
#else
double asr_peak_ops_per_second(int format, double seconds, const char **isa) {
    (void)format, (void)seconds;
    *isa = "none";
    return 0;
}
#endif
