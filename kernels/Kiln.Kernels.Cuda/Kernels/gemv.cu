// Linear layer for a few tokens (decode at small batch): y[t][r] = sum_k w[r][k] * x[t][k] (+ bias[r]).
// w is bf16 [rows x cols] row-major, x bf16 [tokens x cols], y float32 [tokens x rows]. At a handful of tokens the
// step is bound by reading the weights once, so each warp streams one row with 16-byte loads, GEMV_UNROLL loads in
// flight per lane, and multiplies every loaded weight against all tokens. cols must be a multiple of 8.
#define GEMV_MAX_TOKENS 8
#define GEMV_UNROLL 4

extern "C" __global__ void __launch_bounds__(256)
gemv_bf16(float* __restrict__ y, const bf16* __restrict__ w, const bf16* __restrict__ x, const float* __restrict__ bias,
          int rows, int cols, int tokens)
{
    int row = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const uint4* wr = (const uint4*)(w + (usize)row * cols);
    int vectors = cols >> 3;
    float acc[GEMV_MAX_TOKENS];
#pragma unroll
    for (int t = 0; t < GEMV_MAX_TOKENS; t++) acc[t] = 0.0f;

    for (int first = lane; first < vectors; first += 32 * GEMV_UNROLL)
    {
        uint4 wv[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
        {
            int c = first + u * 32;
            wv[u] = c < vectors ? __ldg(wr + c) : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
        {
            int c = first + u * 32;
            if (c >= vectors) break;
            float wf[8];
            unpack8(wv[u], wf);
#pragma unroll
            for (int t = 0; t < GEMV_MAX_TOKENS; t++)
            {
                if (t < tokens)
                {
                    float xf[8];
                    unpack8(((const uint4*)(x + (usize)t * cols))[c], xf);
                    float s = acc[t];
#pragma unroll
                    for (int e = 0; e < 8; e++) s += wf[e] * xf[e];
                    acc[t] = s;
                }
            }
        }
    }

    float b = bias ? bias[row] : 0.0f;
#pragma unroll
    for (int t = 0; t < GEMV_MAX_TOKENS; t++)
    {
        if (t < tokens)
        {
            float s = warp_sum(acc[t]);
            if (lane == 0) y[(usize)t * rows + row] = s + b;
        }
    }
}
