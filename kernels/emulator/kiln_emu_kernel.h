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

// ---- fibers -----------------------------------------------------------------------------------------------------
namespace kiln_emu
{
constexpr int MaxThreads = 1024;
constexpr size_t StackBytes = 64 * 1024;

enum FiberState { Ready, AtBarrier, AtWarpSync, Done };

struct Fiber
{
    void* sp;
    uint3 tid;
    int linear;
    int parity; // which half of the warp's exchange buffer the next shuffle uses
    FiberState state;
};

struct Block
{
    Fiber fibers[MaxThreads];
    int count;
    uint3 bid;
    dim3 bdim;
    dim3 gdim;
    void* scheduler_sp;
    void (*entry)(void**);
    void** args;
    unsigned long long exchange[2][MaxThreads / 32][32];
};

inline thread_local Block* t_block;
inline thread_local Fiber* t_fiber;
inline thread_local char* t_stacks; // MaxThreads stacks, each with a guard page below, made once per OS thread

extern "C" void kiln_emu_switch(void** save_sp, void* load_sp) __attribute__((visibility("hidden")));
// Saves the callee-saved registers on the current stack, stores the stack pointer, loads the other one and
// restores its registers: the System V x86-64 context switch.
asm(R"(
    .text
    .globl kiln_emu_switch
    .hidden kiln_emu_switch
    .type kiln_emu_switch, @function
kiln_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size kiln_emu_switch, .-kiln_emu_switch
)");

inline void yield(FiberState state)
{
    t_fiber->state = state;
    kiln_emu_switch(&t_fiber->sp, t_block->scheduler_sp);
}

[[noreturn]] inline void fiber_main()
{
    t_block->entry(t_block->args);
    t_fiber->state = Done;
    kiln_emu_switch(&t_fiber->sp, t_block->scheduler_sp);
    __builtin_unreachable();
}

inline char* stacks()
{
    if (!t_stacks)
    {
        size_t page = 4096;
        size_t bytes = (size_t)MaxThreads * (StackBytes + page);
        void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (memory == MAP_FAILED) return nullptr;
        for (int i = 0; i < MaxThreads; i++) mprotect((char*)memory + (size_t)i * (StackBytes + page), page, PROT_NONE);
        t_stacks = (char*)memory;
    }
    return t_stacks;
}

inline void start_fiber(Fiber& fiber, int index)
{
    size_t page = 4096;
    char* top = stacks() + (size_t)(index + 1) * (StackBytes + page);
    void** sp = (void**)top;
    *--sp = nullptr;               // keeps fiber_main's entry stack 16-byte aligned minus the return address
    *--sp = (void*)&fiber_main;    // where the first switch "returns" to
    for (int r = 0; r < 6; r++) *--sp = nullptr; // rbp, rbx, r12-r15
    fiber.sp = sp;
    fiber.parity = 0;
    fiber.state = Ready;
}

// Runs one block to completion. Returns false on a deadlock (threads of a warp or block waiting on different
// barriers), which a correct kernel never reaches.
inline bool run_block(Block& block, bool reverse)
{
    if (!stacks()) return false;
    int n = block.count;
    for (int i = 0; i < n; i++) start_fiber(block.fibers[i], i);
    int live = n;
    Block* saved_block = t_block;
    t_block = &block;
    bool ok = true;
    while (live > 0)
    {
        for (int k = 0; k < n; k++)
        {
            Fiber& fiber = block.fibers[reverse ? n - 1 - k : k];
            if (fiber.state != Ready) continue;
            t_fiber = &fiber;
            kiln_emu_switch(&block.scheduler_sp, fiber.sp);
            if (fiber.state == Done) live--;
        }
        if (live == 0) break;
        // Release every warp whose live lanes all wait at a warp primitive, else the block when all wait at
        // __syncthreads (threads that have returned count as arrived, as on Volta and later).
        bool released = false;
        for (int first = 0; first < n; first += 32)
        {
            int waiting = 0, others = 0;
            for (int i = first; i < first + 32 && i < n; i++)
            {
                if (block.fibers[i].state == AtWarpSync) waiting++;
                else if (block.fibers[i].state != Done) others++;
            }
            if (waiting > 0 && others == 0)
            {
                for (int i = first; i < first + 32 && i < n; i++)
                    if (block.fibers[i].state == AtWarpSync) block.fibers[i].state = Ready;
                released = true;
            }
        }
        if (!released)
        {
            bool all_at_barrier = true;
            for (int i = 0; i < n; i++)
                if (block.fibers[i].state != Done && block.fibers[i].state != AtBarrier) all_at_barrier = false;
            if (all_at_barrier)
            {
                for (int i = 0; i < n; i++)
                    if (block.fibers[i].state == AtBarrier) block.fibers[i].state = Ready;
                released = true;
            }
        }
        if (!released)
        {
            ok = false;
            break;
        }
    }
    t_block = saved_block;
    return ok;
}

// ---- warp exchange ----------------------------------------------------------------------------------------------
// Each lane writes its value into its slot, waits for the warp, reads the source lane's slot. Shuffles alternate
// between two buffers, so a lane's next write never lands on a slot another lane has yet to read.
inline int lane_id() { return t_fiber->linear & 31; }

inline unsigned long long* exchange(unsigned long long value)
{
    Fiber* fiber = t_fiber;
    int parity = fiber->parity;
    fiber->parity ^= 1;
    unsigned long long* slots = t_block->exchange[parity][fiber->linear >> 5];
    slots[fiber->linear & 31] = value;
    yield(AtWarpSync);
    return slots;
}

template <class T> inline T shuffle_from(T value, int source)
{
    unsigned long long bits = 0;
    memcpy(&bits, &value, sizeof(T));
    unsigned long long* slots = exchange(bits);
    T result;
    memcpy(&result, &slots[source & 31], sizeof(T));
    return result;
}

inline unsigned int ballot(int predicate)
{
    unsigned long long* slots = exchange(predicate ? 1ull : 0ull);
    unsigned int mask = 0;
    int first = t_fiber->linear & ~31;
    for (int i = 0; i < 32 && first + i < t_block->count; i++)
        if (slots[i] && t_block->fibers[first + i].state != Done) mask |= 1u << i;
    return mask;
}

// ---- launching --------------------------------------------------------------------------------------------------
// Unpacks the driver's argument array (one pointer to each value) into a call with the kernel's own parameters.
template <class... P, size_t... I>
inline void call(void (*kernel)(P...), void** args, std::index_sequence<I...>)
{
    kernel(*static_cast<P*>(args[I])...);
}

template <class K> struct Arity;
template <class... P> struct Arity<void (*)(P...)>
{
    static constexpr int count = sizeof...(P);
    static_assert(sizeof...(P) <= 32, "the emulator keeps at most 32 kernel parameters");
    static void sizes(size_t* out)
    {
        size_t values[] = {sizeof(P)..., 0};
        for (int i = 0; i < count; i++) out[i] = values[i];
    }
};

template <auto Kernel> inline void run_thread(void** args)
{
    call(Kernel, args, std::make_index_sequence<Arity<decltype(Kernel)>::count>{});
}

template <auto Kernel> inline int launch(const unsigned* grid_dims, const unsigned* block_dims, void** args)
{
    dim3 grid(grid_dims[0], grid_dims[1], grid_dims[2]);
    dim3 block(block_dims[0], block_dims[1], block_dims[2]);
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > MaxThreads || grid.x == 0 || grid.y == 0 || grid.z == 0) return 1; // CUDA_ERROR_INVALID_VALUE
    static thread_local Block* state = new Block();
    Block& b = *state;
    b.count = (int)threads;
    b.bdim = block;
    b.gdim = grid;
    b.entry = &run_thread<Kernel>;
    b.args = args;
    for (int i = 0; i < b.count; i++)
    {
        b.fibers[i].linear = i;
        b.fibers[i].tid = {(unsigned)i % block.x, (unsigned)(i / block.x) % block.y, (unsigned)(i / (block.x * block.y))};
    }
    unsigned long long linear = 0;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++, linear++)
            {
                b.bid = {x, y, z};
                if (!run_block(b, (linear & 1) != 0)) return 719; // CUDA_ERROR_LAUNCH_FAILED
            }
    return 0;
}

template <auto Kernel> inline KernelInfo describe()
{
    KernelInfo info{};
    info.launch = &launch<Kernel>;
    info.parameter_count = Arity<decltype(Kernel)>::count;
    Arity<decltype(Kernel)>::sizes(info.parameter_sizes);
    return info;
}
} // namespace kiln_emu

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
