using Kiln.Gateway;

namespace Kiln.Tests.Gateway;

/// <summary>Invalid settings stop the start with a message naming the setting.</summary>
public sealed class OptionsTests
{
    [Theory]
    [InlineData("Gateway:PodSelector", null, null, "prefix-affinity", 256)]
    [InlineData("Gateway:Balancing", "app=x", null, "random", 256)]
    [InlineData("Gateway:StaticPods", null, "not-a-url", "prefix-affinity", 256)]
    [InlineData("Gateway:MaxHeldRequests", "app=x", null, "prefix-affinity", 0)]
    public void AnInvalidSetting_FailsTheStartNamingIt(string setting, string? selector, string? staticPods, string balancing, int maxHeld)
    {
        var options = new GatewayOptions { PodSelector = selector, StaticPods = staticPods, Balancing = balancing, MaxHeldRequests = maxHeld };

        var e = Assert.Throws<InvalidOperationException>(() => GatewayHost.Build([], options));

        Assert.Contains(setting, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheDefaults_AreTheDocumentedOnes()
    {
        var o = new GatewayOptions();
        Assert.Equal((80, 1000, 500, 256, 300, 8388608L, "kiln-llama", 1000, 256, "prefix-affinity", 2048, 32768L),
            (o.PodPort, o.DiscoveryIntervalMs, o.StatsIntervalMs, o.MaxHeldRequests, o.MaxHoldSeconds, o.MaxRequestBodyBytes, o.ScaledObjectName, o.ReportIntervalMs, o.DefaultMaxTokens, o.Balancing, o.PrefixBlockChars, o.AffinityMaxBacklogTokens));
    }
}
