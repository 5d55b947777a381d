// The CUDA driver API calls Kiln binds (kernels/Kiln.Kernels.Cuda/Native/Driver.cs), on the CPU: devices, contexts,
// memory, modules and launches (streams, events and graphs are in streams.cpp).
// Device memory is host memory, so a CUdeviceptr is a host address. A module is the shared library that the
// emulated NVRTC built (an ELF image, like a cubin); a function is its exported KernelInfo.
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "device.h"
#include "kernel_abi.h"

using namespace kiln_emu;

namespace
{
enum : int
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NoDevice = 100,
    InvalidDevice = 101,
    InvalidImage = 200,
    InvalidContext = 201,
    InvalidHandle = 400,
    NotFound = 500,
    NotSupported = 801,
    LaunchFailed = 719,
    StreamCaptureUnsupported = 900,
    Unknown = 999,
};

struct Function
{
    const KernelInfo* info;
    std::string name;
};

struct Module
{
    void* library;
    int fd;
    std::map<std::string, Function> functions;
};

std::mutex g_memory_mutex;
std::map<uintptr_t, std::pair<size_t, int>> g_allocations; // address -> (bytes, device)
size_t g_used[16];
thread_local int t_device = -1;

size_t total_memory()
{
    const char* configured = getenv("KILN_EMU_MEMORY_MB");
    long megabytes = configured ? atol(configured) : 4096;
    return (size_t)(megabytes > 0 ? megabytes : 4096) << 20;
}

// KILN_EMU_FAIL_KERNEL=NAME@DEVICE makes every launch of kernel NAME on that device fail (CUDA_ERROR_LAUNCH_FAILED):
// how the tests make one rank of a tensor-parallel group fail.
bool injected_failure(const std::string& name)
{
    const char* configured = getenv("KILN_EMU_FAIL_KERNEL");
    return configured && *configured && name + "@" + std::to_string(t_device) == configured;
}

// The launching thread's ThreadWorkspace (kernel_abi.h): its fiber stacks, each above a guard page, and a block's
// state, made on the thread's first launch and released when the thread ends. Each guard page is a mapping of its
// own (about 2,000 a pool), so keeping the pools of threads gone (engine loops, tensor-parallel ranks) would reach the
// kernel's limit on mappings (vm.max_map_count), where munmap fails and the .NET runtime aborts.
struct OwnedWorkspace
{
    ThreadWorkspace view{};
    size_t state_bytes = 0;

    ~OwnedWorkspace()
    {
        if (view.stacks) munmap(view.stacks, StackPoolBytes);
        operator delete(view.block_state);
    }

    const ThreadWorkspace* get(size_t block_state_bytes)
    {
        if (!view.stacks)
        {
            void* memory = mmap(nullptr, StackPoolBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (memory == MAP_FAILED) return nullptr;
            for (int i = 0; i < MaxThreads; i++) mprotect((char*)memory + (size_t)i * (StackBytes + GuardBytes), GuardBytes, PROT_NONE);
            view.stacks = (char*)memory;
        }
        if (state_bytes < block_state_bytes)
        {
            operator delete(view.block_state);
            view.block_state = operator new(block_state_bytes);
            state_bytes = block_state_bytes;
        }
        return &view;
    }
};

thread_local OwnedWorkspace t_workspace;

int launch(Function* function, const unsigned* grid, const unsigned* block, void* stream, void** params, void** extra)
{
    if (!function) return InvalidHandle;
    if (injected_failure(function->name))
    {
        fprintf(stderr, "kiln cuda emulator: launch of %s on device %d failed as KILN_EMU_FAIL_KERNEL asks\n", function->name.c_str(), t_device);
        return LaunchFailed;
    }
    if (extra || !params) return NotSupported;
    const KernelInfo* info = function->info;
    // Copy the arguments' values: a launch recorded into a graph runs after the caller's frame is gone.
    auto values = std::make_shared<std::vector<unsigned long long>>();
    std::vector<size_t> offsets;
    size_t words = 0;
    for (int i = 0; i < info->parameter_count; i++)
    {
        offsets.push_back(words);
        words += (info->parameter_sizes[i] + 7) / 8;
    }
    values->resize(words + 1);
    for (int i = 0; i < info->parameter_count; i++) memcpy(values->data() + offsets[i], params[i], info->parameter_sizes[i]);
    unsigned g[3] = {grid[0], grid[1], grid[2]};
    unsigned b[3] = {block[0], block[1], block[2]};
    return submit(stream, [function, values, offsets, g, b]() {
        void* arguments[32];
        for (size_t i = 0; i < offsets.size(); i++) arguments[i] = values->data() + offsets[i];
        const ThreadWorkspace* workspace = t_workspace.get(function->info->block_state_bytes);
        int status = workspace ? function->info->launch(g, b, arguments, workspace) : OutOfMemory;
        if (status != 0)
            fprintf(stderr, "kiln cuda emulator: kernel %s (grid %ux%ux%u, block %ux%ux%u) failed: %s\n", function->name.c_str(),
                    g[0], g[1], g[2], b[0], b[1], b[2], status == LaunchFailed ? "its threads wait on different barriers" : "invalid launch");
        return status;
    });
}

size_t elf_size(const unsigned char* image)
{
    if (memcmp(image, "\x7f" "ELF", 4) != 0 || image[4] != 2) return 0; // 64-bit ELF only
    uint64_t section_offset;
    uint16_t entry_size, entries;
    memcpy(&section_offset, image + 0x28, 8);
    memcpy(&entry_size, image + 0x3A, 2);
    memcpy(&entries, image + 0x3C, 2);
    return section_offset + (size_t)entry_size * entries;
}
} // namespace

int kiln_emu::device_count()
{
    const char* configured = getenv("KILN_EMU_DEVICES");
    int count = configured ? atoi(configured) : 1;
    return count < 0 ? 0 : (count > 16 ? 16 : count);
}

extern "C" {
int cuInit(unsigned) { return device_count() > 0 ? Success : NoDevice; }
int cuDriverGetVersion(int* version) { *version = 13000; return Success; }
int cuDeviceGetCount(int* count) { *count = device_count(); return Success; }

int cuDeviceGet(int* device, int ordinal)
{
    if (ordinal < 0 || ordinal >= device_count()) return InvalidDevice;
    *device = ordinal;
    return Success;
}

int cuDeviceGetName(char* name, int length, int device)
{
    if (device < 0 || device >= device_count()) return InvalidDevice;
    snprintf(name, (size_t)length, "Kiln CUDA emulator (CPU)");
    return Success;
}

int cuDeviceGetAttribute(int* value, int attribute, int device)
{
    if (device < 0 || device >= device_count()) return InvalidDevice;
    switch (attribute)
    {
    case 75: *value = 9; break; // compute capability 9.0: the Hopper code paths run
    case 76: *value = 0; break;
    case 16: *value = 4; break; // multiprocessors
    default: *value = 0; break;
    }
    return Success;
}

int cuDeviceTotalMem_v2(size_t* bytes, int device)
{
    if (device < 0 || device >= device_count()) return InvalidDevice;
    *bytes = total_memory();
    return Success;
}

int cuDevicePrimaryCtxRetain(void** context, int device)
{
    if (device < 0 || device >= device_count()) return InvalidDevice;
    *context = (void*)(uintptr_t)(device + 1);
    return Success;
}

int cuDevicePrimaryCtxRelease_v2(int) { return Success; }

int cuCtxSetCurrent(void* context)
{
    t_device = (int)(uintptr_t)context - 1;
    return Success;
}

int cuCtxSynchronize() { return t_device < 0 ? InvalidContext : Success; }

int cuMemGetInfo_v2(size_t* free, size_t* total)
{
    if (t_device < 0) return InvalidContext;
    std::lock_guard lock(g_memory_mutex);
    *total = total_memory();
    *free = *total - g_used[t_device];
    return Success;
}

int cuMemAlloc_v2(unsigned long long* pointer, size_t bytes)
{
    if (t_device < 0) return InvalidContext;
    if (bytes == 0) return InvalidValue;
    std::lock_guard lock(g_memory_mutex);
    if (g_used[t_device] + bytes > total_memory()) return OutOfMemory;
    void* memory = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!memory) return OutOfMemory;
    g_allocations[(uintptr_t)memory] = {bytes, t_device};
    g_used[t_device] += bytes;
    *pointer = (uintptr_t)memory;
    return Success;
}

int cuMemFree_v2(unsigned long long pointer)
{
    std::lock_guard lock(g_memory_mutex);
    auto found = g_allocations.find((uintptr_t)pointer);
    if (found == g_allocations.end()) return InvalidValue;
    g_used[found->second.second] -= found->second.first;
    g_allocations.erase(found);
    free((void*)pointer);
    return Success;
}

int cuMemAllocHost_v2(void** pointer, size_t bytes)
{
    *pointer = aligned_alloc(256, (bytes + 255) / 256 * 256);
    return *pointer ? Success : OutOfMemory;
}

int cuMemFreeHost(void* pointer)
{
    free(pointer);
    return Success;
}

int cuMemcpyHtoDAsync_v2(unsigned long long destination, const void* source, size_t bytes, void* stream)
{
    return submit(stream, [=]() { memcpy((void*)destination, source, bytes); return Success; });
}

int cuMemcpyDtoHAsync_v2(void* destination, unsigned long long source, size_t bytes, void* stream)
{
    return submit(stream, [=]() { memcpy(destination, (const void*)source, bytes); return Success; });
}

int cuMemcpyDtoDAsync_v2(unsigned long long destination, unsigned long long source, size_t bytes, void* stream)
{
    return submit(stream, [=]() { memmove((void*)destination, (const void*)source, bytes); return Success; });
}

int cuMemsetD8Async(unsigned long long destination, unsigned char value, size_t count, void* stream)
{
    return submit(stream, [=]() { memset((void*)destination, value, count); return Success; });
}

int cuMemsetD32Async(unsigned long long destination, unsigned value, size_t count, void* stream)
{
    return submit(stream, [=]() {
        unsigned* words = (unsigned*)destination;
        for (size_t i = 0; i < count; i++) words[i] = value;
        return Success;
    });
}

int cuModuleLoadData(void** module, const void* image)
{
    size_t size = elf_size((const unsigned char*)image);
    if (size == 0) return InvalidImage;
    // The fd stays open while the module is loaded: the loader identifies a library by its path, and a reused
    // /proc/self/fd/N would hand back the previous module.
    int fd = memfd_create("kiln-emulated-kernels", 0);
    if (fd < 0 || write(fd, image, size) != (ssize_t)size)
    {
        if (fd >= 0) close(fd);
        return InvalidImage;
    }
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library)
    {
        fprintf(stderr, "kiln cuda emulator: cannot load the kernel image: %s\n", dlerror());
        close(fd);
        return InvalidImage;
    }
    *module = new Module{library, fd, {}};
    return Success;
}

int cuModuleUnload(void* module)
{
    auto* m = static_cast<Module*>(module);
    if (!m) return InvalidHandle;
    dlclose(m->library);
    close(m->fd);
    delete m;
    return Success;
}

int cuModuleGetFunction(void** function, void* module, const char* name)
{
    auto* m = static_cast<Module*>(module);
    if (!m) return InvalidHandle;
    auto found = m->functions.find(name);
    if (found == m->functions.end())
    {
        auto* info = static_cast<const KernelInfo*>(dlsym(m->library, ("kiln_emu_kernel_" + std::string(name)).c_str()));
        if (!info) return NotFound;
        found = m->functions.emplace(name, Function{info, name}).first;
    }
    *function = &found->second;
    return Success;
}

int cuFuncSetAttribute(void*, int, int) { return Success; }

int cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned,
                   void* stream, void** params, void** extra)
{
    unsigned grid[3] = {gx, gy, gz};
    unsigned block[3] = {bx, by, bz};
    return launch(static_cast<Function*>(function), grid, block, stream, params, extra);
}

struct LaunchConfig
{
    unsigned grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes;
    void* stream;
    void* attributes; // launch attributes (programmatic dependent launch) change only timing, which is not modelled
    unsigned attribute_count;
};

int cuLaunchKernelEx(const LaunchConfig* config, void* function, void** params, void** extra)
{
    unsigned grid[3] = {config->grid_x, config->grid_y, config->grid_z};
    unsigned block[3] = {config->block_x, config->block_y, config->block_z};
    return launch(static_cast<Function*>(function), grid, block, config->stream, params, extra);
}

int cuGetErrorName(int status, const char** name)
{
    switch (status)
    {
    case Success: *name = "CUDA_SUCCESS"; break;
    case InvalidValue: *name = "CUDA_ERROR_INVALID_VALUE"; break;
    case OutOfMemory: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case NoDevice: *name = "CUDA_ERROR_NO_DEVICE"; break;
    case InvalidDevice: *name = "CUDA_ERROR_INVALID_DEVICE"; break;
    case InvalidImage: *name = "CUDA_ERROR_INVALID_IMAGE"; break;
    case InvalidContext: *name = "CUDA_ERROR_INVALID_CONTEXT"; break;
    case InvalidHandle: *name = "CUDA_ERROR_INVALID_HANDLE"; break;
    case NotFound: *name = "CUDA_ERROR_NOT_FOUND"; break;
    case LaunchFailed: *name = "CUDA_ERROR_LAUNCH_FAILED"; break;
    case NotSupported: *name = "CUDA_ERROR_NOT_SUPPORTED"; break;
    case StreamCaptureUnsupported: *name = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"; break;
    default: *name = "CUDA_ERROR_UNKNOWN"; return InvalidValue;
    }
    return Success;
}
}
