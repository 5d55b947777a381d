using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Kiln.Functions.Hosting;
using Kiln.Kernels.Cuda;
using Microsoft.Extensions.Configuration;

namespace Kiln.Tests.Functions;

/// <summary>
/// The app setting <c>Kiln:Device</c> (environment <c>Kiln__Device</c>): cpu by default, cuda with the GPU's share of
/// KV memory, anything else a start-up error naming the setting; cuda without a GPU leaves the app up and not ready.
/// </summary>
public sealed class DeviceSettingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void Unset_IsCpuWithTheEngineDefaults()
    {
        var settings = Settings([]);
        Assert.Equal(KilnDevice.Cpu, settings.Device);
        Assert.Equal("cpu", settings.DeviceName);
        Assert.Equal(0.25, settings.Engine.KvCacheMemoryFraction); // the CPU default the README states
    }

    [Fact]
    public void Cuda_TakesMostOfTheGpuForKv_UnlessTheFractionIsSet()
    {
        var cuda = Settings(new() { ["Kiln:Device"] = "CUDA" });
        Assert.Equal(KilnDevice.Cuda, cuda.Device);
        Assert.Equal("cuda", cuda.DeviceName);
        Assert.Equal(0.9, cuda.Engine.KvCacheMemoryFraction); // "0.9 unless set" on GPUs, as the README states

        var configured = Settings(new() { ["Kiln:Device"] = "cuda", ["Kiln:KvCacheMemoryFraction"] = "0.5" });
        Assert.Equal(0.5, configured.Engine.KvCacheMemoryFraction);
    }

    [Fact]
    public async Task UnknownDevice_FailsTheStart_NamingTheSettingAndTheChoices()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Settings(new() { ["Kiln:Device"] = "gpu" }));
        Assert.Contains("Kiln:Device", error.Message, StringComparison.Ordinal);
        Assert.Contains("'gpu'", error.Message, StringComparison.Ordinal);
        Assert.Contains("cpu or cuda", error.Message, StringComparison.Ordinal);

        // The app itself refuses to start with it, as with any malformed setting.
        var start = await Assert.ThrowsAsync<InvalidOperationException>(async () => await KilnServer.StartAsync(null, ["Kiln:Device=gpu"]));
        Assert.Contains("Kiln:Device", start.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CudaWithoutAGpu_AppStaysUp_ReadyAnswers503WithTheReason()
    {
        if (CudaBackend.UnavailableReason is not { } reason)
        {
            Assert.Skip("this machine has a GPU; the no-GPU answer is checked where there is none");
            return;
        }

        await using var server = await KilnServer.StartAsync(null, ["Kiln:Device=cuda"]);
        await server.WaitUntilLoadedAsync();
        Assert.Equal(ModelState.Failed, server.Model.State);

        using (var health = await server.Http.GetAsync(new Uri("health", UriKind.Relative), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using (var ready = await server.Http.GetAsync(new Uri("ready", UriKind.Relative), Ct))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            var body = await ready.Content.ReadFromJsonAsync<JsonElement>(Ct);
            Assert.Equal("failed", body.GetProperty("status").GetString());
            Assert.Equal("cuda", body.GetProperty("device").GetString());
            string? message = body.GetProperty("error").GetString();
            Assert.Contains("Kiln:Device is cuda", message, StringComparison.Ordinal);
            Assert.Contains(reason, message, StringComparison.Ordinal);
        }

        var stats = await server.Http.GetFromJsonAsync<JsonElement>(new Uri("stats", UriKind.Relative), Ct);
        Assert.Equal("cuda", stats.GetProperty("device").GetString());

        using var chat = await server.Http.PostAsJsonAsync("v1/completions", new { model = KilnSettings.DemoModelId, prompt = "hi" }, Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
    }

    private static KilnSettings Settings(Dictionary<string, string?> values) =>
        KilnSettings.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values).Build());
}
