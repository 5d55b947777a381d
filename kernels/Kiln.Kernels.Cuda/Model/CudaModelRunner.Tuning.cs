using System.Diagnostics;
using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Backends;

namespace Kiln.Kernels.Cuda.Model;

/// <summary>Warm-up trials of the matrix-vector kernels (<see cref="GemvChoices"/>).</summary>
public sealed partial class CudaModelRunner
{
    /// <summary>Rounds of a trial; each alternative keeps its best round (the first launch of a kernel also loads it).</summary>
    private const int TuningRounds = 3;

    /// <summary>The layer forms (fused or not) whose products were tried.</summary>
    private readonly HashSet<bool> _tunedFusion = [];

    /// <summary>
    /// Times every alternative of every product a decode step launches, at one token and at up to eight, and keeps the
    /// fastest (<see cref="GemvChoices"/>). The steps are real ones over the model's weights (every layer's matrices in
    /// turn, as decode reads them, not one matrix from the L2 cache), on a scratch cache of one block a sequence,
    /// eager and timed launch by launch. The schedule depends only on the options, so the ranks of a tensor-parallel
    /// group, tuning together, run the same steps and meet in every all-reduce.
    /// </summary>
    internal void TuneProducts()
    {
        if (!_options.TuneProducts || _weights.LargestMatrixBytes < _options.TuneMinimumBytes || !_tunedFusion.Add(_fusedOverride ?? _options.FusedSmallBatch))
        {
            return;
        }

        int many = Math.Min(GemvMaxTokens, Math.Min(MaxBatchTokens, _options.MaxLogitRows));
        var previous = Profiler;
        long started = Stopwatch.GetTimestamp();
        try
        {
            foreach (int tokens in many > 1 ? [1, many] : new[] { 1 })
            {
                using var cache = (CudaKvCache)CreateKvCache(tokens, 16, tokens, 1);
                int[] sequences = [.. Enumerable.Range(0, tokens)];
                cache.Bind(sequences, 1, tokens);
                int[] zeros = new int[tokens];
                int[] ones = [.. Enumerable.Repeat(1, tokens)];
                var rounds = new List<IReadOnlyList<(string, double, int)>>();
                using var profiler = new KernelProfiler();
                Profiler = profiler;
                for (int round = 0; round < TuningRounds; round++)
                {
                    for (int alternative = 0; alternative < GemvVariant.MostAlternatives; alternative++)
                    {
                        _gemv.Trial = alternative;
                        Run(new ForwardBatch(zeros, zeros, sequences, ones), cache, allPositions: false);
                    }

                    rounds.Add(profiler.Collect());
                }

                _gemv.Trial = -1;
                _gemv.Choose(rounds, tokens);
                Profiler = null;
                ConfirmAgainstDefaults(zeros, sequences, ones, cache);
            }
        }
        finally
        {
            _gemv.Trial = -1;
            Profiler = previous;
            _gemv.TrialTime += Stopwatch.GetElapsedTime(started);
        }
    }

    /// <summary>
    /// The trials time launches one by one, between events, where a kernel's prologue cannot overlap the previous
    /// kernel as it does in a graph. So their choices are checked in whole decode steps, replayed from CUDA graphs as
    /// serving runs them, against the defaults, alternately; they are kept unless the defaults are faster by more
    /// than 1%. The steps of this check are fixed in number, like the trials', for a tensor-parallel group's sake.
    /// </summary>
    private void ConfirmAgainstDefaults(int[] zeros, int[] sequences, int[] ones, CudaKvCache cache)
    {
        int tokens = sequences.Length;
        if (!_options.CudaGraphs || tokens > _options.MaxGraphBatch)
        {
            return;
        }

        const int Pairs = 3;
        var next = new int[tokens];
        var chosen = new double[Pairs];
        var defaults = new double[Pairs];
        bool usedDefaults = _gemv.UseDefaults;
        try
        {
            for (int pair = 0; pair < Pairs; pair++)
            {
                chosen[pair] = TimeGraphSteps(useDefaults: false);
                defaults[pair] = TimeGraphSteps(useDefaults: true);
            }
        }
        finally
        {
            _gemv.UseDefaults = usedDefaults;
            FinishAndDropGraphs(); // the graphs hold the scratch cache's addresses
        }

        Array.Sort(chosen);
        Array.Sort(defaults);
        _gemv.Confirm(tokens, chosen[Pairs / 2], defaults[Pairs / 2]);

        // Milliseconds a step over four replays of the graph, after one that captures it (or replays it warm).
        double TimeGraphSteps(bool useDefaults)
        {
            if (_gemv.UseDefaults != useDefaults)
            {
                FinishAndDropGraphs();
                _gemv.UseDefaults = useDefaults;
            }

            ForwardGreedy(new ForwardBatch(zeros, zeros, sequences, ones), cache, next);
            long started = Stopwatch.GetTimestamp();
            for (int step = 0; step < 4; step++)
            {
                ForwardGreedy(new ForwardBatch(zeros, zeros, sequences, ones), cache, next);
            }

            return Stopwatch.GetElapsedTime(started).TotalMilliseconds / 4;
        }
    }

    /// <summary>Launches the default kernels instead of the trials' choices, or the choices again (the benchmark's comparison); captured graphs are dropped.</summary>
    internal void SetTunedProducts(bool enabled)
    {
        FinishAndDropGraphs();
        _gemv.UseDefaults = !enabled;
    }
}
