using System.Diagnostics;
using Kiln.Kernels.Cuda.Device;
using Kiln.Runtime.Cpu;

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
            }
        }
        finally
        {
            _gemv.Trial = -1;
            Profiler = previous;
            _gemv.TrialTime += Stopwatch.GetElapsedTime(started);
        }
    }

    /// <summary>Launches the default kernels instead of the trials' choices, or the choices again (the benchmark's comparison); captured graphs are dropped.</summary>
    internal void SetTunedProducts(bool enabled)
    {
        FinishAndDropGraphs();
        _gemv.UseDefaults = !enabled;
    }
}
