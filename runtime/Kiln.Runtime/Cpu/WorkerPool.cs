using System.Runtime.ExceptionServices;

namespace Kiln.Runtime.Cpu;

/// <summary>One unit of parallel work: <see cref="Execute"/> runs item <c>item</c> on worker <c>worker</c>.</summary>
public interface IParallelWork
{
    void Execute(int item, int worker);
}

/// <summary>
/// A fixed set of threads that run the items of one <see cref="IParallelWork"/> at a time, claiming items from a shared
/// counter. Unlike Parallel.For it allocates nothing per call, so a decode step stays allocation-free, and a worker
/// index lets kernels keep per-thread scratch buffers.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    private readonly ManualResetEventSlim _done = new(false);
    private IParallelWork? _work;
    private int _items;
    private int _next;
    private int _pending;
    private volatile bool _stopping;
    private ExceptionDispatchInfo? _failure;

    public WorkerPool(int workerCount)
    {
        WorkerCount = Math.Max(1, workerCount);
        _threads = new Thread[WorkerCount - 1];
        _wake = new SemaphoreSlim[WorkerCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _wake[i] = new SemaphoreSlim(0);
            _threads[i] = new Thread(() => Loop(worker)) { IsBackground = true, Name = $"kiln-cpu-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Workers, including the calling thread, which always takes part as worker 0.</summary>
    public int WorkerCount { get; }

    public void Run(IParallelWork work, int items)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (items <= 0)
        {
            return;
        }

        if (items == 1 || _threads.Length == 0)
        {
            for (int i = 0; i < items; i++)
            {
                work.Execute(i, 0);
            }

            return;
        }

        _work = work;
        _items = items;
        _next = 0;
        _failure = null;
        int helpers = Math.Min(_threads.Length, items - 1);
        _pending = helpers;
        _done.Reset();
        for (int i = 0; i < helpers; i++)
        {
            _wake[i].Release();
        }

        Drain(0);
        _done.Wait();
        _work = null;
        _failure?.Throw();
    }

    private void Loop(int worker)
    {
        while (true)
        {
            _wake[worker - 1].Wait();
            if (_stopping)
            {
                return;
            }

            Drain(worker);
            if (Interlocked.Decrement(ref _pending) == 0)
            {
                _done.Set();
            }
        }
    }

    private void Drain(int worker)
    {
        var work = _work!;
        int item;
        while ((item = Interlocked.Increment(ref _next) - 1) < _items)
        {
            try
            {
                work.Execute(item, worker);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
            }
        }
    }

    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        foreach (var wake in _wake)
        {
            wake.Release();
        }

        foreach (var thread in _threads)
        {
            thread.Join();
        }

        foreach (var wake in _wake)
        {
            wake.Dispose();
        }

        _done.Dispose();
    }
}
