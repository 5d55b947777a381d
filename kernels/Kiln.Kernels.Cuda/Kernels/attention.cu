// Paged attention for decode and for chunked prefill over cached prefixes, in one kernel.
// One block per (token, query head), ATTN_WARPS warps. Token t sits at positions[t] of the sequence whose block
// table is row token_rows[t]; it attends causally to positions 0..positions[t], all of which are in the cache (this
// step's keys and values were written by rope_write_kv before). The keys are split into chunks of 32; warp w takes
// chunks w, w + ATTN_WARPS, ...: in a chunk lane j scores key j, the warp updates its online softmax, and each lane
// accumulates HEAD_DIM/32 output dimensions. The warps' partial results are merged at the end (flash-decoding within
// a block), so a single decode token still spreads its context over ATTN_WARPS warps.
#define ATTN_WARPS 8
#define DIMS_PER_LANE (HEAD_DIM / 32)

extern "C" __global__ void __launch_bounds__(ATTN_WARPS * 32)
paged_attention(bf16* __restrict__ out, const float* __restrict__ qkv, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                const int* __restrict__ block_tables, int table_stride, const int* __restrict__ token_rows, const int* __restrict__ positions,
                int q_heads, int kv_heads, int block_size, float scale)
{
    __shared__ float q_shared[HEAD_DIM];
    __shared__ float partial[ATTN_WARPS][HEAD_DIM];
    __shared__ float partial_max[ATTN_WARPS];
    __shared__ float partial_sum[ATTN_WARPS];

    int t = blockIdx.x;
    int qh = blockIdx.y;
    int kvh = qh / (q_heads / kv_heads);
    int warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31;
    int kv_dim = kv_heads * HEAD_DIM;

    const float* q = qkv + (usize)t * (q_heads + 2 * kv_heads) * HEAD_DIM + qh * HEAD_DIM;
    for (int d = threadIdx.x; d < HEAD_DIM; d += blockDim.x) q_shared[d] = q[d] * scale;
    __syncthreads();

    const int* table = block_tables + (usize)token_rows[t] * table_stride;
    int length = positions[t] + 1;
    float running_max = -INFINITY;
    float running_sum = 0.0f;
    float acc[DIMS_PER_LANE];
    for (int i = 0; i < DIMS_PER_LANE; i++) acc[i] = 0.0f;

    for (int base = warp * 32; base < length; base += ATTN_WARPS * 32)
    {
        int j = base + lane;
        float score = -INFINITY;
        if (j < length)
        {
            int slot = table[j / block_size] * block_size + j % block_size;
            const uint4* k = (const uint4*)(k_cache + (usize)slot * kv_dim + kvh * HEAD_DIM);
            float dot = 0.0f;
#pragma unroll
            for (int c = 0; c < HEAD_DIM / 8; c++)
            {
                float kf[8];
                unpack8(k[c], kf);
#pragma unroll
                for (int e = 0; e < 8; e++) dot += q_shared[c * 8 + e] * kf[e];
            }
            score = dot;
        }
        float new_max = fmaxf(running_max, warp_max(score));
        float p = j < length ? expf(score - new_max) : 0.0f;
        float correction = expf(running_max - new_max);
        running_sum = running_sum * correction + warp_sum(p);
        for (int i = 0; i < DIMS_PER_LANE; i++) acc[i] *= correction;
        int count = min(32, length - base);
        for (int jj = 0; jj < count; jj++)
        {
            float pj = __shfl_sync(0xffffffffu, p, jj);
            int key = base + jj;
            int slot = table[key / block_size] * block_size + key % block_size;
            const bf16* v = v_cache + (usize)slot * kv_dim + kvh * HEAD_DIM;
#pragma unroll
            for (int i = 0; i < DIMS_PER_LANE; i++) acc[i] += pj * bf16_to_float(v[lane + 32 * i]);
        }
        running_max = new_max;
    }

    for (int i = 0; i < DIMS_PER_LANE; i++) partial[warp][lane + 32 * i] = acc[i];
    if (lane == 0)
    {
        partial_max[warp] = running_max;
        partial_sum[warp] = running_sum;
    }
    __syncthreads();

    // Merge: warps that had no chunk carry max -inf and sum 0, and weigh nothing.
    float total_max = -INFINITY;
    for (int w = 0; w < ATTN_WARPS; w++) total_max = fmaxf(total_max, partial_max[w]);
    float total_sum = 0.0f;
    for (int w = 0; w < ATTN_WARPS; w++) total_sum += partial_sum[w] * expf(partial_max[w] - total_max);
    bf16* o = out + (usize)t * q_heads * HEAD_DIM + qh * HEAD_DIM;
    for (int d = threadIdx.x; d < HEAD_DIM; d += blockDim.x)
    {
        float value = 0.0f;
        for (int w = 0; w < ATTN_WARPS; w++) value += partial[w][d] * expf(partial_max[w] - total_max);
        o[d] = float_to_bf16(value / total_sum);
    }
}
