using Kiln.Kernels.Cuda.Native;

namespace Kiln.Kernels.Cuda.Device;

/// <summary>
/// Times each launch of a step with CUDA events, by name: set on a runner, it runs steps eagerly (no graph) and
/// brackets every kernel and product. For the benchmark's --profile; never on the serving path.
/// </summary>
public sealed class KernelProfiler : IDisposable
{
    private readonly List<(string Name, nint Start, nint End)> _marks = [];
    private nint _pending;

    public void Begin(nint stream)
    {
        Driver.Check(Driver.cuEventCreate(out _pending, Driver.EventDefault));
        Driver.Check(Driver.cuEventRecord(_pending, stream));
    }

    public void End(string name, nint stream)
    {
        Driver.Check(Driver.cuEventCreate(out nint end, Driver.EventDefault));
        Driver.Check(Driver.cuEventRecord(end, stream));
        _marks.Add((name, _pending, end));
    }

    /// <summary>Milliseconds and calls per name since the last collection, largest first.</summary>
    public IReadOnlyList<(string Name, double Milliseconds, int Calls)> Collect()
    {
        var totals = new Dictionary<string, (double Ms, int Calls)>();
        foreach (var (name, start, end) in _marks)
        {
            Driver.Check(Driver.cuEventSynchronize(end));
            float ms = Driver.ElapsedMilliseconds(start, end);
            var (total, calls) = totals.GetValueOrDefault(name);
            totals[name] = (total + ms, calls + 1);
            Driver.cuEventDestroy(start);
            Driver.cuEventDestroy(end);
        }

        _marks.Clear();
        return [.. totals.Select(p => (p.Key, p.Value.Ms, p.Value.Calls)).OrderByDescending(p => p.Ms)];
    }

    public void Dispose() => Collect();
}
