using System.Globalization;
using Kiln.Runtime.Engine;
using Kiln.Runtime.Kv;
using Kiln.Tests.Engine;
using Kiln.Tests.Numerics;

namespace Kiln.Tests.Kv;

/// <summary>
/// The KV pool is committed as it is used: creating a 1 GiB pool leaves this process's resident memory (VmRSS) almost
/// where it was. Runs alone (<see cref="ProcessWideMeasurements"/>) so that no other test's allocations count.
/// </summary>
[Collection(nameof(ProcessWideMeasurements))]
public sealed class LazyKvPoolTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    private const long GiB = 1L << 30;
    private const long Allowed = 100L << 20;

    [Fact]
    public void PagedKvCache_OfOneGiB_IsNotCommittedUntilWritten()
    {
        SkipUnlessLinux();

        // 2 x 8192 blocks x 2 layers x 16 tokens x 512 floats x 4 bytes = 1 GiB of keys and values.
        long before = ResidentBytes();
        using var cache = new PagedKvCache(layerCount: 2, kvDim: 512, blockCount: 8192, blockSize: 16, maxSequences: 1, maxBlocksPerSequence: 8192);
        long grown = ResidentBytes() - before;

        Assert.True(grown < Allowed, $"creating a 1 GiB pool grew VmRSS by {grown >> 20} MiB");

        // Never written reads zero, as cleared memory did; a write lands where it is read back.
        cache.Bind([8191], 1, 1);
        Assert.All(cache.Key(1, 0, 15).ToArray(), x => Assert.Equal(0f, x));
        cache.Value(1, 0, 15)[3] = 2.5f;
        Assert.Equal(2.5f, cache.Value(1, 0, 15)[3]);
    }

    [Fact]
    public void Engine_WithOneGiBPool_DoesNotCommitIt()
    {
        SkipUnlessLinux();

        long before = ResidentBytes();
        using var engine = new InferenceEngine(fixture.Model, new EngineOptions { KvCacheBytes = GiB, BlockSize = 16, Threads = 2 });
        long grown = ResidentBytes() - before;

        Assert.Equal((int)(GiB / 8192), engine.GetStats().KvBlocksTotal); // 8192-byte blocks (see KvPoolSizeTests)
        Assert.True(grown < Allowed, $"an engine over a 1 GiB pool grew VmRSS by {grown >> 20} MiB");
    }

    private static void SkipUnlessLinux()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("resident memory is read from /proc/self/status, which only Linux has");
        }
    }

    /// <summary>VmRSS of this process, in bytes.</summary>
    private static long ResidentBytes()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
