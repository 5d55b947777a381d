using System.Text;
using System.Text.Json;
using Azure.Storage.Blobs;
using Kiln.Tests.Functions.HostRpc;
using Kiln.Tests.Infrastructure;
using Kiln.Tests.Reference;

namespace Kiln.Tests.Functions;

/// <summary>
/// Proves the built worker runs under the Functions host: <see cref="StandInFunctionsHost"/> launches it as the host
/// does and speaks the host's gRPC protocol; HTTP calls go to the worker's Kestrel with x-ms-invocation-id next to the
/// InvocationRequest (ASP.NET Core integration), the queue function gets a job as input_data with trigger metadata.
/// </summary>
public sealed class HostConformanceTests(AzuriteFixture azurite) : IClassFixture<AzuriteFixture>, IDisposable
{
    private const string ApiKey = "conformance-key";
    private readonly TempGguf _model = new(KilnServerFixture.ModelOptions);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Worker_UnderStandInHost_ServesChat_StreamedAndNot()
    {
        await using var host = await StartHostAsync(new Dictionary<string, string>());
        Assert.Contains("ChatCompletions", host.FunctionIds.Keys);
        Assert.Contains("QueueJob", host.FunctionIds.Keys);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };

        // The model loads in the background after start-up; the API answers 503 until it is ready.
        var until = DateTime.UtcNow.AddSeconds(90);
        string body;
        int status;
        do
        {
            (status, body) = await InvokeHttpAsync(host, http, "ChatCompletions", "api/v1/chat/completions", Chat(stream: false));
            if (status == 503)
            {
                Assert.True(DateTime.UtcNow < until, "the model did not load");
                await Task.Delay(200, Ct);
            }
        }
        while (status == 503);

        Assert.True(status == 200, $"{status}: {body}\n{host.Output}");
        using (var json = JsonDocument.Parse(body))
        {
            Assert.Equal("chat.completion", json.RootElement.GetProperty("object").GetString());
            Assert.Equal(KilnServerFixture.ModelId, json.RootElement.GetProperty("model").GetString());
        }

        (status, body) = await InvokeHttpAsync(host, http, "ChatCompletions", "api/v1/chat/completions", Chat(stream: true));
        Assert.Equal(200, status);
        var events = body.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).ToArray();
        Assert.Equal("data: [DONE]", events[^1]);
        Assert.True(events.Length > 2, body);
        Assert.Contains("chat.completion.chunk", events[0], StringComparison.Ordinal);

        // The key is checked in this mode too: the host forwards the call, the worker refuses it.
        (status, body) = await InvokeHttpAsync(host, http, "ChatCompletions", "api/v1/chat/completions", Chat(stream: false), key: "wrong-key");
        Assert.Equal(401, status);
        Assert.Contains("invalid_api_key", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Worker_UnderStandInHost_RunsTheQueueFunction_NeedsAzurite()
    {
        string connection = azurite.ConnectionString;
        string container = "conformance-" + Guid.NewGuid().ToString("N")[..12];
        await using var host = await StartHostAsync(new Dictionary<string, string>
        {
            ["AzureWebJobsStorage"] = connection,
            ["Kiln__ResultContainer"] = container,
        });

        string request = $$"""{"model": "{{KilnServerFixture.ModelId}}", "prompt": "once upon", "max_tokens": 4}""";
        string job = $$"""{"id": "host-job-1", "request": {{request}}}""";
        var until = DateTime.UtcNow.AddSeconds(90);
        int attempt = 0;
        InvocationResponse response;
        do
        {
            // While the model loads the job fails (transient): the host would retry it, as this loop does.
            var invocation = new InvocationRequest { InvocationId = Guid.NewGuid().ToString(), FunctionId = host.FunctionIds["QueueJob"] };
            invocation.InputData.Add(new ParameterBinding { Name = "message", Data = new TypedData { String = job } });
            invocation.TriggerMetadata["Id"] = new TypedData { String = "msg-1" };
            invocation.TriggerMetadata["DequeueCount"] = new TypedData { Json = (++attempt).ToString(System.Globalization.CultureInfo.InvariantCulture) };
            invocation.TriggerMetadata["InsertionTime"] = new TypedData { Json = JsonSerializer.Serialize(DateTimeOffset.UtcNow) };
            response = await host.InvokeAsync(invocation, Ct);
            if (response.Result.Status != StatusResult.Types.Status.Success)
            {
                Assert.True(DateTime.UtcNow < until, $"the job kept failing: {response.Result.Exception?.Message}\n{host.Output}");
                await Task.Delay(200, Ct);
            }
        }
        while (response.Result.Status != StatusResult.Types.Status.Success);

        var blob = new BlobContainerClient(connection, container).GetBlobClient("host-job-1.json");
        using var result = JsonDocument.Parse((await blob.DownloadContentAsync(Ct)).Value.Content.ToMemory());
        Assert.Equal("text_completion", result.RootElement.GetProperty("response").GetProperty("object").GetString());
    }

    private async Task<StandInFunctionsHost> StartHostAsync(Dictionary<string, string> settings)
    {
        string? dir = StandInFunctionsHost.FindWorkerDirectory();
        if (dir is null)
        {
            Assert.Skip("the worker is not built (functions/Kiln.Functions/bin/<config>/net10.0): build the solution first");
        }

        settings["Kiln__Model"] = _model.Path;
        settings["Kiln__ApiKeys"] = ApiKey; // under the host the worker must have a key (or Kiln__AllowAnonymous)
        settings["Kiln__KvCacheBytes"] = "33554432";
        settings["Kiln__Threads"] = "2";
        settings["Kiln__JobQueue"] = "kiln-jobs";
        settings["Logging__LogLevel__Default"] = "Warning";
        var host = await StandInFunctionsHost.StartAsync(dir, settings, Ct);
        await WaitUntilListeningAsync(host.HttpUri);
        return host;
    }

    /// <summary>
    /// The worker announces its HttpUri in WorkerInitResponse, possibly before its Kestrel accepts connections;
    /// like a host, wait until the port answers before forwarding requests to it.
    /// </summary>
    private static async Task WaitUntilListeningAsync(Uri uri)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                using var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(uri.Host, uri.Port, Ct);
                return;
            }
            catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, Ct);
            }
        }
    }

    /// <summary>What the host does for an HTTP trigger: forward the request with x-ms-invocation-id, and invoke.</summary>
    private static async Task<(int Status, string Body)> InvokeHttpAsync(StandInFunctionsHost host, HttpClient http, string function, string path, string json, string? key = ApiKey)
    {
        string invocationId = Guid.NewGuid().ToString();
        var url = new Uri(host.HttpUri, path);
        using var message = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        message.Headers.Add("x-ms-invocation-id", invocationId);
        if (key is not null)
        {
            message.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }

        var sent = http.SendAsync(message, HttpCompletionOption.ResponseContentRead, Ct);

        var request = new InvocationRequest { InvocationId = invocationId, FunctionId = host.FunctionIds[function] };
        request.InputData.Add(new ParameterBinding { Name = "request", Data = new TypedData { Http = new RpcHttp { Method = "POST", Url = url.ToString() } } });
        var invoked = await host.InvokeAsync(request, Ct);
        using var response = await sent;
        string body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(invoked.Result.Status == StatusResult.Types.Status.Success, $"invocation failed: {invoked.Result.Exception?.Message}\n{host.Output}");
        return ((int)response.StatusCode, body);
    }

    private static string Chat(bool stream) =>
        $$"""{"model": "{{KilnServerFixture.ModelId}}", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "stream": {{(stream ? "true" : "false")}}}""";

    public void Dispose() => _model.Dispose();
}
