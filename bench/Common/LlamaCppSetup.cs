using LLama;
using LLama.Common;
using LLama.Native;

namespace Kiln.Bench.Common;

/// <summary>
/// llama.cpp (LLamaSharp 0.30 and its CPU backend) set up the way Kiln is compared against it, by the CPU benchmark
/// (bench/Kiln.Bench) and by the tests' reference (tests/Kiln.Tests/Reference), which both link this file: CPU only,
/// one sequence, float32 KV cache and no flash attention (so llama.cpp does the same arithmetic as Kiln and adds no
/// f16 rounding of its own), native logging silenced. Uses LLamaSharp only, nothing of Kiln.
/// </summary>
internal static class LlamaCppSetup
{
    private static readonly Lock LogGate = new();
    private static NativeLogConfig.LLamaLogCallback? s_discard;

    /// <summary>
    /// Routes llama.cpp's and ggml's log output to nowhere. Takes effect before the native library loads when called
    /// first; afterwards it replaces the callback. Idempotent.
    /// </summary>
    public static void SilenceNativeLogging()
    {
        lock (LogGate)
        {
            if (s_discard is not null)
            {
                return;
            }

            s_discard = static (_, _) => { };
            if (!NativeLibraryConfig.LLama.LibraryHasLoaded)
            {
                NativeLibraryConfig.All.WithLogCallback(s_discard);
            }

            NativeLogConfig.llama_log_set(s_discard);
        }
    }

    /// <summary>Model and context parameters of that set-up.</summary>
    /// <param name="path">A GGUF file.</param>
    /// <param name="contextSize">Positions the KV cache holds.</param>
    /// <param name="batchSize">Tokens one llama_decode call takes at most (batch and micro-batch alike).</param>
    /// <param name="threads">CPU threads, for single tokens and for batches.</param>
    public static ModelParams Parameters(string path, int contextSize, int batchSize, int threads) => new(path)
    {
        ContextSize = (uint)contextSize,
        BatchSize = (uint)batchSize,
        UBatchSize = (uint)batchSize,
        SeqMax = 1,
        Threads = threads,
        BatchThreads = threads,
        GpuLayerCount = 0,
        FlashAttention = false,
        TypeK = GGMLType.GGML_TYPE_F32,
        TypeV = GGMLType.GGML_TYPE_F32,
    };

    /// <summary>Silences the native log, loads the weights and creates their context; the weights are released if the context cannot be made.</summary>
    public static (LLamaWeights Weights, LLamaContext Context) Load(ModelParams parameters)
    {
        SilenceNativeLogging();
        var weights = LLamaWeights.LoadFromFile(parameters);
        try
        {
            return (weights, weights.CreateContext(parameters));
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Quantizes a GGUF file with llama.cpp's own quantizer (llama_model_quantize), all tensors including the output
    /// matrix. The native library is loaded first: the quantizer's entry point alone does not resolve it.
    /// </summary>
    public static void Quantize(string source, string destination, LLamaFtype type, int threads)
    {
        SilenceNativeLogging();
        NativeApi.llama_empty_call();
        if (!LLamaQuantizer.Quantize(source, destination, type, threads, allowRequantize: false, quantizeOutputTensor: true))
        {
            throw new InvalidOperationException($"llama.cpp could not quantize {source} to {type}");
        }
    }

    /// <summary>One llama_decode call of <paramref name="batch"/>; throws when llama.cpp reports a failure.</summary>
    public static void Decode(LLamaContext context, LLamaBatch batch)
    {
        var result = context.NativeHandle.Decode(batch);
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException($"llama_decode failed: {result}");
        }
    }
}
