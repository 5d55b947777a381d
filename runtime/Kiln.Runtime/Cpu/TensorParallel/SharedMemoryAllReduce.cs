using System.Numerics.Tensors;

namespace Kiln.Runtime.Cpu.TensorParallel;

/// <summary>
/// All-reduce (sum) across the ranks of a CPU tensor-parallel group, in shared memory: every rank publishes its
/// buffer; each rank sums one slice of all buffers and writes the sum back into every buffer (reduce-scatter and
/// all-gather in one pass); a barrier on either side keeps the ranks in step. The CUDA backend does the same with NCCL.
/// </summary>
internal sealed unsafe class SharedMemoryAllReduce : IDisposable
{
    private readonly Barrier _barrier;
    private readonly nint[] _buffers;
    private readonly CancellationTokenSource _failed = new();

    public SharedMemoryAllReduce(int ranks)
    {
        Ranks = ranks;
        _barrier = new Barrier(ranks);
        _buffers = new nint[ranks];
    }

    public int Ranks { get; }

    /// <summary>Called by every rank with its own buffer of <paramref name="count"/> floats; returns with all buffers holding the sum.</summary>
    public void Sum(int rank, float* buffer, int count)
    {
        _buffers[rank] = (nint)buffer;
        _barrier.SignalAndWait(_failed.Token);

        int slice = (count + Ranks - 1) / Ranks;
        int start = Math.Min(count, rank * slice);
        int length = Math.Min(slice, count - start);
        if (length > 0)
        {
            var sum = new Span<float>((float*)_buffers[rank] + start, length);
            for (int other = 0; other < Ranks; other++)
            {
                if (other != rank)
                {
                    TensorPrimitives.Add(sum, new ReadOnlySpan<float>((float*)_buffers[other] + start, length), sum);
                }
            }

            for (int other = 0; other < Ranks; other++)
            {
                if (other != rank)
                {
                    sum.CopyTo(new Span<float>((float*)_buffers[other] + start, length));
                }
            }
        }

        _barrier.SignalAndWait(_failed.Token);
    }

    /// <summary>A rank failed: release the others from the barrier so the whole step fails instead of hanging.</summary>
    public void Fail() => _failed.Cancel();

    public bool HasFailed => _failed.IsCancellationRequested;

    public void Dispose()
    {
        _barrier.Dispose();
        _failed.Dispose();
    }
}

/// <summary>A rank's place in its group: its index and the group's all-reduce.</summary>
internal sealed record TensorParallelRank(int Rank, SharedMemoryAllReduce AllReduce);
