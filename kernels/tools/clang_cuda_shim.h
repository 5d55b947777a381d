// clang_cuda_shim.h: what NVRTC gives Kiln's kernels without headers, for clang's CUDA device compiler
// (kernels/tools/check-ptx.sh). Execution spaces and built-in variables are clang's own; the math comes from
// libdevice's declarations (left unresolved: the PTX is read, never run); the warp and load intrinsics map onto
// NVVM builtins. Only what the kernels use is here: a kernel that needs more fails to compile, which is the point.
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __host__ __attribute__((host))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
#define __CUDACC_RTC__ 1
#define CUDA_VERSION 12000
typedef __SIZE_TYPE__ size_t; // NVRTC has it without headers

#include <__clang_cuda_builtin_vars.h>
#include <__clang_cuda_libdevice_declares.h>
#include <__clang_cuda_device_functions.h>

struct __attribute__((aligned(8))) uint2 { unsigned int x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned int x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
__device__ inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
__device__ inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

__device__ inline float expf(float x) { return __nv_expf(x); }
__device__ inline float logf(float x) { return __nv_logf(x); }
__device__ inline double exp(double x) { return __nv_exp(x); }
__device__ inline double log(double x) { return __nv_log(x); }
__device__ inline float fmaxf(float a, float b) { return __nv_fmaxf(a, b); }
__device__ inline float fminf(float a, float b) { return __nv_fminf(a, b); }
__device__ inline float rsqrtf(float x) { return __nv_rsqrtf(x); }
__device__ inline int min(int a, int b) { return __nv_min(a, b); }
__device__ inline int max(int a, int b) { return __nv_max(a, b); }
// libdevice's __nv_sincos writes through pointers; inlined on a GPU, but an unresolved call here would leave a
// stack frame in every kernel that rotates, hiding the arrays this check looks for.
__device__ inline void sincos(double x, double* s, double* c)
{
    *s = __nv_sin(x);
    *c = __nv_cos(x);
}

#define KILN_SHUFFLE(NAME, BUILTIN)                                                                                     \
    __device__ inline int NAME(unsigned m, int v, int l, int w = 32) { return BUILTIN##_i32(m, v, l, ((32 - w) << 8) | 0x1f); } \
    __device__ inline unsigned NAME(unsigned m, unsigned v, int l, int w = 32) { return (unsigned)NAME(m, (int)v, l, w); }     \
    __device__ inline float NAME(unsigned m, float v, int l, int w = 32) { return BUILTIN##_f32(m, v, l, ((32 - w) << 8) | 0x1f); }
KILN_SHUFFLE(__shfl_sync, __nvvm_shfl_sync_idx)
KILN_SHUFFLE(__shfl_xor_sync, __nvvm_shfl_sync_bfly)
#undef KILN_SHUFFLE

__device__ inline float __ldg(const float* p) { return __nvvm_ldg_f(p); }
__device__ inline unsigned __ldg(const unsigned* p) { return __nvvm_ldg_ui(p); }
__device__ inline uint2 __ldg(const uint2* p)
{
    typedef unsigned v2 __attribute__((ext_vector_type(2)));
    v2 r = __nvvm_ldg_ui2((const v2*)p);
    return {r[0], r[1]};
}
__device__ inline uint4 __ldg(const uint4* p)
{
    typedef unsigned v4 __attribute__((ext_vector_type(4)));
    v4 r = __nvvm_ldg_ui4((const v4*)p);
    return {r[0], r[1], r[2], r[3]};
}
__device__ inline unsigned atomicAdd(unsigned* p, unsigned v) { return (unsigned)__nvvm_atom_add_gen_i((int*)p, (int)v); }
