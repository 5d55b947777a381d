using Kiln.Runtime.Loading;
using Kiln.Tests.Numerics;

namespace Kiln.Tests.Loading;

[Collection(nameof(ProcessWideMeasurements))]
public class MemoryMappingTests(ITestOutputHelper output)
{
    /// <summary>
    /// Weights are used in place from the memory-mapped file: loading a ~50 MB F32 checkpoint adds only the norm
    /// vectors and bookkeeping to the managed heap, not a copy of the matrices.
    /// </summary>
    [Fact]
    public void LoadingFiftyMegabyteCheckpoint_DoesNotCopyWeightsOntoManagedHeap()
    {
        var spec = new TinyLlamaSpec { VocabSize = 8192, Hidden = 512, Intermediate = 1024, Layers = 2, Heads = 8, KvHeads = 8, Seed = 61 };
        using var directory = new TempDirectory();
        TinyCheckpoints.WriteHuggingFace(directory.Path, new TinyLlama(spec));
        long fileBytes = new FileInfo(directory.File("model.safetensors")).Length;

        long before = GC.GetTotalMemory(forceFullCollection: true);
        using var model = ModelLoader.Load(directory.Path);
        long after = GC.GetTotalMemory(forceFullCollection: true);

        // Touch the last row of the classifier, at the end of the file, to show the mapping really serves the data.
        var row = new float[spec.Hidden];
        model.Weights.Classifier.ReadRow(spec.VocabSize - 1, row);
        Assert.Contains(row, v => v != 0);

        long grown = after - before;
        output.WriteLine($"file {fileBytes / 1e6:F1} MB; managed heap grew by {grown / 1e3:F1} KB");
        Assert.True(fileBytes > 50_000_000, $"the checkpoint is only {fileBytes} bytes");
        Assert.True(grown < 2_000_000, $"loading a {fileBytes / 1e6:F0} MB checkpoint grew the managed heap by {grown / 1e6:F1} MB");
    }
}
