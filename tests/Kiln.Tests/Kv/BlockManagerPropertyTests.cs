namespace Kiln.Tests.Kv;

public class BlockManagerPropertyTests(ITestOutputHelper output)
{
    private const int Operations = 4000;

    [Theory]
    [InlineData(1, 1, 10)]
    [InlineData(2, 2, 16)]
    [InlineData(3, 4, 24)]
    [InlineData(4, 3, 20)]
    [InlineData(5, 2, 40)]
    [InlineData(6, 4, 12)]
    public void RandomOperations_MatchModel(int seed, int blockSize, int blockCount)
    {
        var simulation = new BlockManagerSimulation(seed, blockSize, blockCount, caching: true, hasher: null, exact: true);
        simulation.Run(Operations);
        Report(simulation);
        // The run must exercise what it claims to check (with one-token blocks no partial block is ever shared).
        Assert.True(simulation.HitTokens > 0 && simulation.Evictions > 0 && simulation.Refusals > 0);
        Assert.True(simulation.Copies > 0 || blockSize == 1);
    }

    [Theory]
    [InlineData(7, 2, 16)]
    [InlineData(8, 4, 24)]
    public void RandomOperations_WithoutPrefixCaching_NeverHit(int seed, int blockSize, int blockCount)
    {
        var simulation = new BlockManagerSimulation(seed, blockSize, blockCount, caching: false, hasher: null, exact: true);
        simulation.Run(Operations);
        Report(simulation);
        Assert.Equal(0, simulation.HitTokens);
    }

    [Theory]
    [InlineData(9, 2, 16)]
    [InlineData(10, 4, 24)]
    public void RandomOperations_WithConstantHash_NeverServeWrongKv(int seed, int blockSize, int blockCount)
    {
        // Every block collides with every other: only verified content may hit, which the simulated KV store checks.
        var simulation = new BlockManagerSimulation(seed, blockSize, blockCount, caching: true, static (_, _) => 42UL, exact: false);
        simulation.Run(Operations);
        Report(simulation);
        Assert.True(simulation.HitTokens > 0);
    }

    [Theory]
    [InlineData(12, 2, 16)]
    [InlineData(13, 4, 24)]
    public void RandomOperations_WithPrefixBlindHash_NeverServeWrongKv(int seed, int blockSize, int blockCount)
    {
        // Equal blocks after different prefixes collide: the parent check must reject them.
        var simulation = new BlockManagerSimulation(seed, blockSize, blockCount, caching: true, PrefixBlind, exact: false);
        simulation.Run(Operations);
        Report(simulation);
        Assert.True(simulation.HitTokens > 0);
    }

    [Theory]
    [InlineData(11, 2, 16)]
    [InlineData(14, 3, 20)]
    public void RandomOperations_WithThreeValuedHash_NeverServeWrongKv(int seed, int blockSize, int blockCount)
    {
        // A chained hash with three values: collisions everywhere, yet several entries live at once.
        var simulation = new BlockManagerSimulation(seed, blockSize, blockCount, caching: true, ThreeValued, exact: false);
        simulation.Run(Operations);
        Report(simulation);
        Assert.True(simulation.HitTokens > 0);
    }

    internal static ulong ThreeValued(ulong previous, ReadOnlySpan<int> tokens)
    {
        var hash = previous;
        foreach (var token in tokens)
        {
            hash += (ulong)token;
        }

        return hash % 3;
    }

    internal static ulong PrefixBlind(ulong previous, ReadOnlySpan<int> tokens)
    {
        var hash = 17UL;
        foreach (var token in tokens)
        {
            hash = (hash * 31) + (ulong)token;
        }

        return hash;
    }

    private void Report(BlockManagerSimulation simulation) =>
        output.WriteLine($"allocations {simulation.Allocations}, hit tokens {simulation.HitTokens}, evictions {simulation.Evictions}, copies {simulation.Copies}, refusals {simulation.Refusals}");
}
