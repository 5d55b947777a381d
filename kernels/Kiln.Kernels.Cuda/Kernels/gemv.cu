// Linear layer for a few tokens (decode at small batch): y[t][r] = sum_k w[r][k] * x[t][k] (+ bias[r]).
// w is bf16 [rows x cols] row-major, x bf16 [tokens x cols], y float32 [tokens x rows] (the fused forms below vary
// the input and the output). At a handful of tokens the
// step is bound by reading the weights once, so each warp streams ROWS rows with 16-byte loads, UNROLL loads per row
// in flight per lane, and multiplies every loaded weight against all tokens. cols must be a multiple of 8.
// The variants differ only in how many bytes each warp keeps in flight; the runner picks one per shape from what
// the GPU benchmark's --gemv-sweep measured.
#define GEMV_MAX_TOKENS 8

// How the weights are stored: bf16; IEEE f16 as the file had them; or Q8 (ggml's Q8_0 repacked on upload: int8
// values row-major, and one float32 scale per 32 values of a row). A "vector" is 8 weights in every format: one
// 16-byte load for bf16 and f16, one 8-byte load for Q8.
#define GEMV_W_BF16 0
#define GEMV_W_F16 1
#define GEMV_W_Q8 2

// A module built for one model's weights leaves out the products of the formats none of its matrices is stored in
// (KernelModule): the f16 and Q8 products are about two thirds of what NVRTC compiles. Undefined: built.
#ifndef GEMV_F16_PRODUCTS
#define GEMV_F16_PRODUCTS 1
#endif
#ifndef GEMV_Q8_PRODUCTS
#define GEMV_Q8_PRODUCTS 1
#endif

template <int WEIGHTS> struct WeightVector { typedef uint4 type; };
template <> struct WeightVector<GEMV_W_Q8> { typedef uint2 type; };

__device__ __forceinline__ uint4 zero_vector(uint4) { return make_uint4(0u, 0u, 0u, 0u); }
__device__ __forceinline__ uint2 zero_vector(uint2) { return make_uint2(0u, 0u); }

// The eight weights of a vector, widened; Q8 values still want their block's scale.
template <int WEIGHTS> __device__ __forceinline__ void unpack_weights(uint4 v, float* out)
{
    if (WEIGHTS == GEMV_W_BF16)
    {
        unpack8(v, out);
        return;
    }
    unsigned int words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        out[2 * i] = f16_to_float((unsigned short)(words[i] & 0xffffu));
        out[2 * i + 1] = f16_to_float((unsigned short)(words[i] >> 16));
    }
}

template <int WEIGHTS> __device__ __forceinline__ void unpack_weights(uint2 v, float* out)
{
    unsigned int words[2] = {v.x, v.y};
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int b = 0; b < 4; b++) out[4 * i + b] = (float)(signed char)((words[i] >> (8 * b)) & 0xffu);
}

template <int UNROLL, int ROWS, class V>
__device__ __forceinline__ void load_weights(V (*wv)[UNROLL], const V* const* wr, int first, int vectors)
{
#pragma unroll
    for (int u = 0; u < UNROLL; u++)
    {
        int c = first + u * 32;
#pragma unroll
        for (int r = 0; r < ROWS; r++) wv[r][u] = c < vectors ? __ldg(wr[r] + c) : zero_vector(V());
    }
}

// What a product reads and writes. GEMV_NORMED input is the float32 residual stream with the RMSNorm weights: the
// product runs on x * g and is scaled by 1/rms(x) at the end, each warp summing the squares of the x it streams
// anyway, so the norm needs no kernel of its own. GEMV_ADD adds the product into y (the residual stream) instead of
// storing it. GEMV_SWIGLU takes the fused gate/up weight with each warp on gate row i and up row rows + i, and
// writes bf16 silu(gate) * up: the activation for the down product, with no float32 gate/up in between.
// GEMV_ROPE is the fused QKV product that does rope_write_kv's work (rope_kv.cu) in its epilogue: each warp takes
// the two rows that RoPE rotates together, stores the rotated queries and keys (values as they are) into y, and the
// keys and values as bf16 into the paged cache.
#define GEMV_BF16 0
#define GEMV_NORMED 1
#define GEMV_STORE 0
#define GEMV_ADD 1
#define GEMV_SWIGLU 2
#define GEMV_ROPE 3

// Where GEMV_ROPE's epilogue reads angles and writes the cache; the arguments of rope_write_kv.
struct RopeTarget
{
    bf16* k_cache;
    bf16* v_cache;
    const int* positions;
    const int* slots;
    const double* inv_freq;
    int q_heads;
    int kv_heads;
    int half_split;
};

// GEMV_ROPE's pairing: pair p of the fused QKV output is dimension i of head h (p = h * HEAD_DIM / 2 + i), rows
// (i, i + HEAD_DIM / 2) of that head in Hugging Face's layout, (2i, 2i + 1) in GGUF's.
__device__ __forceinline__ int rope_row(int pair, int second, int half_split)
{
    const int half = HEAD_DIM / 2;
    int head = pair / half;
    int i = pair - head * half;
    return head * HEAD_DIM + (half_split ? i + second * half : 2 * i + second);
}

// Adds the bias to pair p of token t, rotates it by the position's angle (float64, as rope_write_kv and the CPU
// backend compute it), stores it into y (the fused QKV output) and, for key and value heads, into the cache at the
// token's slot.
__device__ __forceinline__ void rope_store(float* y, const float* bias, const RopeTarget& rope, int pair, int t, int rows, float v0, float v1)
{
    const int half = HEAD_DIM / 2;
    int head = pair / half;
    int i = pair - head * half;
    int a = rope_row(pair, 0, rope.half_split);
    int b = rope_row(pair, 1, rope.half_split);
    if (bias)
    {
        v0 += bias[a];
        v1 += bias[b];
    }
    if (head < rope.q_heads + rope.kv_heads)
    {
        double s, c;
        sincos((double)rope.positions[t] * rope.inv_freq[i], &s, &c);
        float cs = (float)c, sn = (float)s;
        float x0 = v0;
        v0 = x0 * cs - v1 * sn;
        v1 = x0 * sn + v1 * cs;
    }
    y[(usize)t * rows + a] = v0;
    y[(usize)t * rows + b] = v1;
    int slot = rope.slots[t];
    if (head < rope.q_heads || slot < 0) return;
    bool value = head >= rope.q_heads + rope.kv_heads;
    int first = (rope.q_heads + (value ? rope.kv_heads : 0)) * HEAD_DIM; // where the cache's rows start in y's row
    bf16* cache = (value ? rope.v_cache : rope.k_cache) + (usize)slot * rope.kv_heads * HEAD_DIM;
    cache[a - first] = float_to_bf16(v0);
    cache[b - first] = float_to_bf16(v1);
}

template <int UNROLL, int ROWS, int INPUT, int OUTPUT, int WEIGHTS = GEMV_W_BF16, int TOKENS = GEMV_MAX_TOKENS>
__device__ __forceinline__ void gemv_rows(void* __restrict__ y, const void* __restrict__ w, const void* __restrict__ x,
                                          const float* __restrict__ bias, const float* __restrict__ norm_weight, float eps,
                                          int rows, int cols, int tokens, const float* __restrict__ scales = 0,
                                          RopeTarget rope = RopeTarget())
{
    typedef typename WeightVector<WEIGHTS>::type V;
    static_assert(OUTPUT != GEMV_SWIGLU || ROWS == 2, "a SwiGLU warp reads one gate row and one up row");
    static_assert(OUTPUT != GEMV_ROPE || ROWS == 2, "a RoPE warp reads the two rows rotated together");
    int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    // SwiGLU and RoPE warps are numbered by output pair, the others by their first row.
    int first_row = OUTPUT == GEMV_SWIGLU || OUTPUT == GEMV_ROPE ? warp : warp * ROWS;
    if (OUTPUT == GEMV_ROPE ? 2 * first_row >= rows : first_row >= rows) return;
    int vectors = cols >> 3;
    const V* wr[ROWS];
    const float* sr[ROWS]; // Q8: the row's scales, one per 32 values (4 vectors)
#pragma unroll
    for (int r = 0; r < ROWS; r++)
    {
        int row = OUTPUT == GEMV_SWIGLU ? first_row + r * rows
                  : OUTPUT == GEMV_ROPE   ? rope_row(first_row, r, rope.half_split)
                                          : min(first_row + r, rows - 1);
        wr[r] = (const V*)w + (usize)row * vectors;
        sr[r] = WEIGHTS == GEMV_W_Q8 ? scales + (usize)row * (cols >> 5) : 0;
    }
    float acc[ROWS][TOKENS];
    float squares[TOKENS];
#pragma unroll
    for (int t = 0; t < TOKENS; t++)
    {
        squares[t] = 0.0f;
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[r][t] = 0.0f;
    }

    // The first weights do not depend on the previous kernel: they are loaded before waiting for it.
    V wv[ROWS][UNROLL];
    load_weights<UNROLL, ROWS, V>(wv, wr, lane, vectors);
    wait_for_previous_kernel();
    allow_next_kernel();
    for (int first = lane; first < vectors; first += 32 * UNROLL)
    {
        if (first != lane) load_weights<UNROLL, ROWS, V>(wv, wr, first, vectors);
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
        {
            int c = first + u * 32;
            if (c >= vectors) break;
            float gf[8];
            if (INPUT == GEMV_NORMED) load8(norm_weight + (usize)c * 8, gf);
            // Widened once for every token. Widened inside the token loop, the f16 forms grew too large for the
            // compiler to unroll this loop, and wv went to local memory (check-ptx.sh).
            float wf[ROWS][8];
            float row_scale[ROWS];
#pragma unroll
            for (int r = 0; r < ROWS; r++)
            {
                unpack_weights<WEIGHTS>(wv[r][u], wf[r]);
                row_scale[r] = WEIGHTS == GEMV_W_Q8 ? __ldg(sr[r] + (c >> 2)) : 1.0f;
            }
#pragma unroll
            for (int t = 0; t < TOKENS; t++)
            {
                if (t < tokens)
                {
                    float xf[8];
                    if (INPUT == GEMV_NORMED)
                    {
                        load8((const float*)x + (usize)t * cols + (usize)c * 8, xf);
#pragma unroll
                        for (int e = 0; e < 8; e++)
                        {
                            squares[t] += xf[e] * xf[e];
                            xf[e] *= gf[e];
                        }
                    }
                    else
                    {
                        unpack8(((const uint4*)((const bf16*)x + (usize)t * cols))[c], xf);
                    }
#pragma unroll
                    for (int r = 0; r < ROWS; r++)
                    {
                        float s = 0.0f;
#pragma unroll
                        for (int e = 0; e < 8; e++) s += wf[r][e] * xf[e];
                        acc[r][t] += WEIGHTS == GEMV_W_Q8 ? s * row_scale[r] : s;
                    }
                }
            }
        }
    }

#pragma unroll
    for (int t = 0; t < TOKENS; t++)
    {
        if (t < tokens)
        {
            float scale = INPUT == GEMV_NORMED ? rsqrtf(warp_sum(squares[t]) / (float)cols + eps) : 1.0f;
            float s[ROWS];
#pragma unroll
            for (int r = 0; r < ROWS; r++) s[r] = warp_sum(acc[r][t]) * scale;
            if (lane != 0) continue;
            // Chosen at compile time: a plain if left the store loop unreachable in the fused forms (an NVRTC warning).
            if constexpr (OUTPUT == GEMV_SWIGLU)
            {
                float gate = s[0] + (bias ? bias[first_row] : 0.0f);
                float up = s[ROWS - 1] + (bias ? bias[rows + first_row] : 0.0f);
                ((bf16*)y)[(usize)t * rows + first_row] = float_to_bf16(gate / (1.0f + expf(-gate)) * up);
            }
            else if constexpr (OUTPUT == GEMV_ROPE)
            {
                rope_store((float*)y, bias, rope, first_row, t, rows, s[0], s[ROWS - 1]);
            }
            else
            {
#pragma unroll
                for (int r = 0; r < ROWS; r++)
                {
                    int row = first_row + r;
                    if (row >= rows) break;
                    float value = s[r] + (bias ? bias[row] : 0.0f);
                    float* out = (float*)y + (usize)t * rows + row;
                    *out = OUTPUT == GEMV_ADD ? *out + value : value;
                }
            }
        }
    }
}

// Every product below is built twice: NAME for up to GEMV_MAX_TOKENS tokens, and NAME_t1 for exactly one (decode
// at batch 1), whose accumulators are one token wide. The registers that frees hold more weight loads in flight (or
// more warps), which is what a matrix-vector product at one token is bound by. The host picks by the step's tokens
// (GemvVariant.ForTokens).

// The plain products: name, threads a block, loads in flight per row, rows a warp (see GemvVariant on the host).
#define GEMV_KERNEL_T(NAME, THREADS, UNROLL, ROWS, TOKENS)                                                               \
    extern "C" __global__ void __launch_bounds__(THREADS)                                                              \
    NAME(float* __restrict__ y, const bf16* __restrict__ w, const bf16* __restrict__ x, const float* __restrict__ bias, \
         int rows, int cols, int tokens)                                                                              \
    {                                                                                                                 \
        gemv_rows<UNROLL, ROWS, GEMV_BF16, GEMV_STORE, GEMV_W_BF16, TOKENS>(y, w, x, bias, 0, 0.0f, rows, cols, tokens); \
    }
#define GEMV_KERNEL(NAME, THREADS, UNROLL, ROWS)                                                                         \
    GEMV_KERNEL_T(NAME, THREADS, UNROLL, ROWS, GEMV_MAX_TOKENS)                                                        \
    GEMV_KERNEL_T(NAME##_t1, THREADS, UNROLL, ROWS, 1)

GEMV_KERNEL(gemv_bf16, 256, 4, 1)
GEMV_KERNEL(gemv_bf16_u8, 256, 8, 1)
GEMV_KERNEL(gemv_bf16_r2, 256, 4, 2)
GEMV_KERNEL(gemv_bf16_r4, 256, 2, 4)
GEMV_KERNEL(gemv_bf16_b128, 128, 4, 1)

// The fused products of a decode layer (CudaRunnerOptions.FusedSmallBatch): y, w, x, bias, then the RMSNorm weights
// and epsilon where the input is normalised here (else 0), rows (outputs), cols, tokens. Each is built with 4 loads
// in flight per row and, as NAME_u8, with 8: the runner times both at warm-up (GemvChoices) and keeps the faster.
#define GEMV_FUSED_KERNEL_T(NAME, UNROLL, ROWS, INPUT, OUTPUT, TOKENS)                                                   \
    extern "C" __global__ void __launch_bounds__(256)                                                                  \
    NAME(void* __restrict__ y, const bf16* __restrict__ w, const void* __restrict__ x, const float* __restrict__ bias,  \
         const float* __restrict__ norm_weight, float eps, int rows, int cols, int tokens)                             \
    {                                                                                                                 \
        gemv_rows<UNROLL, ROWS, INPUT, OUTPUT, GEMV_W_BF16, TOKENS>(y, w, x, bias, norm_weight, eps, rows, cols, tokens); \
    }
#define GEMV_FUSED_KERNEL(NAME, UNROLL, ROWS, INPUT, OUTPUT)                                                             \
    GEMV_FUSED_KERNEL_T(NAME, UNROLL, ROWS, INPUT, OUTPUT, GEMV_MAX_TOKENS)                                            \
    GEMV_FUSED_KERNEL_T(NAME##_t1, UNROLL, ROWS, INPUT, OUTPUT, 1)

GEMV_FUSED_KERNEL(gemv_add, 4, 1, GEMV_BF16, GEMV_ADD)
GEMV_FUSED_KERNEL(gemv_add_u8, 8, 1, GEMV_BF16, GEMV_ADD)
GEMV_FUSED_KERNEL(gemv_norm_swiglu, 4, 2, GEMV_NORMED, GEMV_SWIGLU)
GEMV_FUSED_KERNEL(gemv_norm_swiglu_u8, 8, 2, GEMV_NORMED, GEMV_SWIGLU)

// The fused QKV product with RoPE and the cache writes (GEMV_ROPE), in every weight format: the fused signature with
// rows = the whole QKV output, the Q8 scales (0 otherwise), then rope_write_kv's arguments. One warp a row pair.
#define GEMV_ROPE_KERNEL_T(NAME, UNROLL, WEIGHTS, TOKENS)                                                                \
    extern "C" __global__ void __launch_bounds__(256)                                                                  \
    NAME(float* __restrict__ qkv, const void* __restrict__ w, const float* __restrict__ x, const float* __restrict__ bias, \
         const float* __restrict__ norm_weight, float eps, int rows, int cols, int tokens, const float* __restrict__ scales, \
         bf16* __restrict__ k_cache, bf16* __restrict__ v_cache, const int* __restrict__ positions,                    \
         const int* __restrict__ slots, const double* __restrict__ inv_freq, int q_heads, int kv_heads, int half_split) \
    {                                                                                                                 \
        RopeTarget rope = {k_cache, v_cache, positions, slots, inv_freq, q_heads, kv_heads, half_split};              \
        gemv_rows<UNROLL, 2, GEMV_NORMED, GEMV_ROPE, WEIGHTS, TOKENS>(qkv, w, x, bias, norm_weight, eps, rows, cols, tokens, scales, rope); \
    }
#define GEMV_ROPE_KERNEL(NAME, UNROLL, WEIGHTS)                                                                          \
    GEMV_ROPE_KERNEL_T(NAME, UNROLL, WEIGHTS, GEMV_MAX_TOKENS)                                                         \
    GEMV_ROPE_KERNEL_T(NAME##_t1, UNROLL, WEIGHTS, 1)

GEMV_ROPE_KERNEL(gemv_norm_rope, 4, GEMV_W_BF16)
GEMV_ROPE_KERNEL(gemv_norm_rope_u8, 8, GEMV_W_BF16)
#if GEMV_F16_PRODUCTS
GEMV_ROPE_KERNEL(gemv_norm_rope_f16, 4, GEMV_W_F16)
GEMV_ROPE_KERNEL(gemv_norm_rope_u8_f16, 8, GEMV_W_F16)
#endif
#if GEMV_Q8_PRODUCTS
GEMV_ROPE_KERNEL(gemv_norm_rope_q8, 4, GEMV_W_Q8)
GEMV_ROPE_KERNEL(gemv_norm_rope_u8_q8, 8, GEMV_W_Q8)
#endif

// Every product over f16 or Q8 weights, plain and fused: the fused signature, then the Q8 scales (0 for f16).
#define GEMV_COMPACT_KERNEL_T(NAME, UNROLL, ROWS, INPUT, OUTPUT, WEIGHTS, TOKENS)                                        \
    extern "C" __global__ void __launch_bounds__(256)                                                                  \
    NAME(void* __restrict__ y, const void* __restrict__ w, const void* __restrict__ x, const float* __restrict__ bias,  \
         const float* __restrict__ norm_weight, float eps, int rows, int cols, int tokens, const float* __restrict__ scales) \
    {                                                                                                                 \
        gemv_rows<UNROLL, ROWS, INPUT, OUTPUT, WEIGHTS, TOKENS>(y, w, x, bias, norm_weight, eps, rows, cols, tokens, scales); \
    }
#define GEMV_COMPACT_KERNEL(NAME, UNROLL, ROWS, INPUT, OUTPUT, WEIGHTS)                                                  \
    GEMV_COMPACT_KERNEL_T(NAME, UNROLL, ROWS, INPUT, OUTPUT, WEIGHTS, GEMV_MAX_TOKENS)                                 \
    GEMV_COMPACT_KERNEL_T(NAME##_t1, UNROLL, ROWS, INPUT, OUTPUT, WEIGHTS, 1)

#define GEMV_COMPACT_FORMAT(SUFFIX, WEIGHTS)                                                                             \
    GEMV_COMPACT_KERNEL(gemv_##SUFFIX, 4, 1, GEMV_BF16, GEMV_STORE, WEIGHTS)                                           \
    GEMV_COMPACT_KERNEL(gemv_##SUFFIX##_r2, 4, 2, GEMV_BF16, GEMV_STORE, WEIGHTS)                                      \
    GEMV_COMPACT_KERNEL(gemv_##SUFFIX##_r4, 2, 4, GEMV_BF16, GEMV_STORE, WEIGHTS)                                      \
    GEMV_COMPACT_KERNEL(gemv_add_##SUFFIX, 4, 1, GEMV_BF16, GEMV_ADD, WEIGHTS)                                         \
    GEMV_COMPACT_KERNEL(gemv_add_u8_##SUFFIX, 8, 1, GEMV_BF16, GEMV_ADD, WEIGHTS)                                      \
    GEMV_COMPACT_KERNEL(gemv_norm_swiglu_##SUFFIX, 4, 2, GEMV_NORMED, GEMV_SWIGLU, WEIGHTS)                            \
    GEMV_COMPACT_KERNEL(gemv_norm_swiglu_u8_##SUFFIX, 8, 2, GEMV_NORMED, GEMV_SWIGLU, WEIGHTS)

#if GEMV_F16_PRODUCTS
GEMV_COMPACT_FORMAT(f16, GEMV_W_F16)
#endif
#if GEMV_Q8_PRODUCTS
GEMV_COMPACT_FORMAT(q8, GEMV_W_Q8)
#endif

// Rows of an f16 or Q8 matrix expanded to bf16, for cuBLAS at prefill: elements [first, first + count) of the
// row-major matrix, whose rows have cols values. F16 loses its three lowest mantissa bits here; the products at
// decode read the f16 values as they are.
extern "C" __global__ void expand_to_bf16(bf16* __restrict__ out, const void* __restrict__ w, const float* __restrict__ scales,
                                          unsigned long long first, unsigned long long count, int q8)
{
    after_previous_kernel();
    for (usize i = (usize)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (usize)gridDim.x * blockDim.x)
        out[i] = float_to_bf16(compact_value(w, scales, first + i, q8));
}
