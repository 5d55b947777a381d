// out[t][i] = silu(gate[t][i]) * up[t][i], from the fused gate_up projection [tokens x 2 x inter] float32.
extern "C" __global__ void swiglu(bf16* __restrict__ out, const float* __restrict__ gate_up, int inter, int tokens)
{
    after_previous_kernel();
    usize total = (usize)tokens * inter;
    for (usize idx = (usize)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (usize)gridDim.x * blockDim.x)
    {
        usize t = idx / inter;
        usize i = idx - t * inter;
        const float* row = gate_up + t * 2 * inter;
        float g = row[i];
        float u = row[inter + i];
        out[idx] = float_to_bf16(g / (1.0f + expf(-g)) * u);
    }
}

// y[t][r] += bias[r]: the Qwen2 projection biases after a cuBLAS product.
extern "C" __global__ void add_bias(float* __restrict__ y, const float* __restrict__ bias, int rows, int tokens)
{
    after_previous_kernel();
    usize total = (usize)tokens * rows;
    for (usize idx = (usize)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (usize)gridDim.x * blockDim.x)
        y[idx] += bias[idx % rows];
}

// Float32 to bf16, for tests and for activations that a product takes as input.
extern "C" __global__ void to_bf16(bf16* __restrict__ out, const float* __restrict__ in, int count)
{
    after_previous_kernel();
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < count; idx += gridDim.x * blockDim.x)
        out[idx] = float_to_bf16(in[idx]);
}

// Seeded uniform weights in [-scale, scale) written on the device: a benchmark model of billions of parameters
// is made in milliseconds instead of being generated and copied from the host.
extern "C" __global__ void fill_random_bf16(bf16* __restrict__ out, unsigned long long count, unsigned long long seed, float scale)
{
    after_previous_kernel();
    for (unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; idx < count;
         idx += (unsigned long long)gridDim.x * blockDim.x)
    {
        unsigned long long z = mix64(seed + (idx + 1) * 0x9E3779B97F4A7C15ull);
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        out[idx] = float_to_bf16((2.0f * u - 1.0f) * scale);
    }
}

// Seeded uniform int8 values in [-127, 127], for a benchmark model in Q8 (with one scale for the whole matrix).
extern "C" __global__ void fill_random_i8(signed char* __restrict__ out, unsigned long long count, unsigned long long seed)
{
    after_previous_kernel();
    for (unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; idx < count;
         idx += (unsigned long long)gridDim.x * blockDim.x)
    {
        unsigned long long z = mix64(seed + (idx + 1) * 0x9E3779B97F4A7C15ull);
        out[idx] = (signed char)((int)(z % 255ull) - 127);
    }
}
