// Sampling on the device, one block of SAMPLE_THREADS threads per row of logits.
// Greedy is an argmax (ties to the lowest id, as the CPU sampler). Random sampling filters with top-k, then top-p
// (over what top-k kept), by finding value thresholds exactly with a binary search over the floats' order, then
// draws by Gumbel-max among the survivors: argmax of logit/T - log(-log(u)) is a draw from softmax(logit/T)
// restricted to them. u comes from a counter-based hash of (seed, step, id), so a seed gives the same tokens.
#define SAMPLE_THREADS 1024

// A float's bits mapped to an unsigned key with the same order.
__device__ __forceinline__ unsigned int order_key(float f)
{
    unsigned int u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ void block_argmax(float value, int index, float* values, int* indices, float* best_value, int* best_index)
{
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        float v = __shfl_xor_sync(0xffffffffu, value, offset);
        int i = __shfl_xor_sync(0xffffffffu, index, offset);
        if (v > value || (v == value && i < index)) { value = v; index = i; }
    }
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) { values[warp] = value; indices[warp] = index; }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        float bv = values[0];
        int bi = indices[0];
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (values[w] > bv || (values[w] == bv && indices[w] < bi)) { bv = values[w]; bi = indices[w]; }
        *best_value = bv;
        *best_index = bi;
    }
    __syncthreads();
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) argmax_rows(int* __restrict__ out, const float* __restrict__ logits, int vocab)
{
    after_previous_kernel();
    __shared__ float values[32];
    __shared__ int indices[32];
    __shared__ float best_value;
    __shared__ int best_index;
    const float* row = logits + (usize)blockIdx.x * vocab;
    float value = -INFINITY;
    int index = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (row[i] > value) { value = row[i]; index = i; }
    block_argmax(value, index, values, indices, &best_value, &best_index);
    if (threadIdx.x == 0) out[blockIdx.x] = best_index;
}

__device__ __forceinline__ float uniform_open(unsigned long long seed, unsigned long long step, unsigned long long id)
{
    unsigned long long z = mix64(seed ^ (step * 0xD1B54A32D192ED03ull) ^ ((id + 1) * 0x9E3779B97F4A7C15ull));
    return ((float)(z >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// temperature <= 0 means greedy; top_k <= 0 or >= vocab keeps all; top_p >= 1 keeps all.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS)
sample_rows(int* __restrict__ out, const float* __restrict__ logits, int vocab, const float* __restrict__ temperature,
            const int* __restrict__ top_k, const float* __restrict__ top_p, const unsigned long long* __restrict__ seeds, unsigned long long step)
{
    after_previous_kernel();
    __shared__ float scratch[32];
    __shared__ float values[32];
    __shared__ int indices[32];
    __shared__ float best_value;
    __shared__ int best_index;
    int r = blockIdx.x;
    const float* row = logits + (usize)r * vocab;
    float temp = temperature[r];

    float value = -INFINITY;
    int index = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (row[i] > value) { value = row[i]; index = i; }
    block_argmax(value, index, values, indices, &best_value, &best_index);
    if (temp <= 0.0f)
    {
        if (threadIdx.x == 0) out[r] = best_index;
        return;
    }
    float max_logit = best_value;
    float inv_temp = 1.0f / temp;

    // Top-k: the largest key K with at least k logits at or above it.
    unsigned int threshold = 0u;
    int k = top_k[r];
    if (k > 0 && k < vocab)
    {
        unsigned long long lo = 0ull, hi = 0xffffffffull;
        while (lo < hi)
        {
            unsigned long long mid = lo + (hi - lo + 1) / 2;
            float count = 0.0f;
            for (int i = threadIdx.x; i < vocab; i += blockDim.x) count += order_key(row[i]) >= (unsigned int)mid ? 1.0f : 0.0f;
            if (block_sum(count, scratch) >= (float)k) lo = mid; else hi = mid - 1;
        }
        threshold = (unsigned int)lo;
    }

    // Top-p over the survivors: the largest key whose tail holds at least p of their probability mass.
    float p = top_p[r];
    if (p < 1.0f)
    {
        float mass = 0.0f;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
            if (order_key(row[i]) >= threshold) mass += expf((row[i] - max_logit) * inv_temp);
        float total = block_sum(mass, scratch);
        unsigned long long lo = threshold, hi = 0xffffffffull;
        while (lo < hi)
        {
            unsigned long long mid = lo + (hi - lo + 1) / 2;
            float tail = 0.0f;
            for (int i = threadIdx.x; i < vocab; i += blockDim.x)
                if (order_key(row[i]) >= (unsigned int)mid) tail += expf((row[i] - max_logit) * inv_temp);
            if (block_sum(tail, scratch) >= p * total) lo = mid; else hi = mid - 1;
        }
        threshold = (unsigned int)lo;
    }

    unsigned long long seed = seeds[r];
    value = -INFINITY;
    index = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
    {
        float x = row[i];
        if (order_key(x) < threshold) continue;
        float g = x * inv_temp - logf(-logf(uniform_open(seed, step, (unsigned long long)i)));
        if (g > value) { value = g; index = i; }
    }
    block_argmax(value, index, values, indices, &best_value, &best_index);
    if (threadIdx.x == 0) out[r] = best_index;
}
