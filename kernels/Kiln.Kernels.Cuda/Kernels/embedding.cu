// x[t] = embedding[ids[t]] widened to float32: the residual stream stays float32 for the whole forward pass.
extern "C" __global__ void embed_tokens(float* __restrict__ x, const bf16* __restrict__ table, const int* __restrict__ ids, int hidden)
{
    after_previous_kernel();
    const bf16* row = table + (usize)ids[blockIdx.x] * hidden;
    float* out = x + (usize)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[i] = bf16_to_float(row[i]);
}

// The same over an f16 table (q8 = 0) or a Q8 one (int8 values, a float32 scale per 32 of a row).
extern "C" __global__ void embed_tokens_compact(float* __restrict__ x, const void* __restrict__ table, const float* __restrict__ scales,
                                                const int* __restrict__ ids, int hidden, int q8)
{
    after_previous_kernel();
    usize first = (usize)ids[blockIdx.x] * hidden;
    float* out = x + (usize)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[i] = compact_value(table, scales, first + i, q8);
}
