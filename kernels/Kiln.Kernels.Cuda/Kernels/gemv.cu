// Linear layer for a few tokens (decode at small batch): y[t][r] = sum_k w[r][k] * x[t][k] (+ bias[r]).
// w is bf16 [rows x cols] row-major, x bf16 [tokens x cols], y float32 [tokens x rows]. At a handful of tokens the
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

template <int UNROLL, int ROWS>
__device__ __forceinline__ void gemv_rows(float* __restrict__ y, const bf16* __restrict__ w, const bf16* __restrict__ x,
                                          const float* __restrict__ bias, int rows, int cols, int tokens)
{
    int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    int first_row = warp * ROWS;
    if (first_row >= rows) return;
    int vectors = cols >> 3;
    const uint4* wr[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) wr[r] = (const uint4*)(w + (usize)min(first_row + r, rows - 1) * cols);
    float acc[ROWS][GEMV_MAX_TOKENS];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int t = 0; t < GEMV_MAX_TOKENS; t++) acc[r][t] = 0.0f;

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
#pragma unroll
            for (int t = 0; t < GEMV_MAX_TOKENS; t++)
            {
                if (t < tokens)
                {
                    float xf[8];
                    unpack8(((const uint4*)(x + (usize)t * cols))[c], xf);
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
    for (int r = 0; r < ROWS; r++)
    {
        int row = first_row + r;
#pragma unroll
        for (int t = 0; t < GEMV_MAX_TOKENS; t++)
        {
            if (t < tokens)
            {
                float s = warp_sum(acc[r][t]);
                if (lane == 0 && row < rows) y[(usize)t * rows + row] = s + (bias ? bias[row] : 0.0f);
            }
        }
    }
}

// The entry points: name, threads a block, loads in flight per row, rows a warp (see GemvVariant on the host).
#define GEMV_KERNEL(NAME, THREADS, UNROLL, ROWS)                                                                         \
    extern "C" __global__ void __launch_bounds__(THREADS)                                                              \
    NAME(float* __restrict__ y, const bf16* __restrict__ w, const bf16* __restrict__ x, const float* __restrict__ bias, \
         int rows, int cols, int tokens)                                                                              \
    {                                                                                                                 \
        gemv_rows<UNROLL, ROWS>(y, w, x, bias, rows, cols, tokens);                                                   \
    }

GEMV_KERNEL(gemv_bf16, 256, 4, 1)
GEMV_KERNEL(gemv_bf16_u8, 256, 8, 1)
GEMV_KERNEL(gemv_bf16_r2, 256, 4, 2)
GEMV_KERNEL(gemv_bf16_r4, 256, 2, 4)
GEMV_KERNEL(gemv_bf16_b128, 128, 4, 1)
