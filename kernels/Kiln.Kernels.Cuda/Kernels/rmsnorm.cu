// RMSNorm fused with the residual add. One block per output row.
// With addend: x[src] += addend[src] first (the attention or MLP output joins the residual stream), then
// out[r] = bf16(x[src] / rms(x[src]) * weight). With row_index, output row r reads x row row_index[r]: the final
// norm runs only on the rows whose logits are wanted.
extern "C" __global__ void add_rmsnorm(float* __restrict__ x, const float* __restrict__ addend, const float* __restrict__ weight,
                                       bf16* __restrict__ out, const int* __restrict__ row_index, int hidden, float eps)
{
    after_previous_kernel();
    __shared__ float scratch[32];
    int r = blockIdx.x;
    int src = row_index ? row_index[r] : r;
    float* xr = x + (usize)src * hidden;
    const float* ar = addend ? addend + (usize)src * hidden : 0;
    float squares = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
    {
        float v = xr[i];
        if (ar)
        {
            v += ar[i];
            xr[i] = v;
        }
        squares += v * v;
    }
    float total = block_sum(squares, scratch);
    float inv = rsqrtf(total / (float)hidden + eps);
    bf16* o = out + (usize)r * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = float_to_bf16(xr[i] * inv * weight[i]);
}
