using Kiln.Kernels.Cuda;
using Kiln.Kernels.Cuda.Native;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Loading;

namespace Kiln.Cli.Commands;

/// <summary>
/// The <c>--device cuda</c> paths. <see cref="Runtime.Generation.Generator"/> builds the CPU backend itself, so
/// <c>generate</c> on a GPU goes through the engine (the serving path), and <c>logits</c> drives the runner directly
/// (the engine returns tokens, not logits).
/// </summary>
internal static class CudaCli
{
    public const string Cpu = "cpu";
    public const string Cuda = "cuda";
    private const int BlockSize = 16;

    public static bool IsCuda(string? device) => device == Cuda;

    /// <summary>Fails before a model of gigabytes is loaded, with the backend's own reason and the CPU alternative.</summary>
    public static void ThrowIfUnavailable()
    {
        if (CudaBackend.UnavailableReason is { } reason)
        {
            throw new CudaUnavailableException($"The CUDA backend cannot start: {reason}. Use the CPU backend (--device cpu) instead.");
        }
    }

    /// <summary>
    /// The engine on the GPU runner for one sequence of up to <paramref name="maxContext"/> tokens, with a KV pool that
    /// fits exactly that context rather than the share of the GPU a server takes.
    /// </summary>
    public static InferenceEngine CreateEngine(LoadedModel model, int maxContext, int tensorParallelSize)
    {
        maxContext = Math.Min(maxContext, model.Config.MaxPositions);
        var runner = CudaBackend.CreateRunner(model, tensorParallelSize, maxLogitRows: 1, maxContext: maxContext);
        try
        {
            int blocks = (maxContext + BlockSize - 1) / BlockSize;
            return new InferenceEngine(model.Description, runner, new EngineOptions
            {
                BlockSize = BlockSize,
                KvCacheBytes = runner.KvBlockBytes(BlockSize) * blocks,
                MaxBatchedTokens = runner.MaxBatchTokens,
                MaxSequences = 1,
                MaxModelLength = maxContext,
                PrefixCaching = false,
                TensorParallelSize = tensorParallelSize,
            });
        }
        catch
        {
            runner.Dispose(); // the engine owns the runner only once it exists
            throw;
        }
    }

    /// <summary>One sequence on a GPU runner, with the same chunked prefill as the CPU generator.</summary>
    public static SequenceRunner CreateSequence(LoadedModel model, int maxContext, int tensorParallelSize)
    {
        maxContext = Math.Min(maxContext, model.Config.MaxPositions);
        var runner = CudaBackend.CreateRunner(model, tensorParallelSize, maxLogitRows: 1, maxContext: maxContext);
        try
        {
            return new SequenceRunner(runner, maxContext);
        }
        catch
        {
            runner.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A runner and a private KV pool whose blocks are laid out in order for one sequence: what
    /// <see cref="Runtime.Generation.Generator.Prefill"/> does for the CPU backend, for any runner.
    /// </summary>
    internal sealed class SequenceRunner : IDisposable
    {
        private readonly IModelRunner _runner;
        private readonly IPagedKvCache _cache;
        private readonly float[] _logits;

        public SequenceRunner(IModelRunner runner, int maxContext)
        {
            _runner = runner;
            int blocks = (maxContext + BlockSize - 1) / BlockSize;
            _cache = runner.CreateKvCache(blocks, BlockSize, 1, blocks);
            _cache.Bind(Enumerable.Range(0, blocks).ToArray(), blocks, 1);
            _logits = new float[runner.Config.VocabSize];
        }

        /// <summary>Runs <paramref name="ids"/> from position <paramref name="start"/> in chunks; the last token's logits.</summary>
        public float[] Prefill(int[] ids, int start = 0)
        {
            if (ids.Length == 0)
            {
                throw new ArgumentException("no tokens to run", nameof(ids));
            }

            for (int offset = 0; offset < ids.Length; offset += _runner.MaxBatchTokens)
            {
                int n = Math.Min(_runner.MaxBatchTokens, ids.Length - offset);
                int[] positions = [.. Enumerable.Range(start + offset, n)];
                _runner.Forward(new ForwardBatch(ids.AsSpan(offset, n), positions, [0], [n]), _cache, _logits);
            }

            return [.. _logits];
        }

        public void Dispose()
        {
            // The pool lives in the runner's device context: free it before the runner releases the device.
            _cache.Dispose();
            _runner.Dispose();
        }
    }
}
