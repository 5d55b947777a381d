// Linear layer for a few tokens (decode at small batch): y[t][r] = sum_k w[r][k] * x[t][k] (+ bias[r]).
// w is bf16 [rows x cols] row-major, x bf16 [tokens x cols], y float32 [tokens x rows] (the fused forms below vary
// the input and the output). At a handful of tokens the
// step is bound by reading the weights once, so each warp streams ROWS rows with 16-byte loads, UNROLL loads per row
// in flight per lane, and multiplies every loaded weight against all tokens. cols must be a multiple of 8.
// The variants differ only in how many bytes each warp keeps in flight; the runner picks one per shape from what
// the GPU benchmark's --gemv-sweep measured.
#define GEMV_MAX_TOKENS 8

template <int UNROLL, int ROWS>
__device__ __forceinline__ void load_weights(uint4 (*wv)[UNROLL], const uint4* const* wr, int first, int vectors)
{
#pragma unroll
    for (int u = 0; u < UNROLL; u++)
    {
        int c = first + u * 32;
#pragma unroll
        for (int r = 0; r < ROWS; r++) wv[r][u] = c < vectors ? __ldg(wr[r] + c) : make_uint4(0u, 0u, 0u, 0u);
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

template <int UNROLL, int ROWS, int INPUT, int OUTPUT>
__device__ __forceinline__ void gemv_rows(void* __restrict__ y, const bf16* __restrict__ w, const void* __restrict__ x,
                                          const float* __restrict__ bias, const float* __restrict__ norm_weight, float eps,
                                          int rows, int cols, int tokens)
{
    static_assert(OUTPUT != GEMV_SWIGLU || ROWS == 2, "a SwiGLU warp reads one gate row and one up row");
    int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    int first_row = OUTPUT == GEMV_SWIGLU ? warp : warp * ROWS;
    if (first_row >= rows) return;
    int vectors = cols >> 3;
    const uint4* wr[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
    {
        int row = OUTPUT == GEMV_SWIGLU ? first_row + r * rows : min(first_row + r, rows - 1);
        wr[r] = (const uint4*)(w + (usize)row * cols);
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
    uint4 wv[ROWS][UNROLL];
    load_weights<UNROLL, ROWS>(wv, wr, lane, vectors);
    wait_for_previous_kernel();
    allow_next_kernel();
    for (int first = lane; first < vectors; first += 32 * UNROLL)
    {
        if (first != lane) load_weights<UNROLL, ROWS>(wv, wr, first, vectors);
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
                        unpack8(wv[r][u], wf);
                        float s = acc[r][t];
#pragma unroll
                        for (int e = 0; e < 8; e++) s += wf[e] * xf[e];
                        acc[r][t] = s;
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
