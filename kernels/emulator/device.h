// The emulator's shared state: devices, streams with graph capture, and the work a stream carries.
// Everything runs on the calling thread at enqueue time (a stream is always idle when its call returns), except
// while a stream is being captured, when work is recorded into the graph instead.
#ifndef KILN_EMU_DEVICE_H
#define KILN_EMU_DEVICE_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln_emu
{
// One unit of stream work: a kernel launch, a copy, a product, an all-reduce. Returns a CUDA driver status.
using Work = std::function<int()>;

struct Graph
{
    std::vector<Work> nodes;
};

struct Stream
{
    Graph* capture = nullptr; // non-null while capturing
};

// Runs work now, or records it when the stream is capturing. Stream 0 (the legacy default stream) never captures.
int submit(void* stream, Work work);

int device_count();

// Half precision to float, for cuBLAS products over f16 inputs.
float half_to_float(uint16_t h);
inline float bf16_to_float(uint16_t v)
{
    uint32_t bits = (uint32_t)v << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}
uint16_t float_to_bf16(float f);
} // namespace kiln_emu

#endif
