using Kiln.Runtime.Formats;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Numerics;
using Kiln.Tests.Reference;
using LLama.Native;

namespace Kiln.Tests.LlamaCpp;

/// <summary>
/// Files quantized by llama.cpp's own quantizer (llama_model_quantize through LLamaSharp) from an F32 GGUF, as users
/// download them: Kiln's logits against the float64 reference over the weights decoded plainly from the file
/// (<see cref="GgmlBlocks"/>), and against llama.cpp on the same file.
/// <para>
/// Tolerances. Against the reference Kiln multiplies exactly the decoded weights in float32, as on F32 files: bound
/// 1e-4 x rms(logits) (measured below 1e-5, printed). llama.cpp also rounds the activations inside every product with
/// a quantized weight (to Q8_0 or Q8_K blocks, step max|x|/127), so the same-file comparison bounds that rounding only:
/// measured rms(diff)/rms(logits) 1.7e-2 to 1.8e-2 on Q4_0..Q5_1 files and 2.4e-2 to 2.5e-2 on K-quant files (Q8_K
/// activations), argmax agreeing at 37 to 40 of 40 positions (near-ties on a random model); the bounds are 3x the
/// largest rms and 34 of 40. A misread layout moves logits by the order of their rms, 40x the bound.
/// </para>
/// </summary>
public class QuantizedGgufTests(ITestOutputHelper output)
{
    /// <summary>Rows of 256 and 512 values, so the K-quant types apply to every matrix (llama.cpp falls back on shorter rows).</summary>
    internal static readonly RandomLlamaOptions Model = new()
    {
        VocabSize = 512,
        Hidden = 256,
        Intermediate = 512,
        Layers = 2,
        Heads = 4,
        KvHeads = 2,
        ContextLength = 256,
        Seed = 17,
    };

    private const double LlamaCppRmsBound = 0.075;

    public static TheoryData<LLamaFtype, GgmlType[]> Files() => new()
    {
        { LLamaFtype.MOSTLY_Q4_0, [GgmlType.Q4_0] },
        { LLamaFtype.MOSTLY_Q4_1, [GgmlType.Q4_1] },
        { LLamaFtype.MOSTLY_Q5_0, [GgmlType.Q5_0] },
        { LLamaFtype.MOSTLY_Q5_1, [GgmlType.Q5_1] },
        { LLamaFtype.MOSTLY_Q2_K, [GgmlType.Q2_K] },
        { LLamaFtype.MOSTLY_Q3_K_M, [GgmlType.Q3_K] },
        { LLamaFtype.MOSTLY_Q4_K_M, [GgmlType.Q4_K, GgmlType.Q6_K] },
        { LLamaFtype.MOSTLY_Q5_K_M, [GgmlType.Q5_K, GgmlType.Q6_K] },
        { LLamaFtype.MOSTLY_Q6_K, [GgmlType.Q6_K] },
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void Kiln_FileQuantizedByLlamaCpp_MatchesFloat64ReferenceAndLlamaCpp(LLamaFtype ftype, GgmlType[] holds)
    {
        using var file = QuantizedFile.Create(Model, ftype);
        var types = file.MatrixTypes();
        Assert.All(holds, t => Assert.Contains(t, types));

        int[] prompt = LlamaCppReferenceTests.RandomPrompt(40, Model.VocabSize, seed: 23);
        float[] reference = Flatten(new ReferenceLlama(file.ReferenceConfig(), file.DecodedWeights()).AllLogits(prompt));
        float[] kilnPrefill, kilnDecode, llama;
        using (var kiln = new KilnForward(file.Path, maxContext: 128))
        {
            kilnPrefill = kiln.Logits(prompt);
            kilnDecode = kiln.LogitsIncremental(prompt);
        }

        using (var cpp = new LlamaCppReference(file.Path, contextSize: 128))
        {
            llama = cpp.Logits(prompt);
        }

        var prefill = LogitsComparison.Compare(kilnPrefill, reference, Model.VocabSize);
        var decode = LogitsComparison.Compare(kilnDecode, reference, Model.VocabSize);
        var same = LogitsComparison.Compare(kilnPrefill, llama, Model.VocabSize);
        var llamaVsReference = LogitsComparison.Compare(llama, reference, Model.VocabSize);
        output.WriteLine($"{ftype} ({string.Join(", ", types)}): vs float64 prefill max {prefill.MaxAbs / prefill.ReferenceRms:E2} x rms, decode {decode.MaxAbs / decode.ReferenceRms:E2} x rms; " +
            $"vs llama.cpp rms {same.RmsDiff / same.ReferenceRms:E2} x rms, max {same.MaxAbs / same.ReferenceRms:E2} x rms, argmax {same.ArgMaxAgreements}/{same.Positions}; " +
            $"llama.cpp vs float64 rms {llamaVsReference.RmsDiff / llamaVsReference.ReferenceRms:E2}");

        Assert.True(prefill.MaxAbs <= 1e-4 * prefill.ReferenceRms, $"{ftype} prefill: {prefill.Describe()}");
        Assert.True(decode.MaxAbs <= 1e-4 * decode.ReferenceRms, $"{ftype} decode: {decode.Describe()}");
        Assert.Equal(prefill.Positions, prefill.ArgMaxAgreements);
        Assert.True(same.RmsDiff <= LlamaCppRmsBound * same.ReferenceRms, $"{ftype} vs llama.cpp: {same.Describe()}");
        Assert.True(same.ArgMaxAgreements >= 34, $"{ftype} vs llama.cpp: argmax agrees at {same.ArgMaxAgreements} of {same.Positions} positions");
    }

    [Fact]
    public void Kiln_IQ4NLFileFromLlamaCpp_IsRefusedNamingTheTensorAndType()
    {
        using var file = QuantizedFile.Create(Model, LLamaFtype.MOSTLY_IQ4_NL);
        Assert.Contains(GgmlType.IQ4_NL, file.MatrixTypes());

        var error = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(file.Path).Dispose());
        Assert.Equal(file.Path, error.FilePath);
        Assert.Matches(@"tensor '[a-z_.0-9]+' has ggml type IQ4_NL \(20\)", error.Message);
    }

    private static float[] Flatten(double[][] rows) => [.. rows.SelectMany(r => r.Select(v => (float)v))];
}

/// <summary>A random F32 Llama GGUF quantized by llama.cpp, in a temporary folder deleted on dispose.</summary>
internal sealed class QuantizedFile : IDisposable
{
    private readonly TempGguf _source;

    private QuantizedFile(TempGguf source, string path)
    {
        _source = source;
        Path = path;
    }

    public string Path { get; }

    public RandomLlamaOptions Options => _source.Options;

    public static QuantizedFile Create(RandomLlamaOptions options, LLamaFtype ftype)
    {
        var source = new TempGguf(options);
        string path = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(source.Path)!, $"model-{ftype}.gguf");
        Kiln.Bench.Common.LlamaCppSetup.Quantize(source.Path, path, ftype, threads: 2);
        return new QuantizedFile(source, path);
    }

    /// <summary>The ggml types of the file's matrices (2-D tensors).</summary>
    public IReadOnlySet<GgmlType> MatrixTypes()
    {
        using var gguf = GgufFile.Open(Path);
        return gguf.Tensors.Values.Where(t => t.Dimensions.Length == 2).Select(t => (GgmlType)t.RawType).ToHashSet();
    }

    /// <summary>Every tensor decoded by <see cref="GgmlBlocks"/>, under the reference's logical names.</summary>
    public Dictionary<string, float[]> DecodedWeights()
    {
        using var gguf = GgufFile.Open(Path);
        byte[] bytes = File.ReadAllBytes(Path);
        var weights = new Dictionary<string, float[]>();
        foreach (var logical in LogicalNames())
        {
            if (!gguf.Tensors.TryGetValue(TinyCheckpoints.GgufName(logical), out var info))
            {
                continue; // lm_head of a tied model
            }

            var type = (GgmlType)info.RawType;
            var (values, blockBytes) = GgmlBlocks.Block(type);
            int length = checked((int)(info.ElementCount / values * blockBytes));
            weights[logical] = GgmlBlocks.Decode(type, bytes.AsSpan(checked((int)(gguf.DataOffset + info.Offset)), length), info.ElementCount);
        }

        return weights;
    }

    public ReferenceConfig ReferenceConfig() => new()
    {
        VocabSize = Options.VocabSize,
        Hidden = Options.Hidden,
        Intermediate = Options.Intermediate,
        Layers = Options.Layers,
        Heads = Options.Heads,
        KvHeads = Options.KvHeads,
        HeadDim = Options.HeadDim,
        RmsNormEps = Options.RmsEps,
        RopeTheta = Options.RopeBase,
        AdjacentRopePairs = true,
        AttentionBias = false,
        Tied = Options.TiedEmbeddings,
    };

    public void Dispose() => _source.Dispose();

    private IEnumerable<string> LogicalNames()
    {
        yield return "embed";
        yield return "norm";
        yield return "lm_head";
        for (int i = 0; i < Options.Layers; i++)
        {
            foreach (var part in new[] { "attn_norm", "ffn_norm", "q", "k", "v", "o", "gate", "up", "down" })
            {
                yield return $"L{i}.{part}";
            }
        }
    }
}
