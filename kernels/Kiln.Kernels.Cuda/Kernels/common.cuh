// Shared helpers for Kiln's kernels. NVRTC compiles every file of this folder as one translation unit, this one
// first, with no system headers: bf16 is carried as unsigned short and converted by bit operations.
// HEAD_DIM is defined by the compiler options for the model being served.

typedef unsigned short bf16;
typedef unsigned long long usize; // NVRTC without headers has no size_t

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

__device__ __forceinline__ float bf16_to_float(bf16 v) { return __uint_as_float(((unsigned int)v) << 16); }

// IEEE half to float, exactly (subnormals included), by bit operations: NVRTC without headers has no __half.
__device__ __forceinline__ float f16_to_float(unsigned short h)
{
    unsigned int sign = ((unsigned int)h & 0x8000u) << 16;
    unsigned int exponent = ((unsigned int)h >> 10) & 0x1fu;
    unsigned int mantissa = (unsigned int)h & 0x3ffu;
    if (exponent == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0u)
    {
        float subnormal = (float)mantissa * 5.9604644775390625e-8f; // mantissa * 2^-24
        return sign ? -subnormal : subnormal;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Element e of a compact matrix kept row-major: Q8 (int8 values, a float32 scale per 32; q8 != 0) or f16.
__device__ __forceinline__ float compact_value(const void* w, const float* scales, usize e, int q8)
{
    return q8 ? (float)((const signed char*)w)[e] * scales[e >> 5] : f16_to_float(((const unsigned short*)w)[e]);
}

// Round to nearest even, as PyTorch and the CPU backend's bf16 conversion do; NaN stays NaN.
__device__ __forceinline__ bf16 float_to_bf16(float f)
{
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}

// Programmatic dependent launch (Hopper and later): a kernel launched with it may start while the previous kernel of
// the stream is finishing. Every kernel calls wait_for_previous_kernel before it writes anything or reads what an
// earlier kernel wrote, then allow_next_kernel, so the next kernel's prologue overlaps this one. Before its wait a
// kernel may read only what no kernel of the step writes: weights; the step's arrays, copied from the host before the
// step's first kernel (which waits for that copy in full); and what earlier steps wrote (the host waits for each
// step's ids before it stages the next), such as the keys of earlier positions. Launched without the attribute, the
// wait returns at once.
__device__ __forceinline__ void wait_for_previous_kernel()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_next_kernel()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// Both at a kernel's start: for kernels with nothing to do before their inputs are ready.
__device__ __forceinline__ void after_previous_kernel()
{
    wait_for_previous_kernel();
    allow_next_kernel();
}

// SplitMix64's finaliser: a counter (seed and index mixed in by the caller) to 64 well-mixed bits. Random weights
// and the sampler's uniforms come from it, so a seed gives the same values on every run.
__device__ __forceinline__ unsigned long long mix64(unsigned long long z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// The eight bf16 values of a 16-byte load, widened.
__device__ __forceinline__ void unpack8(uint4 v, float* out)
{
    out[0] = __uint_as_float(v.x << 16); out[1] = __uint_as_float(v.x & 0xffff0000u);
    out[2] = __uint_as_float(v.y << 16); out[3] = __uint_as_float(v.y & 0xffff0000u);
    out[4] = __uint_as_float(v.z << 16); out[5] = __uint_as_float(v.z & 0xffff0000u);
    out[6] = __uint_as_float(v.w << 16); out[7] = __uint_as_float(v.w & 0xffff0000u);
}

// Eight consecutive floats (32-byte aligned) in two 16-byte loads.
__device__ __forceinline__ void load8(const float* source, float* out)
{
    float4 a = ((const float4*)source)[0];
    float4 b = ((const float4*)source)[1];
    out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
    out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Sum over the whole block; scratch holds 32 floats in shared memory. Every thread gets the total.
__device__ float block_sum(float v, float* scratch)
{
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads(); // the previous call's readers are done with scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0)
    {
        int warps = (blockDim.x + 31) >> 5;
        float w = lane < warps ? scratch[lane] : 0.0f;
        w = warp_sum(w);
        if (lane == 0) scratch[0] = w;
    }
    __syncthreads();
    return scratch[0];
}
