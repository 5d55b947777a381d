using System.Text;
using Kiln.Runtime.Formats;
using Kiln.Runtime.Formats.Gguf;
using Kiln.Runtime.Loading;
using Kiln.Tests.Numerics;

namespace Kiln.Tests.Loading;

/// <summary>Corrupted GGUF files must fail with a ModelFormatException naming the file and the problem, never crash.</summary>
public sealed class MalformedGgufTests : IDisposable
{
    private static readonly TinyLlama Model = new(new TinyLlamaSpec { VocabSize = 40, Hidden = 32, Intermediate = 32, Seed = 51 });
    private readonly TempDirectory _directory = new();

    private string Path => _directory.File("model.gguf");

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void ValidFile_Loads()
    {
        TinyCheckpoints.WriteGguf(Path, Model);
        using var model = ModelLoader.Load(Path);
        Assert.Equal(Model.Spec.Layers, model.Config.LayerCount);
    }

    [Fact]
    public void BadMagic_NamesTheMagic()
    {
        TinyCheckpoints.WriteGguf(Path, Model);
        var bytes = File.ReadAllBytes(Path);
        "GGUX"u8.CopyTo(bytes);
        File.WriteAllBytes(Path, bytes);

        FormatErrors.AssertLoadFails(Path, Path, "magic");
    }

    [Fact]
    public void TruncatedHeader_SaysTruncated()
    {
        TinyCheckpoints.WriteGguf(Path, Model);
        FormatErrors.Truncate(Path, 40); // inside the first metadata entry

        FormatErrors.AssertLoadFails(Path, Path, "truncated");
    }

    [Fact]
    public void TruncatedTensorData_NamesTheLastTensor()
    {
        TinyCheckpoints.WriteGguf(Path, Model);
        FormatErrors.Truncate(Path, new FileInfo(Path).Length - 100);

        // lm_head is written last.
        FormatErrors.AssertLoadFails(Path, Path, "output.weight", "truncated");
    }

    /// <summary>Every possible cut through the header, and cuts through the data: a ModelFormatException each time.</summary>
    [Fact]
    public void CutAtAnyLength_AlwaysModelFormatException()
    {
        TinyCheckpoints.WriteGguf(Path, Model);
        byte[] whole = File.ReadAllBytes(Path);
        long dataOffset;
        using (var file = GgufFile.Open(Path))
        {
            dataOffset = file.DataOffset;
        }

        string cut = _directory.File("cut.gguf");
        for (int length = 0; length < whole.Length; length += length < dataOffset ? 1 : 97)
        {
            File.WriteAllBytes(cut, whole.AsSpan(0, length).ToArray());
            var outcome = FormatErrors.LoadOutcome(cut);
            Assert.True(outcome is ModelFormatException m && m.FilePath == cut, $"cut at {length} of {whole.Length} bytes: {outcome?.GetType().Name ?? "loaded"}: {outcome?.Message}");
        }
    }

    [Fact]
    public void UnreadTensorType_NamesTheTypeAndTensor()
    {
        // IQ4_NL (ggml type 20): blocks of 32 values in 18 bytes, a non-linear code book Kiln does not decode.
        TinyCheckpoints.WriteGguf(Path, Model, editTensor: t => t.Name == "blk.0.attn_q.weight"
            ? t with { Type = GgmlType.IQ4_NL, Data = new byte[t.Dimensions[0] * t.Dimensions[1] / 32 * 18] }
            : t);

        FormatErrors.AssertLoadFails(Path, Path, "blk.0.attn_q.weight", "ggml type IQ4_NL (20)", "Q4_K_M");
    }

    [Fact]
    public void KQuantRowsShorterThanTheirBlock_NamesTheTensorAndTheBlock()
    {
        // Q4_K packs 256 values a block; this model's rows are shorter, which no quantizer writes.
        TinyCheckpoints.WriteGguf(Path, Model, editTensor: t => t.Name == "blk.0.attn_q.weight"
            ? t with { Type = GgmlType.Q4_K, Data = new byte[144 * t.Dimensions[1]] }
            : t);

        FormatErrors.AssertLoadFails(Path, Path, "blk.0.attn_q.weight", "Q4_K", "block of 256");
    }

    [Fact]
    public void UnknownArchitecture_NamesIt()
    {
        TinyCheckpoints.WriteGguf(Path, Model, metadataOverrides: new Dictionary<string, object?> { ["general.architecture"] = "gptj" });

        FormatErrors.AssertLoadFails(Path, Path, "gptj");
    }

    [Fact]
    public void ShapeMismatch_NamesTensorAndShapes()
    {
        // attn_q with half the output rows the config implies.
        TinyCheckpoints.WriteGguf(Path, Model, editTensor: t => t.Name == "blk.0.attn_q.weight"
            ? t with { Dimensions = [t.Dimensions[0], t.Dimensions[1] / 2], Data = t.Data[..(t.Data.Length / 2)] }
            : t);

        FormatErrors.AssertLoadFails(Path, Path, "blk.0.attn_q.weight", "shape", "[32, 16]");
    }

    [Fact]
    public void MissingTensor_NamesIt()
    {
        TinyCheckpoints.WriteGguf(Path, Model, editTensor: t => t.Name == "blk.1.ffn_down.weight" ? null : t);

        FormatErrors.AssertLoadFails(Path, Path, "blk.1.ffn_down.weight", "missing");
    }

    [Fact]
    public void MissingMetadata_NamesTheKey()
    {
        TinyCheckpoints.WriteGguf(Path, Model, metadataOverrides: new Dictionary<string, object?> { ["llama.block_count"] = null });

        FormatErrors.AssertLoadFails(Path, Path, "llama.block_count", "missing");
    }

    [Fact]
    public void ZeroHeadCount_IsAFormatError()
    {
        TinyCheckpoints.WriteGguf(Path, Model, metadataOverrides: new Dictionary<string, object?> { ["llama.attention.head_count"] = 0u });

        FormatErrors.AssertLoadFails(Path, Path, "head");
    }

    [Fact]
    public void BlockCountBeyondInt32_IsAFormatError()
    {
        TinyCheckpoints.WriteGguf(Path, Model, metadataOverrides: new Dictionary<string, object?> { ["llama.block_count"] = 1L << 33 });

        FormatErrors.AssertLoadFails(Path, Path, "llama.block_count");
    }

    [Fact]
    public void EmptyFile_SaysEmpty()
    {
        File.WriteAllBytes(Path, []);

        FormatErrors.AssertLoadFails(Path, Path, "empty");
    }

    /// <summary>Seeded random byte changes in the header: each load either works or fails with a ModelFormatException.</summary>
    [Fact]
    public void RandomHeaderCorruption_NeverCrashes()
    {
        TinyCheckpoints.WriteGguf(Path, Model);
        byte[] whole = File.ReadAllBytes(Path);
        long dataOffset;
        using (var file = GgufFile.Open(Path))
        {
            dataOffset = file.DataOffset;
        }

        var random = new Random(77);
        string corrupted = _directory.File("corrupted.gguf");
        var failures = new StringBuilder();
        for (int trial = 0; trial < 400; trial++)
        {
            byte[] bytes = (byte[])whole.Clone();
            int offset = random.Next(4, (int)dataOffset);
            bytes[offset] = (byte)random.Next(256);
            File.WriteAllBytes(corrupted, bytes);
            var outcome = FormatErrors.LoadOutcome(corrupted);
            if (outcome is not (null or ModelFormatException))
            {
                failures.AppendLine($"byte {offset} = 0x{bytes[offset]:X2} (was 0x{whole[offset]:X2}): {outcome.GetType().Name}: {outcome.Message}");
            }
        }

        Assert.True(failures.Length == 0, failures.ToString());
    }
}
