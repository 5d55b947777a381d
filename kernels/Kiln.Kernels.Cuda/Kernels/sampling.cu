// Sampling on the device, one block of SAMPLE_THREADS threads per row of logits (the greedy ids of a plain step come
// from argmax_sliced below). Greedy is an argmax (ties to the lowest id, as the CPU sampler). Random sampling filters
// with top-k, then top-p (over what top-k kept), by finding value thresholds exactly with a search over the floats'
// order (search_threshold), then
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

// The greedy ids of a step over many blocks a row (grid rows x slices, ARGMAX_THREADS each): one block a row would read
// a 128k vocabulary a few loads at a time; here each block takes a slice, and the last block
// of a row to finish (a counter per row, which that block resets, so a CUDA graph can replay it) merges the slices'
// best in slice order. The result is the largest logit, ties to the lowest id (as the CPU sampler). partial_values and
// partial_ids hold rows x slices entries; done holds rows counters, zero before the first launch.
#define ARGMAX_THREADS 256
extern "C" __global__ void __launch_bounds__(ARGMAX_THREADS)
argmax_sliced(int* __restrict__ out, const float* __restrict__ logits, int vocab, float* partial_values, int* partial_ids, unsigned int* done)
{
    after_previous_kernel();
    __shared__ float values[32];
    __shared__ int indices[32];
    __shared__ float best_value;
    __shared__ int best_index;
    __shared__ bool last;
    int r = blockIdx.x;
    int slices = gridDim.y;
    int per_slice = (vocab + slices - 1) / slices;
    int begin = blockIdx.y * per_slice;
    int end = min(vocab, begin + per_slice);
    const float* row = logits + (usize)r * vocab;
    float value = -INFINITY;
    int index = 0x7fffffff;
#pragma unroll 4
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x)
        if (row[i] > value) { value = row[i]; index = i; }
    block_argmax(value, index, values, indices, &best_value, &best_index);
    if (threadIdx.x == 0)
    {
        partial_values[r * slices + blockIdx.y] = best_value;
        partial_ids[r * slices + blockIdx.y] = best_index;
        __threadfence(); // this slice's best is visible before the counter says so
        last = atomicAdd(&done[r], 1u) == (unsigned int)slices - 1;
    }
    __syncthreads();
    if (!last || threadIdx.x != 0) return;
    __threadfence();
    const volatile float* slice_values = partial_values + r * slices;
    const volatile int* slice_ids = partial_ids + r * slices;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int s = 0; s < slices; s++)
    {
        float v = slice_values[s];
        int i = slice_ids[s];
        if (v > bv || (v == bv && i < bi)) { bv = v; bi = i; }
    }
    out[r] = bi;
    done[r] = 0u;
}

__device__ __forceinline__ float uniform_open(unsigned long long seed, unsigned long long step, unsigned long long id)
{
    unsigned long long z = mix64(seed ^ (step * 0xD1B54A32D192ED03ull) ^ ((id + 1) * 0x9E3779B97F4A7C15ull));
    return ((float)(z >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// The thresholds of top-k and top-p are searched 16 ways at a time: each pass over the row evaluates a tail
// (count or probability mass of the logits whose key is at least t) at 15 points of the range left, so a 32-bit key
// is found in 8 passes instead of 32. The result is the same as a binary search's: the largest key whose tail reaches
// the target. Each pass's sums are reduced in a fixed order, so a seed draws the same token every time.
#define SEARCH_WAYS 16
#define SEARCH_POINTS (SEARCH_WAYS - 1)

// Sums 16 values over a warp in 16 shuffles instead of 16 x 5: at each step a lane keeps half of its values and
// sends the other half to its partner, which adds it to its own. Lane l ends with the warp's total of value
// (l >> 1) & 15. The order of additions is fixed, so the totals are the same on every run.
__device__ __forceinline__ float warp_sums16(float* v)
{
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int level = 0; level < 4; level++) // a counted loop: one halving width is not unrolled, leaving v in memory
    {
        const int width = 8 >> level;
        const int offset = 16 >> level;
        bool upper = (lane & offset) != 0;
#pragma unroll
        for (int i = 0; i < width; i++)
        {
            float low = v[i], high = v[i + width]; // chosen as values: a chosen address would keep v in memory
            float send = upper ? low : high;
            float keep = upper ? high : low;
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, offset);
        }
    }
    return v[0] + __shfl_xor_sync(0xffffffffu, v[0], 1);
}

// The tails at SEARCH_POINTS keys in one pass over the row: with MASS the sum of exp((x - max_logit) * inv_temp) over
// the logits whose key is at or above the point (only those at or above floor count), else their number. partial
// holds 32 x SEARCH_POINTS floats, totals SEARCH_POINTS; every thread gets the sums.
template <bool MASS>
__device__ __forceinline__ void tails(const float* row, int vocab, const unsigned int* points, float* sums, unsigned int floor, float max_logit,
                      float inv_temp, float (*partial)[SEARCH_POINTS], float* totals)
{
    float v[16];
#pragma unroll
    for (int j = 0; j < 16; j++) v[j] = 0.0f;
#pragma unroll 4
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
    {
        float x = row[i];
        unsigned int key = order_key(x);
        float weight = 1.0f;
        if (MASS)
        {
            if (key < floor) continue;
            weight = expf((x - max_logit) * inv_temp);
        }
#pragma unroll
        for (int j = 0; j < SEARCH_POINTS; j++) v[j] += key >= points[j] ? weight : 0.0f;
    }
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = (blockDim.x + 31) >> 5;
    float total = warp_sums16(v);
    int j = (lane >> 1) & 15;
    if ((lane & 1) == 0 && j < SEARCH_POINTS) partial[warp][j] = total;
    __syncthreads();
    if (warp < SEARCH_POINTS)
    {
        float w = warp_sum(lane < warps ? partial[lane][warp] : 0.0f);
        if (lane == 0) totals[warp] = w;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < SEARCH_POINTS; p++) sums[p] = totals[p];
    __syncthreads(); // the next pass may overwrite partial and totals
}

// The largest key in [lo, hi] whose tail (see tails) reaches target, given that lo's does.
template <bool MASS>
__device__ __forceinline__ unsigned int search_threshold(const float* row, int vocab, unsigned long long lo, unsigned long long hi, float target,
                                         unsigned int floor, float max_logit, float inv_temp, float (*partial)[SEARCH_POINTS], float* totals)
{
    while (lo < hi)
    {
        unsigned int points[SEARCH_POINTS]; // 32 bits each: registers are scarce at 1024 threads
        float sums[SEARCH_POINTS];
#pragma unroll
        for (int j = 0; j < SEARCH_POINTS; j++) points[j] = (unsigned int)(lo + ((hi - lo + 1) * (unsigned long long)(j + 1)) / SEARCH_WAYS);
        tails<MASS>(row, vocab, points, sums, floor, max_logit, inv_temp, partial, totals);
        unsigned long long new_lo = lo, new_hi = hi;
#pragma unroll
        for (int j = 0; j < SEARCH_POINTS; j++)
        {
            if (sums[j] >= target) new_lo = points[j] > new_lo ? points[j] : new_lo;
            else if ((unsigned long long)points[j] - 1 < new_hi) new_hi = (unsigned long long)points[j] - 1;
        }
        lo = new_lo;
        hi = new_hi;
    }
    return (unsigned int)lo;
}

// temperature <= 0 means greedy; top_k <= 0 or >= vocab keeps all; top_p >= 1 keeps all.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS)
sample_rows(int* __restrict__ out, const float* __restrict__ logits, int vocab, const float* __restrict__ temperature,
            const int* __restrict__ top_k, const float* __restrict__ top_p, const unsigned long long* __restrict__ seeds, unsigned long long step)
{
    after_previous_kernel();
    __shared__ float partial[32][SEARCH_POINTS];
    __shared__ float totals[SEARCH_POINTS];
    __shared__ float values[32];
    __shared__ int indices[32];
    __shared__ float best_value;
    __shared__ int best_index;
    int r = blockIdx.x;
    const float* row = logits + (usize)r * vocab;
    float temp = temperature[r];

    float value = -INFINITY;
    int index = 0x7fffffff;
#pragma unroll 4
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
        threshold = search_threshold<false>(row, vocab, 0ull, 0xffffffffull, (float)k, 0u, max_logit, inv_temp, partial, totals);
    }

    // Top-p over the survivors: the largest key whose tail holds at least p of their probability mass.
    float p = top_p[r];
    if (p < 1.0f)
    {
        // The survivors' whole mass, summed exactly as the search sums the tail at its lower end.
        unsigned int at_threshold[SEARCH_POINTS];
        float sums[SEARCH_POINTS];
#pragma unroll
        for (int j = 0; j < SEARCH_POINTS; j++) at_threshold[j] = threshold;
        tails<true>(row, vocab, at_threshold, sums, threshold, max_logit, inv_temp, partial, totals);
        threshold = search_threshold<true>(row, vocab, threshold, 0xffffffffull, p * sums[0], threshold, max_logit, inv_temp, partial, totals);
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
