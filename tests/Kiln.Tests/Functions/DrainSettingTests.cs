using Kiln.Functions;
using Kiln.Functions.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Kiln.Tests.Functions;

/// <summary>The setting <c>Kiln:DrainTimeoutSeconds</c>: 100 s by default, and the host's shutdown timeout follows it.</summary>
public sealed class DrainSettingTests
{
    [Fact]
    public void Unset_Is100Seconds_BelowTheManifestsGracePeriod()
    {
        var settings = KilnSettings.FromConfiguration(new ConfigurationBuilder().Build());
        Assert.Equal(TimeSpan.FromSeconds(100), settings.DrainTimeout);
        Assert.True(settings.DrainTimeout + KilnSettings.StopMargin < TimeSpan.FromSeconds(120));
    }

    [Fact]
    public async Task HostShutdownTimeout_IsTheDrainPlusTheStopMargin()
    {
        await using var app = KilnApp.CreateStandalone(["--urls=http://127.0.0.1:0", "--Kiln:DrainTimeoutSeconds=7.5"]);
        Assert.Equal(TimeSpan.FromSeconds(7.5), app.Services.GetRequiredService<KilnSettings>().DrainTimeout);
        Assert.Equal(TimeSpan.FromSeconds(7.5) + KilnSettings.StopMargin, app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("-1")]
    public void Malformed_FailsTheStart_NamingTheSetting(string value)
    {
        var error = Assert.Throws<InvalidOperationException>(() => KilnApp.CreateStandalone([$"--Kiln:DrainTimeoutSeconds={value}"]));
        Assert.Contains("Kiln:DrainTimeoutSeconds", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{value}'", error.Message, StringComparison.Ordinal);
    }
}
