using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Kiln.Runtime.Formats;
using Kiln.Runtime.Loading;
using Kiln.Tests.Numerics;

namespace Kiln.Tests.Loading;

/// <summary>Corrupted Hugging Face directories must fail with a ModelFormatException naming the file and the problem.</summary>
public sealed class MalformedHuggingFaceTests : IDisposable
{
    private static readonly TinyLlama Model = new(new TinyLlamaSpec { VocabSize = 40, Hidden = 32, Intermediate = 32, Seed = 52 });
    private readonly TempDirectory _directory = new();

    private string ModelDirectory => _directory.Path;

    private string Weights => _directory.File("model.safetensors");

    private string ConfigJson => _directory.File("config.json");

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void ValidDirectory_Loads()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        using var model = ModelLoader.Load(ModelDirectory);
        Assert.Equal(Model.Spec.Layers, model.Config.LayerCount);
    }

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 40)]
    [InlineData(1UL)]
    public void BadHeaderLength_SaysHeaderLength(ulong headerLength)
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        var bytes = File.ReadAllBytes(Weights);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength);
        File.WriteAllBytes(Weights, bytes);

        FormatErrors.AssertLoadFails(ModelDirectory, Weights, "header length");
    }

    [Fact]
    public void HeaderLengthPastTheEnd_SaysTruncated()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        var bytes = File.ReadAllBytes(Weights);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)bytes.Length);
        File.WriteAllBytes(Weights, bytes);

        FormatErrors.AssertLoadFails(ModelDirectory, Weights, "header", "truncated");
    }

    [Fact]
    public void TruncatedTensor_NamesItAndSaysTruncated()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        FormatErrors.Truncate(Weights, new FileInfo(Weights).Length - 64);

        // lm_head is written last.
        FormatErrors.AssertLoadFails(ModelDirectory, Weights, "lm_head.weight", "truncated");
    }

    /// <summary>Every cut through the 8-byte length and the JSON header, and cuts through the data.</summary>
    [Fact]
    public void CutAtAnyLength_AlwaysModelFormatException()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        byte[] whole = File.ReadAllBytes(Weights);
        long dataOffset = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(whole);
        for (int length = 0; length < whole.Length; length += length < dataOffset ? 1 : 97)
        {
            File.WriteAllBytes(Weights, whole.AsSpan(0, length).ToArray());
            var outcome = FormatErrors.LoadOutcome(ModelDirectory);
            Assert.True(outcome is ModelFormatException m && m.FilePath == Weights, $"cut at {length} of {whole.Length} bytes: {outcome?.GetType().Name ?? "loaded"}: {outcome?.Message}");
        }
    }

    [Fact]
    public void UnknownDType_NamesTensorAndDType()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model, editTensor: t => t.Name == "model.layers.0.self_attn.k_proj.weight"
            ? t with { DType = "I8", Data = t.Data[..(t.Data.Length / 4)] }
            : t);

        FormatErrors.AssertLoadFails(ModelDirectory, Weights, "model.layers.0.self_attn.k_proj.weight", "I8");
    }

    [Fact]
    public void ShapeMismatchWithConfig_NamesTensorAndShapes()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model, editTensor: t => t.Name == "model.layers.1.self_attn.q_proj.weight"
            ? t with { Shape = [t.Shape[0] / 2, t.Shape[1]], Data = t.Data[..(t.Data.Length / 2)] }
            : t);

        FormatErrors.AssertLoadFails(ModelDirectory, Weights, "model.layers.1.self_attn.q_proj.weight", "shape", "[16, 32]");
    }

    [Fact]
    public void MissingTensor_NamesIt()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model, editTensor: t => t.Name == "model.layers.1.mlp.down_proj.weight" ? null : t);

        FormatErrors.AssertLoadFails(ModelDirectory, Weights, "model.layers.1.mlp.down_proj.weight", "missing");
    }

    [Fact]
    public void MissingTensorInShardedCheckpoint_NamesIt()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model, sharded: true, editTensor: t => t.Name == "model.norm.weight" ? null : t);

        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(ModelDirectory).Dispose());
        Assert.Contains("model.norm.weight", e.Problem, StringComparison.Ordinal);
        Assert.Contains("missing", e.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigNotJson_SaysJson()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        File.WriteAllText(ConfigJson, "{ \"architectures\": [\"LlamaForCausalLM\"], hidden_size: 32 ");

        FormatErrors.AssertLoadFails(ModelDirectory, ConfigJson, "JSON");
    }

    [Fact]
    public void UnsupportedArchitecture_NamesIt()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model, editConfig: c => c["architectures"] = new JsonArray("BertModel"));

        FormatErrors.AssertLoadFails(ModelDirectory, ConfigJson, "BertModel");
    }

    [Theory]
    [InlineData(RopeConfigStyle.TopLevel)]
    [InlineData(RopeConfigStyle.RopeParametersBlock)]
    public void UnsupportedRopeScaling_NamesIt(RopeConfigStyle style)
    {
        var model = new TinyLlama(Model.Spec with { RopeStyle = style, Llama3 = new Llama3Scaling(8, 1, 4, 64) });
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, model, editConfig: c =>
            ((JsonObject)c[style == RopeConfigStyle.TopLevel ? "rope_scaling" : "rope_parameters"]!)["rope_type"] = "yarn");

        FormatErrors.AssertLoadFails(ModelDirectory, ConfigJson, "yarn");
    }

    [Theory]
    [InlineData("hidden_size", "32.5", "hidden_size")]
    [InlineData("hidden_size", "1e12", "hidden_size")]
    [InlineData("num_attention_heads", "0", "head")]
    [InlineData("num_key_value_heads", "3", "KV heads")]
    [InlineData("vocab_size", "\"forty\"", "vocab_size")]
    public void ImpossibleConfigNumber_SaysWhichField(string field, string json, string fragment)
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model, editConfig: c => c[field] = JsonNode.Parse(json));

        FormatErrors.AssertLoadFails(ModelDirectory, ConfigJson, fragment);
    }

    [Theory]
    [InlineData("config.json", "JSON")]
    [InlineData("model.safetensors", "empty")]
    public void EmptyFile_IsAFormatError(string name, string fragment)
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        File.WriteAllBytes(_directory.File(name), []);

        FormatErrors.AssertLoadFails(ModelDirectory, _directory.File(name), fragment);
    }

    [Fact]
    public void MissingPath_FileNotFoundNamingIt()
    {
        string missing = _directory.File("no-such-model.gguf");

        var e = Assert.Throws<FileNotFoundException>(() => ModelLoader.Load(missing));
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
    }

    /// <summary>Seeded random byte changes in the JSON header: each load either works or fails with a ModelFormatException.</summary>
    [Fact]
    public void RandomHeaderCorruption_NeverCrashes()
    {
        TinyCheckpoints.WriteHuggingFace(ModelDirectory, Model);
        byte[] whole = File.ReadAllBytes(Weights);
        int dataOffset = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(whole);
        var random = new Random(78);
        var failures = new StringBuilder();
        for (int trial = 0; trial < 300; trial++)
        {
            byte[] bytes = (byte[])whole.Clone();
            int offset = random.Next(8, dataOffset);
            // Digits and JSON punctuation make the interesting corruptions: numbers that change and structure that breaks.
            bytes[offset] = (byte)"0123456789-.e[]{}\",:x"[random.Next(21)];
            File.WriteAllBytes(Weights, bytes);
            var outcome = FormatErrors.LoadOutcome(ModelDirectory);
            if (outcome is not (null or ModelFormatException))
            {
                failures.AppendLine($"byte {offset} = '{(char)bytes[offset]}' (was '{(char)whole[offset]}'): {outcome.GetType().Name}: {outcome.Message}");
            }
        }

        Assert.True(failures.Length == 0, failures.ToString());
    }
}
