using Kiln.Kernels.Cuda.Native;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>
/// One rank's NCCL communicator for the tensor-parallel all-reduce. A group is made in one process with one rank per
/// GPU (<see cref="CreateGroup"/>); on a one-GPU machine that is a group of one, whose all-reduce is a copy.
/// </summary>
public sealed class NcclCommunicator : IDisposable
{
    private nint _comm;

    private NcclCommunicator(nint comm, int rank, int size)
    {
        _comm = comm;
        Rank = rank;
        Size = size;
    }

    public int Rank { get; }

    public int Size { get; }

    public static unsafe NcclCommunicator[] CreateGroup(IReadOnlyList<int> devices)
    {
        CudaLibraries.EnsureResolver();
        var comms = new nint[devices.Count];
        var ordinals = devices.ToArray();
        fixed (nint* c = comms)
        fixed (int* d = ordinals)
        {
            Nccl.Check(Nccl.ncclCommInitAll(c, ordinals.Length, d));
        }

        return [.. comms.Select((comm, rank) => new NcclCommunicator(comm, rank, comms.Length))];
    }

    public static string Version()
    {
        CudaLibraries.EnsureResolver();
        Nccl.Check(Nccl.ncclGetVersion(out int version));
        return $"{version / 10000}.{version / 100 % 100}.{version % 100}";
    }

    /// <summary>True once <see cref="Abort"/> ran: NCCL cannot resume a communicator, so the group is done.</summary>
    public bool Aborted { get; private set; }

    /// <summary>Sums <paramref name="count"/> floats at <paramref name="buffer"/> across the group, in place, on <paramref name="stream"/>.</summary>
    public void AllReduceSum(ulong buffer, long count, nint stream)
    {
        nint comm = Volatile.Read(ref _comm);
        if (comm == 0)
        {
            throw new InvalidOperationException($"NCCL rank {Rank} was aborted after a rank of its group failed");
        }

        Nccl.Check(Nccl.ncclAllReduce(buffer, buffer, (nuint)count, Nccl.Float32, Nccl.Sum, comm, stream));
    }

    /// <summary>
    /// Aborts this rank's pending and future collectives (ncclCommAbort), from any thread: a rank that failed calls it
    /// on every communicator of its group, so the others end their all-reduce with an error instead of waiting forever.
    /// </summary>
    public void Abort()
    {
        nint comm = Interlocked.Exchange(ref _comm, 0);
        if (comm != 0)
        {
            Aborted = true;
            Nccl.ncclCommAbort(comm);
        }
    }

    public void Dispose()
    {
        nint comm = Interlocked.Exchange(ref _comm, 0);
        if (comm != 0)
        {
            Nccl.ncclCommDestroy(comm);
        }
    }
}
