// Paged attention for decode and for chunked prefill over cached prefixes, in one kernel.
// One block per (token, KV head) serving that head's GQA_GROUP query heads together, so each key and value is read
// once for all of them (GQA_GROUP is 1 when a model's group is too large to keep in shared memory: then one block
// per (token, query head)). Token t sits at positions[t] of the sequence whose block table is row token_rows[t]; it
// attends causally to positions 0..positions[t], all of which are in the cache (this step's keys and values were
// written by rope_write_kv before).
// Keys go in chunks of 32; warp w takes chunks w, w + ATTN_WARPS, ...: in a chunk lane j finds key j's slot and its
// score for every head, the warp updates each head's online softmax, then every lane accumulates its DIMS_PER_LANE
// consecutive output dimensions over the chunk's keys, taking each key's weights and slot from the lane that
// computed them (shuffles), so the chunk's value loads are independent and in flight together. The warps' partial
// results are merged at the end (flash-decoding within a block), so a lone decode token still spreads its context
// over ATTN_WARPS warps: on an H100 a layout with fewer warps a query was 1.4-2.8x slower (the kernel waits on
// latency more than on bandwidth).
// A decode step of few tokens has few blocks (8 for a lone token of a model with 8 KV heads), so a long context
// would be read by a few SMs: there the host splits each token's keys over `splits` blocks (grid y is heads x
// splits), each taking a contiguous run of spans of ATTN_WARPS x 32 keys. Each writes its merged partial (value,
// max, sum) to split_partials, and the last of a (token, head group) to finish (a counter in split_done, which that
// block resets, so a CUDA graph can replay it) merges them in split order: the same bits whichever finishes last.
// A context of one span has one split with keys, which writes its output directly.
#define ATTN_WARPS 8
#define DIMS_PER_LANE (HEAD_DIM / 32)
#ifndef GQA_GROUP
#define GQA_GROUP 1
#endif

// A lane's DIMS_PER_LANE dimensions of one value, as stored: the form in which a decode step loads its first chunk's
// values before it waits (kept to head sizes up to 64, where they take 32 registers a thread).
#define VALUES_EARLY (DIMS_PER_LANE <= 2)

// Through __ldg: a plain load here and the read of the early copy in accumulate_key would be merged by the compiler
// into one load through a chosen address, which keeps the early copies in local memory (check-ptx.sh).
__device__ __forceinline__ unsigned int load_value_bits(const bf16* source)
{
#if DIMS_PER_LANE == 2
    return __ldg((const unsigned int*)source);
#else
    return source[0];
#endif
}

__device__ __forceinline__ void unpack_value_bits(float* v, unsigned int bits)
{
    v[0] = __uint_as_float(bits << 16);
#if DIMS_PER_LANE == 2
    v[1] = __uint_as_float(bits & 0xffff0000u);
#endif
}

__device__ __forceinline__ void load_value(float* v, const bf16* source)
{
#if DIMS_PER_LANE % 2 == 0
    const unsigned int* pairs = (const unsigned int*)source; // two dimensions per 4-byte load
#pragma unroll
    for (int i = 0; i < DIMS_PER_LANE / 2; i++)
    {
        unsigned int pair = pairs[i];
        v[2 * i] = __uint_as_float(pair << 16);
        v[2 * i + 1] = __uint_as_float(pair & 0xffff0000u);
    }
#else
#pragma unroll
    for (int i = 0; i < DIMS_PER_LANE; i++) v[i] = bf16_to_float(source[i]);
#endif
}

// Adds key jj of the chunk (slot and per-head weights held by lane jj) into every head's accumulator. When early,
// the lane's part of the value was loaded before the kernel waited (early_bits), so nothing is read here.
__device__ __forceinline__ void accumulate_key(float (*acc)[DIMS_PER_LANE], const float* p, int slot, int jj, const bf16* v_lane, int kv_dim,
                                               bool early, unsigned int early_bits)
{
    int sj = __shfl_sync(0xffffffffu, slot, jj);
    float v[DIMS_PER_LANE];
#if VALUES_EARLY
    unpack_value_bits(v, early ? early_bits : load_value_bits(v_lane + (usize)sj * kv_dim));
#else
    load_value(v, v_lane + (usize)sj * kv_dim);
#endif
#pragma unroll
    for (int g = 0; g < GQA_GROUP; g++)
    {
        float pj = __shfl_sync(0xffffffffu, p[g], jj);
#pragma unroll
        for (int i = 0; i < DIMS_PER_LANE; i++) acc[g][i] += pj * v[i];
    }
}

extern "C" __global__ void __launch_bounds__(ATTN_WARPS * 32)
paged_attention(bf16* __restrict__ out, const float* __restrict__ qkv, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                const int* __restrict__ block_tables, int table_stride, const int* __restrict__ token_rows, const int* __restrict__ positions,
                int q_heads, int kv_heads, int block_size, float scale, int decode_step,
                int splits, float* __restrict__ split_partials, unsigned int* __restrict__ split_done)
{
    __shared__ float q_shared[GQA_GROUP][HEAD_DIM];
    __shared__ float partial[ATTN_WARPS][GQA_GROUP][HEAD_DIM];
    __shared__ float partial_max[ATTN_WARPS][GQA_GROUP];
    __shared__ float partial_sum[ATTN_WARPS][GQA_GROUP];
    __shared__ bool last_split; // this block merges the splits' partials

    int t = blockIdx.x;
    int group = blockIdx.y / splits;
    int split = blockIdx.y - group * splits;
    int first_head = group * GQA_GROUP;
    int kvh = first_head / (q_heads / kv_heads);
    int warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31;
    int kv_dim = kv_heads * HEAD_DIM;

    // The step's own arrays (positions, block tables) were copied from the host before the step, so they are read
    // before waiting for the previous kernel: the slot of this lane's key in the warp's first chunk is known when the
    // fresh queries are (a decode over up to 8 x 32 positions has only that chunk). In a decode step (decode_step != 0:
    // each token is its sequence's only new one) every key but the token's own was written by an earlier step, so
    // those of the first chunk, and their values where the head size is at most 64, are loaded before the wait too:
    // at decode over a short context nothing but the queries and the token's own key and value is read after it.
    const int* table = block_tables + (usize)token_rows[t] * table_stride;
    const bf16* k_head = k_cache + kvh * HEAD_DIM;
    int length = positions[t] + 1;
    // This split's keys: [begin, end). A split past the context has nothing to do, and nothing to wait for.
    const int span = ATTN_WARPS * 32;
    int spans = (length + span - 1) / span;
    int spans_per_split = (spans + splits - 1) / splits;
    int active_splits = (spans + spans_per_split - 1) / spans_per_split;
    int begin = split * spans_per_split * span;
    if (begin >= length) return;
    int end = min(length, begin + spans_per_split * span);
    int early_end = decode_step ? min(end, length - 1) : begin; // keys written by earlier steps
    int first_j = begin + warp * 32 + lane;
    int first_slot = first_j < end ? table[first_j / block_size] * block_size + first_j % block_size : 0;
    bool key_early = first_j < early_end;
    uint4 first_key[HEAD_DIM / 8];
    if (key_early)
    {
        const uint4* k = (const uint4*)(k_head + (usize)first_slot * kv_dim);
#pragma unroll
        for (int c = 0; c < HEAD_DIM / 8; c++) first_key[c] = k[c];
    }
    const bf16* v_lane = v_cache + kvh * HEAD_DIM + lane * DIMS_PER_LANE;
    // And the same keys' values: this lane's dimensions of key jj of the first chunk, at the slot lane jj found.
    unsigned int first_values[32];
#pragma unroll
    for (int jj = 0; jj < 32; jj++)
    {
        first_values[jj] = 0;
#if VALUES_EARLY
        int sj = __shfl_sync(0xffffffffu, first_slot, jj);
        if (begin + warp * 32 + jj < early_end) first_values[jj] = load_value_bits(v_lane + (usize)sj * kv_dim);
#endif
    }
    after_previous_kernel();

    const float* q = qkv + (usize)t * (q_heads + 2 * kv_heads) * HEAD_DIM + first_head * HEAD_DIM;
    for (int d = threadIdx.x; d < GQA_GROUP * HEAD_DIM; d += blockDim.x) q_shared[d / HEAD_DIM][d % HEAD_DIM] = q[d] * scale;
    __syncthreads();

    float running_max[GQA_GROUP];
    float running_sum[GQA_GROUP];
    float acc[GQA_GROUP][DIMS_PER_LANE];
#pragma unroll
    for (int g = 0; g < GQA_GROUP; g++)
    {
        running_max[g] = -INFINITY;
        running_sum[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < DIMS_PER_LANE; i++) acc[g][i] = 0.0f;
    }

    for (int base = begin + warp * 32; base < end; base += ATTN_WARPS * 32)
    {
        int j = base + lane;
        float score[GQA_GROUP];
#pragma unroll
        for (int g = 0; g < GQA_GROUP; g++) score[g] = -INFINITY;
        int slot = 0;
        if (j < end)
        {
            slot = j == first_j ? first_slot : table[j / block_size] * block_size + j % block_size;
            const uint4* k = (const uint4*)(k_head + (usize)slot * kv_dim);
            bool early = key_early && j == first_j;
#pragma unroll
            for (int g = 0; g < GQA_GROUP; g++) score[g] = 0.0f;
#pragma unroll
            for (int c = 0; c < HEAD_DIM / 8; c++)
            {
                // Two loads rather than one through a chosen address: an address of first_key would keep it in
                // local memory (check-ptx.sh).
                uint4 key_part;
                if (early) key_part = first_key[c];
                else key_part = k[c];
                float kf[8];
                unpack8(key_part, kf);
#pragma unroll
                for (int g = 0; g < GQA_GROUP; g++)
#pragma unroll
                    for (int e = 0; e < 8; e++) score[g] += q_shared[g][c * 8 + e] * kf[e];
            }
        }
        float p[GQA_GROUP];
#pragma unroll
        for (int g = 0; g < GQA_GROUP; g++)
        {
            float new_max = fmaxf(running_max[g], warp_max(score[g]));
            p[g] = j < end ? expf(score[g] - new_max) : 0.0f;
            float correction = expf(running_max[g] - new_max);
            running_sum[g] = running_sum[g] * correction + warp_sum(p[g]);
#pragma unroll
            for (int i = 0; i < DIMS_PER_LANE; i++) acc[g][i] *= correction;
            running_max[g] = new_max;
        }
        // Keys of the warp's first chunk but the token's own were loaded early in a decode step (warp-uniform).
        int early_keys = base == begin + warp * 32 ? early_end - base : 0;
        if (end - base >= 32)
        {
#pragma unroll
            for (int jj = 0; jj < 32; jj++) accumulate_key(acc, p, slot, jj, v_lane, kv_dim, jj < early_keys, first_values[jj]);
        }
        else
        {
            // Unrolled with a guard, not a loop to length - base: first_values[jj] must be a register.
#pragma unroll
            for (int jj = 0; jj < 32; jj++)
                if (jj < end - base) accumulate_key(acc, p, slot, jj, v_lane, kv_dim, jj < early_keys, first_values[jj]);
        }
    }

#pragma unroll
    for (int g = 0; g < GQA_GROUP; g++)
    {
#pragma unroll
        for (int i = 0; i < DIMS_PER_LANE; i++) partial[warp][g][lane * DIMS_PER_LANE + i] = acc[g][i];
        if (lane == 0)
        {
            partial_max[warp][g] = running_max[g];
            partial_sum[warp][g] = running_sum[g];
        }
    }
    __syncthreads();

    // Merge: warps that had no chunk carry max -inf and sum 0, and weigh nothing. A split's partial of head h of
    // token t is HEAD_DIM values, then its max and its sum, at ((t * q_heads + h) * splits + split) * (HEAD_DIM + 2).
    const int record = HEAD_DIM + 2;
    for (int idx = threadIdx.x; idx < GQA_GROUP * HEAD_DIM; idx += blockDim.x)
    {
        int g = idx / HEAD_DIM;
        int d = idx - g * HEAD_DIM;
        float total_max = -INFINITY;
        for (int w = 0; w < ATTN_WARPS; w++) total_max = fmaxf(total_max, partial_max[w][g]);
        float total_sum = 0.0f;
        float value = 0.0f;
        for (int w = 0; w < ATTN_WARPS; w++)
        {
            float weight = expf(partial_max[w][g] - total_max);
            total_sum += partial_sum[w][g] * weight;
            value += partial[w][g][d] * weight;
        }
        int head = first_head + g;
        if (active_splits == 1)
        {
            out[(usize)t * q_heads * HEAD_DIM + head * HEAD_DIM + d] = float_to_bf16(value / total_sum);
            continue;
        }
        float* mine = split_partials + ((usize)(t * q_heads + head) * splits + split) * record;
        mine[d] = value;
        if (d == 0)
        {
            mine[HEAD_DIM] = total_max;
            mine[HEAD_DIM + 1] = total_sum;
        }
    }
    if (active_splits == 1) return;

    __syncthreads();
    unsigned int* done = split_done + (usize)t * (gridDim.y / splits) + group;
    if (threadIdx.x == 0)
    {
        __threadfence(); // this split's partial is visible before the counter says so
        last_split = atomicAdd(done, 1u) == (unsigned int)active_splits - 1;
    }
    __syncthreads();
    if (!last_split) return;
    __threadfence();
    for (int idx = threadIdx.x; idx < GQA_GROUP * HEAD_DIM; idx += blockDim.x)
    {
        int g = idx / HEAD_DIM;
        int d = idx - g * HEAD_DIM;
        int head = first_head + g;
        const volatile float* parts = split_partials + (usize)(t * q_heads + head) * splits * record;
        float total_max = -INFINITY;
        for (int s = 0; s < active_splits; s++) total_max = fmaxf(total_max, parts[s * record + HEAD_DIM]);
        float total_sum = 0.0f;
        float value = 0.0f;
        for (int s = 0; s < active_splits; s++)
        {
            float weight = expf(parts[s * record + HEAD_DIM] - total_max);
            total_sum += parts[s * record + HEAD_DIM + 1] * weight;
            value += parts[s * record + d] * weight;
        }
        out[(usize)t * q_heads * HEAD_DIM + head * HEAD_DIM + d] = float_to_bf16(value / total_sum);
    }
    if (threadIdx.x == 0) *done = 0u;
}
