using Kiln.Runtime.Cpu;
using Kiln.Runtime.Loading;
using Kiln.Runtime.Synthetic;
using Kiln.Tests.Infrastructure;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Kv;

/// <summary>The copy-on-write copy of each CPU pool: the one runner's, and the sharded pool of a tensor-parallel group.</summary>
public sealed class CopyBlockTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void CopiedBlock_DecodesLikeItsSource(int tensorParallelSize)
    {
        using var file = new TempGguf(new RandomLlamaOptions { VocabSize = 300, Hidden = 64, Intermediate = 128, Layers = 2, Heads = 4, KvHeads = 2, Seed = 21 });
        using var model = ModelLoader.Load(file.Path);
        using var runner = ModelRunners.CreateCpu(model, tensorParallelSize, maxBatchTokens: 16, maxContext: 16, threads: 2);

        CopyBlockCheck.CopiedBlock_DecodesLikeItsSource(runner);
    }
}
