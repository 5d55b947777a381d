// What a kernel library built by the emulated NVRTC exports for each kernel, read by the emulated driver.
#ifndef KILN_EMU_KERNEL_ABI_H
#define KILN_EMU_KERNEL_ABI_H

#include <stddef.h>

namespace kiln_emu
{
constexpr int MaxThreads = 1024;           // threads a block
constexpr size_t StackBytes = 64 * 1024;   // a fiber's stack
constexpr size_t GuardBytes = 4096;        // the inaccessible page below each stack
constexpr size_t StackPoolBytes = (size_t)MaxThreads * (StackBytes + GuardBytes);

// What a launch runs on, made by the driver once per OS thread and released when the thread ends: MaxThreads fiber
// stacks (StackPoolBytes, each stack above its guard page) and room for a block's state (block_state_bytes of the
// kernel). The kernel libraries keep no per-thread memory of their own: a thread_local with a destructor in one
// would keep it loaded after cuModuleUnload, and the loader would hand that library back for the next module read
// from the same /proc/self/fd path.
struct ThreadWorkspace
{
    char* stacks;
    void* block_state;
};

struct KernelInfo
{
    // Runs the whole grid on the calling thread; returns 0 or a CUDA driver status.
    int (*launch)(const unsigned* grid, const unsigned* block, void** args, const ThreadWorkspace* workspace);
    int parameter_count;
    size_t parameter_sizes[32]; // so a launch recorded into a graph can keep copies of its arguments
    size_t block_state_bytes;
};
} // namespace kiln_emu

#endif
