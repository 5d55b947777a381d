// What a kernel library built by the emulated NVRTC exports for each kernel, read by the emulated driver.
#ifndef KILN_EMU_KERNEL_ABI_H
#define KILN_EMU_KERNEL_ABI_H

#include <stddef.h>

namespace kiln_emu
{
struct KernelInfo
{
    // Runs the whole grid on the calling thread; returns 0 or a CUDA driver status.
    int (*launch)(const unsigned* grid, const unsigned* block, void** args);
    int parameter_count;
    size_t parameter_sizes[32]; // so a launch recorded into a graph can keep copies of its arguments
};
} // namespace kiln_emu

#endif
