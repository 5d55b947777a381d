// RoPE on the fresh queries and keys, then the keys and values into the paged KV cache.
// qkv is the fused projection's output, [tokens x (q_heads + 2 kv_heads) x HEAD_DIM] float32, rotated in place.
// inv_freq holds HEAD_DIM/2 inverse frequencies in float64 with any llama3 scaling already applied, so the angle
// is computed as the CPU backend computes it. half_split picks the pairing: (i, i + HEAD_DIM/2) as in Hugging Face
// checkpoints, or (2i, 2i + 1) as in GGUF. slots[t] is the cache slot (block * block_size + offset) of token t; a
// negative slot skips the write. One layer's cache is [slots x kv_heads x HEAD_DIM] bf16.
extern "C" __global__ void rope_write_kv(float* __restrict__ qkv, bf16* __restrict__ k_cache, bf16* __restrict__ v_cache,
                                         const int* __restrict__ positions, const int* __restrict__ slots,
                                         const double* __restrict__ inv_freq, int q_heads, int kv_heads, int half_split)
{
    after_previous_kernel();
    const int half = HEAD_DIM / 2;
    __shared__ float cos_table[HEAD_DIM / 2];
    __shared__ float sin_table[HEAD_DIM / 2];
    int t = blockIdx.x;
    int position = positions[t];
    // Every head rotates by the same angles: each is computed once, in float64 like the CPU backend.
    for (int i = threadIdx.x; i < half; i += blockDim.x)
    {
        double s, c;
        sincos((double)position * inv_freq[i], &s, &c);
        cos_table[i] = (float)c;
        sin_table[i] = (float)s;
    }
    __syncthreads();
    float* row = qkv + (usize)t * (q_heads + 2 * kv_heads) * HEAD_DIM;
    int rotated = (q_heads + kv_heads) * half;
    for (int idx = threadIdx.x; idx < rotated; idx += blockDim.x)
    {
        int head = idx / half;
        int i = idx - head * half;
        float cs = cos_table[i];
        float sn = sin_table[i];
        float* h = row + head * HEAD_DIM;
        int a = half_split ? i : 2 * i;
        int b = half_split ? i + half : 2 * i + 1;
        float x0 = h[a];
        float x1 = h[b];
        h[a] = x0 * cs - x1 * sn;
        h[b] = x0 * sn + x1 * cs;
    }
    __syncthreads();
    int slot = slots[t];
    if (slot < 0) return;
    int kv_dim = kv_heads * HEAD_DIM;
    const float* k = row + q_heads * HEAD_DIM;
    const float* v = k + kv_dim;
    bf16* kc = k_cache + (usize)slot * kv_dim;
    bf16* vc = v_cache + (usize)slot * kv_dim;
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x)
    {
        kc[i] = float_to_bf16(k[i]);
        vc[i] = float_to_bf16(v[i]);
    }
}
