// kiln_emu_fibers.h: the fiber runtime of kiln_emu_kernel.h. Each CUDA thread of a block is a fiber; a block runs
// its fibers on one OS thread until each returns or waits at a barrier or a warp primitive, then releases the warps
// and blocks whose live threads all wait; a launch runs its blocks one after another.
#ifndef KILN_EMU_FIBERS_H
#define KILN_EMU_FIBERS_H

// ---- fibers -----------------------------------------------------------------------------------------------------
namespace kiln_emu
{
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
inline thread_local char* t_stacks; // the launching thread's stacks (ThreadWorkspace), set by each launch

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

inline void start_fiber(Fiber& fiber, int index)
{
    char* top = t_stacks + (size_t)(index + 1) * (StackBytes + GuardBytes);
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

template <auto Kernel> inline int launch(const unsigned* grid_dims, const unsigned* block_dims, void** args, const ThreadWorkspace* workspace)
{
    dim3 grid(grid_dims[0], grid_dims[1], grid_dims[2]);
    dim3 block(block_dims[0], block_dims[1], block_dims[2]);
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > MaxThreads || grid.x == 0 || grid.y == 0 || grid.z == 0) return 1; // CUDA_ERROR_INVALID_VALUE
    t_stacks = workspace->stacks;
    Block& b = *static_cast<Block*>(workspace->block_state);
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
    info.block_state_bytes = sizeof(Block);
    return info;
}
} // namespace kiln_emu

#endif // KILN_EMU_FIBERS_H
