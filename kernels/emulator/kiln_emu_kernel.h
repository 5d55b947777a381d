// kiln_emu_kernel.h: runs Kiln's CUDA C++ kernels on the CPU, for the CUDA emulator (kernels/emulator).
//
// The emulated NVRTC compiles the kernel sources with g++ and this header force-included. Every CUDA thread of a
// block is a fiber with its own stack; a block runs its fibers on one OS thread, switching at __syncthreads (all
// threads of the block) and at warp primitives (the 32 lanes of a warp), so barriers and shuffles have CUDA's
// semantics. Blocks run one after another. __shared__ variables become thread_local statics: one copy per block
// in flight. Fibers run in forward order in even blocks and in reverse order in odd ones, so a read of shared
// memory that lacks its barrier sees stale data in one of the two and the result goes wrong.
//
// What it does not model: timing, the memory model between blocks (blocks never overlap here), warp-synchronous
// code without __syncwarp, and launch limits beyond 1024 threads a block.
#ifndef KILN_EMU_KERNEL_H
#define KILN_EMU_KERNEL_H

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <utility>

#include "kernel_abi.h"

// ---- qualifiers -------------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__ static thread_local
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

// ---- vector types -----------------------------------------------------------------------------------------------
struct __align__(8) int2 { int x, y; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct uint3 { unsigned int x, y, z; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };
struct __align__(8) float2 { float x, y; };
struct __align__(16) float4 { float x, y, z, w; };
struct dim3
{
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};
static inline int2 make_int2(int x, int y) { return {x, y}; }
static inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
static inline float2 make_float2(float x, float y) { return {x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

#include "kiln_emu_fibers.h"

// The emulated NVRTC appends one of these for each kernel it finds; the emulated driver looks them up by name.
#define KILN_EMU_EXPORT(name) \
    extern "C" __attribute__((visibility("default"))) const kiln_emu::KernelInfo kiln_emu_kernel_##name = kiln_emu::describe<&name>();

// ---- built-in variables -----------------------------------------------------------------------------------------
#define threadIdx (kiln_emu::t_fiber->tid)
#define blockIdx (kiln_emu::t_block->bid)
#define blockDim (kiln_emu::t_block->bdim)
#define gridDim (kiln_emu::t_block->gdim)
#define warpSize 32

// ---- synchronisation and warp primitives --------------------------------------------------------------------------
inline void __syncthreads() { kiln_emu::yield(kiln_emu::AtBarrier); }
inline void __syncwarp(unsigned int = 0xffffffffu) { kiln_emu::yield(kiln_emu::AtWarpSync); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() {}
inline unsigned int __ballot_sync(unsigned int, int predicate) { return kiln_emu::ballot(predicate); }
inline int __any_sync(unsigned int, int predicate) { return kiln_emu::ballot(predicate) != 0; }
inline int __all_sync(unsigned int mask, int predicate) { return (kiln_emu::ballot(predicate) & mask) == (kiln_emu::ballot(1) & mask); }

template <class T> inline T __shfl_sync(unsigned int, T var, int src_lane, int width = 32)
{
    int lane = kiln_emu::lane_id();
    return kiln_emu::shuffle_from(var, (lane & ~(width - 1)) + (src_lane & (width - 1)));
}
template <class T> inline T __shfl_xor_sync(unsigned int, T var, int lane_mask, int width = 32)
{
    int lane = kiln_emu::lane_id();
    int source = lane ^ lane_mask;
    return kiln_emu::shuffle_from(var, (source & ~(width - 1)) == (lane & ~(width - 1)) ? source : lane);
}
template <class T> inline T __shfl_down_sync(unsigned int, T var, unsigned int delta, int width = 32)
{
    int lane = kiln_emu::lane_id();
    int source = lane + (int)delta;
    return kiln_emu::shuffle_from(var, (source & ~(width - 1)) == (lane & ~(width - 1)) ? source : lane);
}
template <class T> inline T __shfl_up_sync(unsigned int, T var, unsigned int delta, int width = 32)
{
    int lane = kiln_emu::lane_id();
    int source = lane - (int)delta;
    return kiln_emu::shuffle_from(var, source >= (lane & ~(width - 1)) ? source : lane);
}
template <class T> inline T __ldg(const T* pointer) { return *pointer; }

// ---- atomics: the blocks of a launch run one at a time on one OS thread, so plain read-modify-writes are atomic ----
template <class T> inline T atomicAdd(T* address, T value) { T old = *address; *address = old + value; return old; }
template <class T> inline T atomicMax(T* address, T value) { T old = *address; if (value > old) *address = value; return old; }
template <class T> inline T atomicMin(T* address, T value) { T old = *address; if (value < old) *address = value; return old; }
template <class T> inline T atomicExch(T* address, T value) { T old = *address; *address = value; return old; }
template <class T> inline T atomicCAS(T* address, T compare, T value) { T old = *address; if (old == compare) *address = value; return old; }

// ---- bit casts and intrinsics -------------------------------------------------------------------------------------
inline unsigned int __float_as_uint(float x) { return __builtin_bit_cast(unsigned int, x); }
inline float __uint_as_float(unsigned int x) { return __builtin_bit_cast(float, x); }
inline int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
inline float __int_as_float(int x) { return __builtin_bit_cast(float, x); }
inline long long __double_as_longlong(double x) { return __builtin_bit_cast(long long, x); }
inline double __longlong_as_double(long long x) { return __builtin_bit_cast(double, x); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline void __sincosf(float x, float* s, float* c) { sincosf(x, s, c); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }

// CUDA's global min and max overloads.
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int min(int a, unsigned int b) { return (unsigned)a < b ? (unsigned)a : b; }
inline unsigned int min(unsigned int a, int b) { return a < (unsigned)b ? a : (unsigned)b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline unsigned int max(int a, unsigned int b) { return (unsigned)a > b ? (unsigned)a : b; }
inline unsigned int max(unsigned int a, int b) { return a > (unsigned)b ? a : (unsigned)b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

#endif // KILN_EMU_KERNEL_H
