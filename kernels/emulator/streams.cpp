// The driver's streams, events and CUDA graphs, on the CPU. Work runs on the calling thread when it is enqueued, so a
// stream is always idle when its call returns; while a stream is captured, its work is recorded into the graph, and
// launching the graph's instance runs the recorded work in order.
#include <chrono>
#include <cstdint>

#include "device.h"

using namespace kiln_emu;

namespace
{
enum : int
{
    Success = 0,
    InvalidValue = 1,
    InvalidHandle = 400,
    StreamCaptureUnsupported = 900,
};

struct Event
{
    double milliseconds = 0;
};

double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool is_stream_handle(void* stream) { return (uintptr_t)stream > 16; } // 0, 1 and 2 are the built-in streams
} // namespace

int kiln_emu::submit(void* stream, Work work)
{
    if (is_stream_handle(stream))
    {
        if (Graph* graph = static_cast<Stream*>(stream)->capture)
        {
            graph->nodes.push_back(std::move(work));
            return Success;
        }
    }
    return work();
}

extern "C" {
int cuStreamCreate(void** stream, unsigned)
{
    *stream = new Stream();
    return Success;
}

int cuStreamDestroy_v2(void* stream)
{
    if (is_stream_handle(stream)) delete static_cast<Stream*>(stream);
    return Success;
}

int cuStreamSynchronize(void* stream)
{
    if (is_stream_handle(stream) && static_cast<Stream*>(stream)->capture) return StreamCaptureUnsupported;
    return Success;
}

int cuEventCreate(void** event, unsigned)
{
    *event = new Event();
    return Success;
}

int cuEventDestroy_v2(void* event)
{
    delete static_cast<Event*>(event);
    return Success;
}

int cuEventRecord(void* event, void* stream)
{
    auto* e = static_cast<Event*>(event);
    return submit(stream, [e]() { e->milliseconds = now_ms(); return Success; });
}

int cuEventSynchronize(void*) { return Success; }

int cuEventElapsedTime(float* milliseconds, void* start, void* end)
{
    *milliseconds = (float)(static_cast<Event*>(end)->milliseconds - static_cast<Event*>(start)->milliseconds);
    return Success;
}

int cuEventElapsedTime_v2(float* milliseconds, void* start, void* end) { return cuEventElapsedTime(milliseconds, start, end); }

int cuStreamBeginCapture_v2(void* stream, int)
{
    if (!is_stream_handle(stream)) return StreamCaptureUnsupported;
    auto* s = static_cast<Stream*>(stream);
    if (s->capture) return StreamCaptureUnsupported;
    s->capture = new Graph();
    return Success;
}

int cuStreamEndCapture(void* stream, void** graph)
{
    if (!is_stream_handle(stream) || !static_cast<Stream*>(stream)->capture) return InvalidValue;
    auto* s = static_cast<Stream*>(stream);
    *graph = s->capture;
    s->capture = nullptr;
    return Success;
}

int cuGraphInstantiateWithFlags(void** executable, void* graph, unsigned long long)
{
    *executable = new Graph(*static_cast<Graph*>(graph));
    return Success;
}

int cuGraphLaunch(void* executable, void* stream)
{
    auto* graph = static_cast<Graph*>(executable);
    if (!graph) return InvalidHandle;
    for (Work& node : graph->nodes)
    {
        int status = submit(stream, node);
        if (status != Success) return status;
    }
    return Success;
}

int cuGraphExecDestroy(void* executable)
{
    delete static_cast<Graph*>(executable);
    return Success;
}

int cuGraphDestroy(void* graph)
{
    delete static_cast<Graph*>(graph);
    return Success;
}

}
