using Kiln.Runtime.Cpu;
using Kiln.Runtime.Engine;

namespace Kiln.Tests.Engine;

/// <summary>
/// The KV pool's size: blocks for every running sequence at full length, capped by the memory share, unless set in
/// bytes. The test model has 2 layers, 2 KV heads of 16 dimensions and a context of 512 tokens, so a block of 16
/// tokens takes 2 (keys, values) x 2 layers x 16 tokens x 32 floats x 4 bytes = 8192 bytes on the CPU.
/// </summary>
public sealed class KvPoolSizeTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    private const long CpuBlockBytes = 8192;

    [Fact]
    public void Pool_NotSizedInBytes_HoldsEveryRunningSequenceAtFullLength()
    {
        // 3 sequences of 100 tokens: 7 blocks of 16 each (the 7th holds 4 tokens).
        using var engine = new InferenceEngine(fixture.Model, new EngineOptions { BlockSize = 16, MaxSequences = 3, MaxModelLength = 100, Threads = 2 });

        Assert.Equal(21, engine.GetStats().KvBlocksTotal);
        Assert.Equal(100, engine.MaxModelLength);
    }

    [Fact]
    public void Pool_WithoutMaxModelLength_IsSizedForTheModelsContext()
    {
        // 2 sequences of 512 tokens: 32 blocks each.
        using var engine = new InferenceEngine(fixture.Model, new EngineOptions { BlockSize = 16, MaxSequences = 2, Threads = 2 });

        Assert.Equal(64, engine.GetStats().KvBlocksTotal);
        Assert.Equal(512, engine.MaxModelLength);
    }

    [Theory]
    [InlineData(50, 100)] // more than the 21 blocks the sequences could use: the setting wins
    [InlineData(5, 80)] // fewer: the context shrinks to what the pool holds
    public void KvCacheBytes_WhenSet_OverridesTheRule(int blocks, int maxModelLength)
    {
        var options = new EngineOptions { BlockSize = 16, MaxSequences = 3, MaxModelLength = 100, KvCacheBytes = (blocks * CpuBlockBytes) + 100, Threads = 2 };
        using var engine = new InferenceEngine(fixture.Model, options);

        Assert.Equal(blocks, engine.GetStats().KvBlocksTotal);
        Assert.Equal(maxModelLength, engine.MaxModelLength);
    }

    [Fact]
    public void MemoryFraction_CapsThePool_WithTheRunnersBlockSizeAndMemory()
    {
        // A backend that reports blocks of 10,000 bytes and 400,000 bytes free: a quarter holds 10 blocks, far fewer
        // than the 3 x 32 the sequences could use, so the pool has 10 and the context 10 x 16 tokens.
        var runner = new SizedRunner(new CpuModelRunner(fixture.Model, maxBatchTokens: 256, threads: 2), blockBytes: 10_000, memoryAvailable: 400_000);
        using var engine = new InferenceEngine(fixture.Model, runner, new EngineOptions { BlockSize = 16, MaxSequences = 3, KvCacheMemoryFraction = 0.25, Threads = 2 });

        Assert.Equal(10, engine.GetStats().KvBlocksTotal);
        Assert.Equal(160, engine.MaxModelLength);
    }

    [Fact]
    public void MemoryFraction_AboveTheNeed_LeavesThePoolAtTheNeed()
    {
        // Room for 100 blocks of the runner's size; the sequences can use 3 x 32.
        var runner = new SizedRunner(new CpuModelRunner(fixture.Model, maxBatchTokens: 256, threads: 2), blockBytes: 10_000, memoryAvailable: 4_000_000);
        using var engine = new InferenceEngine(fixture.Model, runner, new EngineOptions { BlockSize = 16, MaxSequences = 3, KvCacheMemoryFraction = 0.25, Threads = 2 });

        Assert.Equal(96, engine.GetStats().KvBlocksTotal);
        Assert.Equal(512, engine.MaxModelLength);
    }
}
