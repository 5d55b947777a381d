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
#define GEMV_BF16 0
#define GEMV_NORMED 1
#define GEMV_STORE 0
#define GEMV_ADD 1
#define GEMV_SWIGLU 2

template <int UNROLL, int ROWS, int INPUT, int OUTPUT, int WEIGHTS = GEMV_W_BF16>
__device__ __forceinline__ void gemv_rows(void* __restrict__ y, const void* __restrict__ w, const void* __restrict__ x,
                                          const float* __restrict__ bias, const float* __restrict__ norm_weight, float eps,
                                          int rows, int cols, int tokens, const float* __restrict__ scales = 0)
{
    typedef typename WeightVector<WEIGHTS>::type V;
    static_assert(OUTPUT != GEMV_SWIGLU || ROWS == 2, "a SwiGLU warp reads one gate row and one up row");
    int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    int first_row = OUTPUT == GEMV_SWIGLU ? warp : warp * ROWS;
    if (first_row >= rows) return;
    int vectors = cols >> 3;
    const V* wr[ROWS];
    const float* sr[ROWS]; // Q8: the row's scales, one per 32 values (4 vectors)
#pragma unroll
    for (int r = 0; r < ROWS; r++)
    {
        int row = OUTPUT == GEMV_SWIGLU ? first_row + r * rows : min(first_row + r, rows - 1);
        wr[r] = (const V*)w + (usize)row * vectors;
        sr[r] = WEIGHTS == GEMV_W_Q8 ? scales + (usize)row * (cols >> 5) : 0;
    }
    float acc[ROWS][GEMV_MAX_TOKENS];
    float squares[GEMV_MAX_TOKENS];
#pragma unroll
    for (int t = 0; t < GEMV_MAX_TOKENS; t++)
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
#pragma unroll
            for (int t = 0; t < GEMV_MAX_TOKENS; t++)
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
                        float wf[8];
                        unpack_weights<WEIGHTS>(wv[r][u], wf);
                        float s = 0.0f;
#pragma unroll
                        for (int e = 0; e < 8; e++) s += wf[e] * xf[e];
                        acc[r][t] += WEIGHTS == GEMV_W_Q8 ? s * __ldg(sr[r] + (c >> 2)) : s;
                    }
                }
            }
        }
    }

#pragma unroll
    for (int t = 0; t < GEMV_MAX_TOKENS; t++)
    {
        if (t < tokens)
        {
            float scale = INPUT == GEMV_NORMED ? rsqrtf(warp_sum(squares[t]) / (float)cols + eps) : 1.0f;
            float s[ROWS];
#pragma unroll
            for (int r = 0; r < ROWS; r++) s[r] = warp_sum(acc[r][t]) * scale;
            if (lane != 0) continue;
            if (OUTPUT == GEMV_SWIGLU)
            {
                float gate = s[0] + (bias ? bias[first_row] : 0.0f);
                float up = s[ROWS - 1] + (bias ? bias[rows + first_row] : 0.0f);
                ((bf16*)y)[(usize)t * rows + first_row] = float_to_bf16(gate / (1.0f + expf(-gate)) * up);
                continue;
            }
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

// The plain products: name, threads a block, loads in flight per row, rows a warp (see GemvVariant on the host).
#define GEMV_KERNEL(NAME, THREADS, UNROLL, ROWS)                                                                         \
    extern "C" __global__ void __launch_bounds__(THREADS)                                                              \
    NAME(float* __restrict__ y, const bf16* __restrict__ w, const bf16* __restrict__ x, const float* __restrict__ bias, \
         int rows, int cols, int tokens)                                                                              \
    {                                                                                                                 \
        gemv_rows<UNROLL, ROWS, GEMV_BF16, GEMV_STORE>(y, w, x, bias, 0, 0.0f, rows, cols, tokens);                   \
    }

GEMV_KERNEL(gemv_bf16, 256, 4, 1)
GEMV_KERNEL(gemv_bf16_u8, 256, 8, 1)
GEMV_KERNEL(gemv_bf16_r2, 256, 4, 2)
GEMV_KERNEL(gemv_bf16_r4, 256, 2, 4)
GEMV_KERNEL(gemv_bf16_b128, 128, 4, 1)

// The fused products of a decode layer (CudaRunnerOptions.FusedSmallBatch): y, w, x, bias, then the RMSNorm weights
// and epsilon where the input is normalised here (else 0), rows (outputs), cols, tokens.
#define GEMV_FUSED_KERNEL(NAME, ROWS, INPUT, OUTPUT)                                                                     \
    extern "C" __global__ void __launch_bounds__(256)                                                                  \
    NAME(void* __restrict__ y, const bf16* __restrict__ w, const void* __restrict__ x, const float* __restrict__ bias,  \
         const float* __restrict__ norm_weight, float eps, int rows, int cols, int tokens)                             \
    {                                                                                                                 \
        gemv_rows<4, ROWS, INPUT, OUTPUT>(y, w, x, bias, norm_weight, eps, rows, cols, tokens);                       \
    }

GEMV_FUSED_KERNEL(gemv_norm, 1, GEMV_NORMED, GEMV_STORE)
GEMV_FUSED_KERNEL(gemv_add, 1, GEMV_BF16, GEMV_ADD)
GEMV_FUSED_KERNEL(gemv_norm_swiglu, 2, GEMV_NORMED, GEMV_SWIGLU)

// Every product over f16 or Q8 weights, plain and fused: the fused signature, then the Q8 scales (0 for f16).
#define GEMV_COMPACT_KERNEL(NAME, UNROLL, ROWS, INPUT, OUTPUT, WEIGHTS)                                                  \
    extern "C" __global__ void __launch_bounds__(256)                                                                  \
    NAME(void* __restrict__ y, const void* __restrict__ w, const void* __restrict__ x, const float* __restrict__ bias,  \
         const float* __restrict__ norm_weight, float eps, int rows, int cols, int tokens, const float* __restrict__ scales) \
    {                                                                                                                 \
        gemv_rows<UNROLL, ROWS, INPUT, OUTPUT, WEIGHTS>(y, w, x, bias, norm_weight, eps, rows, cols, tokens, scales);  \
    }

#define GEMV_COMPACT_FORMAT(SUFFIX, WEIGHTS)                                                                             \
    GEMV_COMPACT_KERNEL(gemv_##SUFFIX, 4, 1, GEMV_BF16, GEMV_STORE, WEIGHTS)                                           \
    GEMV_COMPACT_KERNEL(gemv_##SUFFIX##_r2, 4, 2, GEMV_BF16, GEMV_STORE, WEIGHTS)                                      \
    GEMV_COMPACT_KERNEL(gemv_##SUFFIX##_r4, 2, 4, GEMV_BF16, GEMV_STORE, WEIGHTS)                                      \
    GEMV_COMPACT_KERNEL(gemv_norm_##SUFFIX, 4, 1, GEMV_NORMED, GEMV_STORE, WEIGHTS)                                    \
    GEMV_COMPACT_KERNEL(gemv_add_##SUFFIX, 4, 1, GEMV_BF16, GEMV_ADD, WEIGHTS)                                         \
    GEMV_COMPACT_KERNEL(gemv_norm_swiglu_##SUFFIX, 4, 2, GEMV_NORMED, GEMV_SWIGLU, WEIGHTS)

GEMV_COMPACT_FORMAT(f16, GEMV_W_F16)
GEMV_COMPACT_FORMAT(q8, GEMV_W_Q8)

// Rows of an f16 or Q8 matrix expanded to bf16, for cuBLAS at prefill: elements [first, first + count) of the
// row-major matrix, whose rows have cols values. F16 loses its three lowest mantissa bits here; the products at
// decode read the f16 values as they are.
extern "C" __global__ void expand_to_bf16(bf16* __restrict__ out, const void* __restrict__ w, const float* __restrict__ scales,
                                          unsigned long long first, unsigned long long count, int q8)
{
    after_previous_kernel();
    for (usize i = (usize)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (usize)gridDim.x * blockDim.x)
    {
        usize e = first + i;
        float v = q8 ? (float)((const signed char*)w)[e] * scales[e >> 5] : f16_to_float(((const unsigned short*)w)[e]);
        out[i] = float_to_bf16(v);
    }
}
