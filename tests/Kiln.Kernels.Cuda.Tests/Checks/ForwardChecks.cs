using Kiln.Kernels.Cuda.Device;
using Kiln.Kernels.Cuda.Model;
using Kiln.Runtime.Backends;
using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Kv;
using Kiln.Runtime.Models;
using Kiln.Runtime.Sampling;
using Kiln.Runtime.Synthetic;

namespace Kiln.Kernels.Cuda.Tests;

/// <summary>
/// The whole forward pass on the GPU against the CPU backend on the same bf16 weights, step by step: chunked prefill
/// over a cached prefix (cuBLAS), decodes (matrix-vector kernel, CUDA graphs), and every position's logits.
/// </summary>
public abstract class ForwardChecks
{
    private static readonly RandomLlamaOptions Small = new()
    {
        VocabSize = 1000,
        Hidden = 512,
        Intermediate = 1024,
        Layers = 3,
        Heads = 8,
        KvHeads = 2,
        ContextLength = 512,
        Seed = 77,
        RopeBase = 500000f,
    };

    [Theory]
    [InlineData(false, true, GgmlType.BF16)]
    [InlineData(true, true, GgmlType.BF16)]
    [InlineData(false, false, GgmlType.BF16)]
    [InlineData(false, true, GgmlType.Q8_0)]
    [InlineData(true, false, GgmlType.Q8_0)]
    [InlineData(true, true, GgmlType.F16)]
    [InlineData(false, true, GgmlType.Q4_K)] // block types other than Q8_0 are decoded to bf16 at upload
    [InlineData(true, false, GgmlType.Q6_K)]
    [InlineData(false, true, GgmlType.Q5_0)]
    public void MixedSteps_MatchTheCpuBackend(bool tiedEmbeddings, bool fusedDecodeLayers, GgmlType weights)
    {
        TestDevice.Require();
        var options = Small with { TiedEmbeddings = tiedEmbeddings, Seed = tiedEmbeddings ? 78UL : 77UL };
        using var model = TestDevice.RandomModel(options, weights);

        // Block types other than Q8_0 are decoded to bf16 at upload, so the CPU runs a bf16 file holding those very
        // values: a mistake in the upload then shows at the usual bound instead of hiding in the weights' rounding.
        bool decodedToBf16 = weights is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0);
        using var cpuModel = decodedToBf16 ? TestDevice.RandomModel(options with { RoundWeightsThrough = weights }, GgmlType.BF16) : null;
        using var cpu = new CpuModelRunner(cpuModel ?? model, maxBatchTokens: 64, maxContext: 512);
        // A small expansion scratch makes the cuBLAS steps over f16 and Q8 matrices take several row slices.
        using var gpu = new CudaModelRunner(model, new CudaRunnerOptions
        {
            MaxBatchTokens = 64,
            MaxLogitRows = 64,
            KernelCacheDirectory = TestDevice.CacheDirectory,
            FusedSmallBatch = fusedDecodeLayers,
            CompactExpandElements = 100_000,
        });
        var expectedFormat = weights switch { GgmlType.Q8_0 => WeightFormat.Q8, GgmlType.F16 => WeightFormat.F16, _ => WeightFormat.Bf16 };
        Assert.All(gpu.Weights.Layers[0].Matrices().Append(gpu.Weights.Classifier), m => Assert.Equal(expectedFormat, m.Format));
        Assert.Contains(expectedFormat, gpu.Kernels.WeightFormats);
        using var cpuCache = cpu.CreateKvCache(16, 16, 4, 8);
        using var gpuCache = gpu.CreateKvCache(16, 16, 4, 8);
        int[] tables = [3, 9, 1, 0, 0, 0, 0, 0, /* row 1 */ 7, 2, 0, 0, 0, 0, 0, 0, /* row 2 */ 12, 5, 0, 0, 0, 0, 0, 0];
        foreach (var cache in new[] { cpuCache, gpuCache })
        {
            cache.Bind(tables, 8, 3);
        }

        var random = new Random(5);
        int Next() => random.Next(Small.VocabSize);
        var prompt0 = Enumerable.Range(0, 20).Select(_ => Next()).ToArray();
        var prompt1 = Enumerable.Range(0, 3).Select(_ => Next()).ToArray();
        var prompt2 = Enumerable.Range(0, 9).Select(_ => Next()).ToArray();

        // Step 1: first chunk of sequence 0 (12 tokens) and all of sequence 1: 15 tokens, cuBLAS products.
        Compare(cpu, gpu, cpuCache, gpuCache, [.. prompt0[..12], .. prompt1], [.. Enumerable.Range(0, 12), 0, 1, 2], [0, 1], [12, 3]);
        // Step 2: the rest of sequence 0 over its cached prefix, a decode of sequence 1, sequence 2's prompt.
        Compare(cpu, gpu, cpuCache, gpuCache, [.. prompt0[12..], Next(), .. prompt2], [.. Enumerable.Range(12, 8), 3, .. Enumerable.Range(0, 9)], [0, 1, 2], [8, 1, 9]);
        // Steps 3-5: decodes of all three, replayed from a CUDA graph after the first; the matrix-vector kernel.
        for (int step = 0; step < 3; step++)
        {
            Compare(cpu, gpu, cpuCache, gpuCache, [Next(), Next(), Next()], [20 + step, 4 + step, 9 + step], [0, 1, 2], [1, 1, 1]);
        }

        Assert.Equal(1, gpu.GraphCount);
        // Every position's logits for a short chunk, with the launches recorded: the fused layers run where asked.
        using var profiler = new KernelProfiler();
        gpu.Profiler = profiler;
        Compare(cpu, gpu, cpuCache, gpuCache, [Next(), Next()], [23, 24], [0], [2], allPositions: true);
        var launched = profiler.Collect().Select(p => p.Name.Split(' ')[0]).ToHashSet();
        Assert.Equal(fusedDecodeLayers, launched.Any(name => name.StartsWith("gemv_norm_swiglu", StringComparison.Ordinal)));
        Assert.Equal(fusedDecodeLayers, launched.Any(name => name.StartsWith("gemv_norm_rope", StringComparison.Ordinal)));
        Assert.Equal(!fusedDecodeLayers, launched.Contains("swiglu"));
        Assert.Equal(!fusedDecodeLayers, launched.Contains("rope_write_kv"));
    }

    [Fact]
    public void CopyBlock_OnTheDevicePool_DecodesLikeItsSource()
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(Small);
        using var gpu = new CudaModelRunner(model, new CudaRunnerOptions { MaxBatchTokens = 16, MaxLogitRows = 16, KernelCacheDirectory = TestDevice.CacheDirectory });

        CopyBlockCheck.CopiedBlock_DecodesLikeItsSource(gpu);
    }

    [Theory]
    [InlineData(1, 2)] // one KV head over two devices: both ranks hold it
    [InlineData(2, 4)] // two KV heads over four devices: each on two ranks
    public void TensorParallelBeyondTheKvHeads_ReplicatesThem_AndMatchesTheCpuBackend(int kvHeads, int devices)
    {
        // vLLM's replication: every rank holds the KV head its query heads read, each rank a 1/devices of the query heads.
        TestDevice.RequireDevices(devices);
        using var model = TestDevice.RandomModel(Small with { KvHeads = kvHeads, Seed = 78 });
        using var cpu = new CpuModelRunner(model, maxBatchTokens: 64, maxContext: 512);
        using var group = new TensorParallelCudaRunner(model, devices, new CudaRunnerOptions { MaxBatchTokens = 64, MaxLogitRows = 64, KernelCacheDirectory = TestDevice.CacheDirectory });
        using var cpuCache = cpu.CreateKvCache(8, 16, 2, 4);
        using var groupCache = group.CreateKvCache(8, 16, 2, 4);
        int[] tables = [3, 0, 0, 0, /* row 1 */ 4, 7, 0, 0];
        cpuCache.Bind(tables, 4, 2);
        groupCache.Bind(tables, 4, 2);
        var random = new Random(10);
        int Next() => random.Next(Small.VocabSize);
        Compare(cpu, group, cpuCache, groupCache, [.. Enumerable.Range(0, 15).Select(_ => Next())], [.. Enumerable.Range(0, 6), .. Enumerable.Range(0, 9)], [0, 1], [6, 9]);
        for (int step = 0; step < 3; step++)
        {
            Compare(cpu, group, cpuCache, groupCache, [Next(), Next()], [6 + step, 9 + step], [0, 1], [1, 1]);
        }
    }

    [Fact]
    public void TensorParallelOverTwoDevices_MatchesTheCpuBackend()
    {
        TestDevice.RequireDevices(2);
        using var model = TestDevice.RandomModel(Small);
        using var cpu = new CpuModelRunner(model, maxBatchTokens: 64, maxContext: 512);
        using var group = new TensorParallelCudaRunner(model, 2, new CudaRunnerOptions { MaxBatchTokens = 64, MaxLogitRows = 64, KernelCacheDirectory = TestDevice.CacheDirectory });
        Assert.Equal(2, group.TensorParallelSize);
        using var cpuCache = cpu.CreateKvCache(8, 16, 2, 4);
        using var groupCache = group.CreateKvCache(8, 16, 2, 4);
        int[] tables = [5, 1, 0, 0, /* row 1 */ 2, 6, 0, 0];
        cpuCache.Bind(tables, 4, 2);
        groupCache.Bind(tables, 4, 2);
        var random = new Random(9);
        int Next() => random.Next(Small.VocabSize);

        // A prefill of two prompts (cuBLAS, one all-reduce after attention and one after the MLP on each rank), then
        // decodes replayed from each rank's CUDA graph, all-reduces included: the fused layers, where rank 0 adds its
        // partial outputs into the stream and rank 1 stores its own over it before the all-reduce.
        Compare(cpu, group, cpuCache, groupCache, [.. Enumerable.Range(0, 18).Select(_ => Next())], [.. Enumerable.Range(0, 11), .. Enumerable.Range(0, 7)], [0, 1], [11, 7]);
        for (int step = 0; step < 3; step++)
        {
            Compare(cpu, group, cpuCache, groupCache, [Next(), Next()], [11 + step, 7 + step], [0, 1], [1, 1]);
        }

        // One rank's launches of a decode step: the fused layers ran on the group.
        using var profiler = new KernelProfiler();
        group.Rank(1).Profiler = profiler;
        Compare(cpu, group, cpuCache, groupCache, [Next(), Next()], [14, 10], [0, 1], [1, 1]);
        group.Rank(1).Profiler = null;
        var launched = profiler.Collect().Select(p => p.Name.Split(' ')[0]).ToHashSet();
        Assert.Contains("gemv_norm_rope", launched);
        Assert.DoesNotContain("rope_write_kv", launched);
        Assert.DoesNotContain("gemv_add", launched); // rank 1 stores its partial sums; rank 0 adds

        // A step whose tokens rank 0 draws on its GPU: greedy, so they must be the CPU's argmax up to bf16 noise.
        int[] ids = [Next(), Next()], positions = [15, 11], rows = [0, 1], lengths = [1, 1];
        var expected = new float[2 * Small.VocabSize];
        cpu.Forward(new ForwardBatch(ids, positions, rows, lengths), (PagedKvCache)cpuCache, expected);
        var drawn = new int[2];
        Assert.True(group.TryForwardSampled(new ForwardBatch(ids, positions, rows, lengths), groupCache, [default, default], drawn));
        for (int s = 0; s < 2; s++)
        {
            AssertIsTheArgmax(expected.AsSpan(s * Small.VocabSize, Small.VocabSize), drawn[s], $"sequence {s}: the group drew");
        }
    }

    [Fact]
    public void RandomQ8Model_PrefillAndDecodePathsAgree()
    {
        TestDevice.Require();
        var config = new ModelConfig
        {
            Architecture = "llama",
            VocabSize = 1000,
            HiddenSize = 256,
            IntermediateSize = 512,
            LayerCount = 2,
            HeadCount = 4,
            KvHeadCount = 2,
            HeadDim = 64,
            MaxPositions = 256,
            RopeTheta = 10000,
            RmsNormEps = 1e-5,
            TiedEmbeddings = true,
        };
        using var runner = CudaModelRunner.CreateRandom(config, new CudaRunnerOptions { MaxBatchTokens = 64, MaxLogitRows = 64, KernelCacheDirectory = TestDevice.CacheDirectory }, seed: 5, WeightFormat.Q8);
        Assert.All(runner.Weights.Layers[0].Matrices().Append(runner.Weights.Classifier), m => Assert.Equal(WeightFormat.Q8, m.Format));
        using var cache = runner.CreateKvCache(8, 16, 2, 4);
        cache.Bind([0, 1, 2, 3, /* row 1 */ 4, 5, 6, 7], 4, 2);
        var ids = Enumerable.Range(0, 12).Select(i => (i * 83) % config.VocabSize).ToArray();
        int vocab = config.VocabSize;

        // Sequence 0: all 12 tokens in one step, every position's logits (cuBLAS over the expanded Q8 matrices).
        var prefill = new float[12 * vocab];
        runner.Forward(new ForwardBatch(ids, [.. Enumerable.Range(0, 12)], [0], [12]), cache, prefill, allPositions: true);
        // Sequence 1: the first 9 the same way, then one token a step (the fused Q8 matrix-vector kernels).
        runner.Forward(new ForwardBatch(ids.AsSpan(0, 9), [.. Enumerable.Range(0, 9)], [1], [9]), cache, new float[vocab]);
        for (int position = 9; position < 12; position++)
        {
            var decode = new float[vocab];
            runner.Forward(new ForwardBatch([ids[position]], [position], [1], [1]), cache, decode);
            Assert.InRange(TestDevice.RelativeError(decode, prefill.AsSpan(position * vocab, vocab)), 0, 1e-2);
        }
    }

    [Fact]
    public void LongContextDecodes_SplitOverBlocks_MatchTheCpuBackend()
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(Small with { ContextLength = 1024 });
        using var cpu = new CpuModelRunner(model, maxBatchTokens: 300, maxContext: 1024);
        using var gpu = new CudaModelRunner(model, new CudaRunnerOptions { MaxBatchTokens = 300, MaxLogitRows = 8, KernelCacheDirectory = TestDevice.CacheDirectory });
        Assert.True(gpu.DecodeAttentionSplits(1) > 1 && gpu.DecodeAttentionSplits(2) > 1, "decode steps of one and two tokens should split attention");
        using var cpuCache = cpu.CreateKvCache(84, 16, 2, 42);
        using var gpuCache = gpu.CreateKvCache(84, 16, 2, 42);
        var order = Enumerable.Range(0, 84).OrderBy(i => (i * 37) % 84).ToArray(); // blocks out of order
        foreach (var cache in new[] { cpuCache, gpuCache })
        {
            cache.Bind(order, 42, 2);
        }

        var random = new Random(9);
        int[] Tokens(int count) => [.. Enumerable.Range(0, count).Select(_ => random.Next(Small.VocabSize))];
        // Sequence 0: 600 tokens in two chunks; sequence 1: 300. Then decodes over 601 and 301 keys: three and two spans
        // of 256, whose splits are merged by the last block to finish.
        Compare(cpu, gpu, cpuCache, gpuCache, Tokens(300), [.. Enumerable.Range(0, 300)], [0], [300]);
        Compare(cpu, gpu, cpuCache, gpuCache, Tokens(300), [.. Enumerable.Range(300, 300)], [0], [300]);
        Compare(cpu, gpu, cpuCache, gpuCache, Tokens(300), [.. Enumerable.Range(0, 300)], [1], [300]);
        for (int step = 0; step < 2; step++)
        {
            Compare(cpu, gpu, cpuCache, gpuCache, Tokens(2), [600 + step, 300 + step], [0, 1], [1, 1]);
        }

        for (int step = 2; step < 4; step++)
        {
            Compare(cpu, gpu, cpuCache, gpuCache, Tokens(1), [600 + step], [0], [1]);
        }

        Assert.Equal(2, gpu.GraphCount); // both decode sizes replayed from graphs
    }

    /// <summary>
    /// A greedy choice made from bf16 activations must be the CPU's argmax, unless the CPU's two best logits are within
    /// a near-tie: 0.5% of the row's range. The GPU's logits differ from the CPU's by about 6e-3 of their rms (relative
    /// L2, measured on these models), some 0.1% of the range, so only a real tie can flip.
    /// </summary>
    private static void AssertIsTheArgmax(ReadOnlySpan<float> cpuLogits, int chosen, string what)
    {
        int best = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(cpuLogits);
        if (chosen == best)
        {
            return;
        }

        float range = cpuLogits[best] - System.Numerics.Tensors.TensorPrimitives.Min(cpuLogits);
        float tie = 0.005f * range;
        Assert.True(
            cpuLogits[best] - cpuLogits[chosen] <= tie,
            $"{what} {chosen} (CPU logit {cpuLogits[chosen]}), the CPU's argmax is {best} ({cpuLogits[best]}): not within the near-tie {tie}");
    }

    private static void Compare(CpuModelRunner cpu, IModelRunner gpu, IPagedKvCache cpuCache, IPagedKvCache gpuCache,
        int[] ids, int[] positions, int[] sequences, int[] lengths, bool allPositions = false)
    {
        int rows = allPositions ? ids.Length : sequences.Length;
        var expected = new float[rows * cpu.Config.VocabSize];
        var actual = new float[expected.Length];
        actual.AsSpan().Fill(float.NaN);
        cpu.Forward(new ForwardBatch(ids, positions, sequences, lengths), (PagedKvCache)cpuCache, expected, allPositions);
        gpu.Forward(new ForwardBatch(ids, positions, sequences, lengths), gpuCache, actual, allPositions);
        double error = TestDevice.RelativeError(actual, expected);
        Assert.True(error < 1e-2, $"logits of a step of {ids.Length} tokens differ from the CPU backend by {error:E2} (relative L2)");
    }

    [Fact]
    public async Task Engine_MixedPrefillAndDecodeRequests_PickTheCpuArgmax()
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(Small);
        int[] lengths = [5, 70, 12, 33, 1, 48];
        var prompts = lengths.Select((n, i) => Enumerable.Range(0, n).Select(j => ((i * 131) + (j * 17)) % Small.VocabSize).ToArray()).ToArray();
        var outputs = await RunEngine(model, prompts, SamplingParams.Greedy with { MaxTokens = 10, IgnoreEos = true });

        // Teacher-forced on the CPU: each token the GPU engine chose must be the CPU's argmax up to bf16 noise.
        using var cpu = new CpuModelRunner(model, maxBatchTokens: 128, maxContext: 512);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(10, outputs[i].Count);
            var logits = TeacherForced(cpu, prompts[i], outputs[i]);
            for (int k = 0; k < outputs[i].Count; k++)
            {
                AssertIsTheArgmax(logits.AsSpan(k * Small.VocabSize, Small.VocabSize), outputs[i][k], $"request {i} token {k}: the GPU chose");
            }
        }
    }

    [Fact]
    public async Task Engine_SampledRequests_DrawOnTheDeviceFromTheCpuTopK_AndASeedRepeats()
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(Small);
        const int TopK = 4;
        int[] lengths = [9, 30, 3];
        var prompts = lengths.Select((n, i) => Enumerable.Range(0, n).Select(j => ((i * 71) + (j * 29)) % Small.VocabSize).ToArray()).ToArray();
        var sampling = new SamplingParams { Temperature = 1f, TopK = TopK, TopP = 0.95f, Seed = 11, MaxTokens = 12, IgnoreEos = true };
        var outputs = await RunEngine(model, prompts, sampling);
        // A seed repeats its tokens when the steps repeat: one request alone (batched with others, its logits move
        // with the batch's composition, through different kernels, as in any server that is not batch-invariant).
        int[][] alone = [prompts[1]];
        Assert.Equal((await RunEngine(model, alone, sampling))[0], (await RunEngine(model, alone, sampling))[0]);

        // Every drawn token must be among the CPU's top k (up to bf16 noise), and not every one its argmax.
        using var cpu = new CpuModelRunner(model, maxBatchTokens: 128, maxContext: 512);
        int belowArgmax = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(12, outputs[i].Count);
            var logits = TeacherForced(cpu, prompts[i], outputs[i]);
            for (int k = 0; k < outputs[i].Count; k++)
            {
                var row = logits.AsSpan(k * Small.VocabSize, Small.VocabSize);
                var sorted = row.ToArray().OrderDescending().ToArray();
                float range = sorted[0] - sorted[^1];
                Assert.True(row[outputs[i][k]] >= sorted[TopK - 1] - (0.02f * range), $"request {i} token {k}: {outputs[i][k]} is outside the CPU's top {TopK}");
                belowArgmax += row[outputs[i][k]] < sorted[0] - (0.02f * range) ? 1 : 0;
            }
        }

        Assert.True(belowArgmax > 0, "at temperature 1 over four candidates some draws must not be the argmax");
    }

    /// <summary>Runs the prompts together through an engine on the CUDA runner; the tokens each one got.</summary>
    private static async Task<List<int>[]> RunEngine(Runtime.Loading.LoadedModel model, int[][] prompts, SamplingParams sampling)
    {
        var runner = new CudaModelRunner(model, new CudaRunnerOptions { MaxBatchTokens = 64, MaxLogitRows = 16, KernelCacheDirectory = TestDevice.CacheDirectory });
        var options = new EngineOptions { MaxBatchedTokens = 64, MaxSequences = 16, KvCacheBytes = 32L << 20, BlockSize = 16 };
        var outputs = new List<int>[prompts.Length];
        using var engine = new InferenceEngine(model, runner, options);
        var tasks = prompts.Select(async (prompt, i) =>
        {
            var tokens = new List<int>();
            await foreach (var e in engine.Submit(new GenerationRequest { PromptTokenIds = prompt, Sampling = sampling }, TestContext.Current.CancellationToken))
            {
                if (e.TokenId >= 0)
                {
                    tokens.Add(e.TokenId);
                }
            }

            outputs[i] = tokens;
        });
        await Task.WhenAll(tasks);
        return outputs;
    }

    /// <summary>The CPU's logits before each output token, [outputs x vocab], with the prompt and outputs fed in one pass.</summary>
    private static float[] TeacherForced(CpuModelRunner cpu, int[] prompt, List<int> output)
    {
        int[] all = [.. prompt, .. output];
        using var cache = cpu.CreateKvCache(8, 16, 1, 8);
        cache.Bind([0, 1, 2, 3, 4, 5, 6, 7], 8, 1);
        int vocab = cpu.Config.VocabSize;
        var logits = new float[all.Length * vocab];
        cpu.Forward(new ForwardBatch(all, [.. Enumerable.Range(0, all.Length)], [0], [all.Length]), (PagedKvCache)cache, logits, allPositions: true);
        return logits[((prompt.Length - 1) * vocab)..((all.Length - 1) * vocab)];
    }

    [Fact]
    public void NcclGroupOfOne_AllReduceInTheForwardPass_ChangesNothing()
    {
        TestDevice.Require();
        using var model = TestDevice.RandomModel(Small);
        var options = new CudaRunnerOptions { MaxBatchTokens = 64, MaxLogitRows = 64, KernelCacheDirectory = TestDevice.CacheDirectory };
        var group = NcclCommunicator.CreateGroup([0]);
        using var communicator = group[0];
        using var plain = new CudaModelRunner(model, options);
        using var ranked = new CudaModelRunner(model.Config, model.Weights.RopeFactors, options, null, communicator, CudaWeights.FormatsOf(model.Weights), (_, stream) => CudaWeights.Upload(model.Config, model.Weights, stream));
        Assert.Equal(1, ranked.TensorParallelSize);
        var results = new List<float[]>();
        foreach (var runner in new[] { plain, ranked })
        {
            using var cache = runner.CreateKvCache(4, 16, 1, 4);
            cache.Bind([0, 1, 2, 3], 4, 1);
            var ids = Enumerable.Range(0, 20).Select(i => (i * 37) % Small.VocabSize).ToArray();
            var logits = new float[Small.VocabSize];
            runner.Forward(new ForwardBatch(ids, [.. Enumerable.Range(0, 20)], [0], [20]), cache, logits);
            results.Add(logits);
        }

        Assert.Equal(results[0], results[1]);
    }
}
