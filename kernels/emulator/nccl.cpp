// NCCL's all-reduce between the ranks of one process, each driven by its own thread as on real GPUs (Kiln's
// RankGroup). A rank's all-reduce waits for the others; the last to arrive sums every rank's buffer in rank order
// and writes the sum to all of them. A rank that never arrives (a failed peer) times out after
// KILN_EMU_NCCL_TIMEOUT_S seconds (default 120) with ncclRemoteError, and ncclCommAbort (from any thread) releases
// the waiters at once with the same error.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device.h"

using namespace kiln_emu;

namespace
{
enum : int
{
    Success = 0,
    SystemError = 2,
    InvalidArgument = 4,
    RemoteError = 6,
};

struct Group
{
    explicit Group(int ranks) : size(ranks), slots(ranks) {}
    int size;
    std::mutex mutex;
    std::condition_variable changed;
    int arrived = 0;
    unsigned long long generation = 0;
    bool aborted = false;
    struct Slot
    {
        const float* send;
        float* receive;
        size_t count;
    };
    std::vector<Slot> slots;
};

struct Comm
{
    std::shared_ptr<Group> group;
    int rank;
};

struct UniqueId
{
    char bytes[128];
};

std::mutex g_registry_mutex;
std::map<std::string, std::weak_ptr<Group>> g_groups;
unsigned long long g_next_id;

int all_reduce(Comm* comm, const float* send, float* receive, size_t count)
{
    Group& g = *comm->group;
    std::unique_lock lock(g.mutex);
    if (g.aborted) return RemoteError;
    g.slots[comm->rank] = {send, receive, count};
    unsigned long long generation = g.generation;
    if (++g.arrived == g.size)
    {
        for (const Group::Slot& slot : g.slots)
            if (slot.count != count) return InvalidArgument;
        std::vector<float> sum(count, 0.0f);
        for (const Group::Slot& slot : g.slots)
            for (size_t i = 0; i < count; i++) sum[i] += slot.send[i];
        for (const Group::Slot& slot : g.slots) memcpy(slot.receive, sum.data(), count * sizeof(float));
        g.arrived = 0;
        g.generation++;
        g.changed.notify_all();
        return Success;
    }
    const char* configured = getenv("KILN_EMU_NCCL_TIMEOUT_S");
    auto timeout = std::chrono::seconds(configured ? atol(configured) : 120);
    if (!g.changed.wait_for(lock, timeout, [&] { return g.generation != generation || g.aborted; })) return RemoteError;
    return g.generation != generation ? Success : RemoteError;
}
} // namespace

extern "C" {
int ncclGetVersion(int* version)
{
    *version = 22000; // reported as 2.20.0
    return Success;
}

int ncclGetUniqueId(UniqueId* id)
{
    std::lock_guard lock(g_registry_mutex);
    memset(id->bytes, 0, sizeof id->bytes);
    snprintf(id->bytes, sizeof id->bytes, "kiln-emu-%d-%llu", (int)getpid(), ++g_next_id);
    return Success;
}

int ncclCommInitRank(Comm** comm, int ranks, UniqueId id, int rank)
{
    if (ranks < 1 || rank < 0 || rank >= ranks) return InvalidArgument;
    std::lock_guard lock(g_registry_mutex);
    std::string key(id.bytes, strnlen(id.bytes, sizeof id.bytes));
    std::shared_ptr<Group> group = g_groups[key].lock();
    if (!group)
    {
        group = std::make_shared<Group>(ranks);
        g_groups[key] = group;
    }
    if (group->size != ranks) return InvalidArgument;
    *comm = new Comm{group, rank};
    return Success;
}

int ncclCommInitAll(Comm** comms, int count, const int* devices)
{
    if (count < 1) return InvalidArgument;
    for (int i = 0; i < count; i++)
        if (devices && (devices[i] < 0 || devices[i] >= device_count())) return InvalidArgument;
    auto group = std::make_shared<Group>(count);
    for (int rank = 0; rank < count; rank++) comms[rank] = new Comm{group, rank};
    return Success;
}

int ncclCommDestroy(Comm* comm)
{
    delete comm;
    return Success;
}

int ncclCommAbort(Comm* comm)
{
    if (!comm) return InvalidArgument;
    {
        std::lock_guard lock(comm->group->mutex);
        comm->group->aborted = true;
    }
    comm->group->changed.notify_all();
    // The comm itself is kept: another rank's thread may still be inside an all-reduce on it, which is the case an
    // abort exists for. A few bytes a failed group.
    return Success;
}

int ncclAllReduce(const void* send, void* receive, size_t count, int type, int op, Comm* comm, void* stream)
{
    if (!comm || type != 7 || op != 0) return InvalidArgument; // float32 sums only: all Kiln asks for
    int status = submit(stream, [=]() { return all_reduce(comm, static_cast<const float*>(send), static_cast<float*>(receive), count); });
    return status;
}

int ncclGroupStart() { return Success; }
int ncclGroupEnd() { return Success; }

const char* ncclGetErrorString(int status)
{
    switch (status)
    {
    case Success: return "no error";
    case SystemError: return "unhandled system error";
    case InvalidArgument: return "invalid argument";
    case RemoteError: return "remote process exited or there was a network error (a rank did not reach the all-reduce)";
    default: return "internal error";
    }
}
}
