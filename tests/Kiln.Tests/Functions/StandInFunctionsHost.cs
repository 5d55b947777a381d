using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Threading.Channels;
using Grpc.Core;
using Kiln.LocalCluster;
using Kiln.Tests.Functions.HostRpc;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Kiln.Tests.Functions;

/// <summary>
/// The host's side of the Functions worker protocol, enough to drive the built worker as the real host does: a gRPC
/// FunctionRpc server on loopback (h2c), the worker dll launched with the --functions-* arguments and environment,
/// then the handshake (StartStream, WorkerInitRequest, FunctionsMetadataRequest, FunctionLoadRequest) and invocations.
/// </summary>
public sealed class StandInFunctionsHost : IAsyncDisposable
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);
    private readonly ConcurrentDictionary<string, TaskCompletionSource<StreamingMessage>> _awaited = new(StringComparer.Ordinal);
    private readonly Channel<StreamingMessage> _toWorker = Channel.CreateUnbounded<StreamingMessage>();
    private readonly StringBuilder _output = new();
    private WebApplication? _grpc;
    private Process? _worker;

    /// <summary>The worker's own Kestrel (its WorkerInitResponse capability HttpUri).</summary>
    public Uri HttpUri { get; private set; } = null!;

    /// <summary>Loaded functions by name: their ids.</summary>
    public IReadOnlyDictionary<string, string> FunctionIds { get; private set; } = new Dictionary<string, string>();

    /// <summary>What the worker printed and logged over gRPC, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>The built worker (functions/Kiln.Functions/bin/CONFIG/net10.0), built with the tests by the solution.</summary>
    public static string? FindWorkerDirectory()
    {
        string config = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        string dir = Path.Combine(AzuriteProcess.RepoRoot(), "functions", "Kiln.Functions", "bin", config, "net10.0");
        return File.Exists(Path.Combine(dir, "Kiln.Functions.dll")) && File.Exists(Path.Combine(dir, "functions.metadata")) ? dir : null;
    }

    public static async Task<StandInFunctionsHost> StartAsync(string workerDirectory, IReadOnlyDictionary<string, string> settings, CancellationToken cancellationToken)
    {
        var host = new StandInFunctionsHost();
        try
        {
            await host.StartCoreAsync(workerDirectory, settings, cancellationToken);
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    private async Task StartCoreAsync(string dir, IReadOnlyDictionary<string, string> settings, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = null);
        builder.Services.AddSingleton(this);
        _grpc = builder.Build();
        _grpc.MapGrpcService<RpcService>();
        await _grpc.StartAsync(ct);
        string grpcUri = _grpc.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/";

        // As the host does: `dotnet <worker dll>` with the --functions-* switches, the app settings as environment.
        string workerId = Guid.NewGuid().ToString(), requestId = Guid.NewGuid().ToString();
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dotnet && File.Exists(dotnet) ? dotnet : "dotnet")
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in new[]
        {
            Path.Combine(dir, "Kiln.Functions.dll"), "--functions-uri", grpcUri, "--functions-worker-id", workerId,
            "--functions-request-id", requestId, "--functions-grpc-max-message-length", "2147483647",
        })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["FUNCTIONS_WORKER_DIRECTORY"] = dir;
        psi.Environment["FUNCTIONS_APPLICATION_DIRECTORY"] = dir;
        psi.Environment["ASPNETCORE_URLS"] = null;
        foreach (var (key, value) in settings)
        {
            psi.Environment[key] = value;
        }

        _worker = Process.Start(psi) ?? throw new InvalidOperationException("could not start the worker");
        _worker.OutputDataReceived += (_, e) => Append(e.Data);
        _worker.ErrorDataReceived += (_, e) => Append(e.Data);
        _worker.BeginOutputReadLine();
        _worker.BeginErrorReadLine();

        var start = await WaitAsync("start", ct);
        Assert.Equal(workerId, start.StartStream.WorkerId);

        var init = new WorkerInitRequest { HostVersion = "4.1040.300.0", WorkerDirectory = dir, FunctionAppDirectory = dir };
        init.Capabilities["HttpUri"] = string.Empty;
        var initResponse = (await SendAsync(new StreamingMessage { RequestId = requestId, WorkerInitRequest = init }, "init", ct)).WorkerInitResponse;
        Assert.True(initResponse.Result.Status == StatusResult.Types.Status.Success, $"init failed: {initResponse.Result.Exception?.Message}");
        Assert.True(initResponse.Capabilities.TryGetValue("HttpUri", out string? httpUri), $"no HttpUri in {initResponse.Capabilities}");
        HttpUri = new Uri(httpUri!.TrimEnd('/') + "/");

        var metadata = (await SendAsync(new StreamingMessage { RequestId = requestId, FunctionsMetadataRequest = new FunctionsMetadataRequest { FunctionAppDirectory = dir } }, "metadata", ct)).FunctionMetadataResponse;
        Assert.True(metadata.Result.Status == StatusResult.Types.Status.Success, $"metadata failed: {metadata.Result.Exception?.Message}");
        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var function in metadata.FunctionMetadataResults)
        {
            var load = new FunctionLoadRequest { FunctionId = function.FunctionId, Metadata = function };
            var loaded = (await SendAsync(new StreamingMessage { RequestId = requestId, FunctionLoadRequest = load }, "load:" + function.FunctionId, ct)).FunctionLoadResponse;
            Assert.True(loaded.Result.Status == StatusResult.Types.Status.Success, $"{function.Name} did not load: {loaded.Result.Exception?.Message}");
            ids[function.Name] = function.FunctionId;
        }

        FunctionIds = ids;
    }

    /// <summary>Sends an InvocationRequest and waits for its InvocationResponse.</summary>
    public async Task<InvocationResponse> InvokeAsync(InvocationRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.TraceContext ??= new RpcTraceContext();
        var reply = await SendAsync(new StreamingMessage { RequestId = Guid.NewGuid().ToString(), InvocationRequest = request }, "invoke:" + request.InvocationId, cancellationToken);
        return reply.InvocationResponse;
    }

    private async Task<StreamingMessage> SendAsync(StreamingMessage message, string awaitKey, CancellationToken ct)
    {
        var reply = Awaited(awaitKey).Task; // registered first: the answer may come before the write returns
        await _toWorker.Writer.WriteAsync(message, ct);
        return await WaitFor(reply, awaitKey, ct);
    }

    private Task<StreamingMessage> WaitAsync(string key, CancellationToken ct) => WaitFor(Awaited(key).Task, key, ct);

    private async Task<StreamingMessage> WaitFor(Task<StreamingMessage> reply, string key, CancellationToken ct)
    {
        var exited = _worker!.WaitForExitAsync(ct);
        var done = await Task.WhenAny(reply, exited, Task.Delay(StepTimeout, ct));
        if (done != reply)
        {
            throw new InvalidOperationException($"no '{key}' from the worker ({(done == exited ? "it exited" : "timed out")}):\n{Output}");
        }

        return await reply;
    }

    private TaskCompletionSource<StreamingMessage> Awaited(string key) =>
        _awaited.GetOrAdd(key, _ => new TaskCompletionSource<StreamingMessage>(TaskCreationOptions.RunContinuationsAsynchronously));

    private void Received(StreamingMessage message)
    {
        string? key = message.ContentCase switch
        {
            StreamingMessage.ContentOneofCase.StartStream => "start",
            StreamingMessage.ContentOneofCase.WorkerInitResponse => "init",
            StreamingMessage.ContentOneofCase.FunctionMetadataResponse => "metadata",
            StreamingMessage.ContentOneofCase.FunctionLoadResponse => "load:" + message.FunctionLoadResponse.FunctionId,
            StreamingMessage.ContentOneofCase.InvocationResponse => "invoke:" + message.InvocationResponse.InvocationId,
            _ => null,
        };
        if (message.ContentCase == StreamingMessage.ContentOneofCase.RpcLog)
        {
            Append($"[rpc {message.RpcLog.Level}] {message.RpcLog.Category}: {message.RpcLog.Message}");
        }
        else if (key is not null)
        {
            Awaited(key).TrySetResult(message);
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _toWorker.Writer.TryComplete();
        if (_worker is not null)
        {
            try
            {
                if (!_worker.HasExited)
                {
                    _worker.Kill(entireProcessTree: true);
                    await _worker.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
                }
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException)
            {
                // already gone, or killed and not waited for longer
            }

            _worker.Dispose();
        }

        if (_grpc is not null)
        {
            await _grpc.StopAsync(CancellationToken.None);
            await _grpc.DisposeAsync();
        }
    }

    /// <summary>The host's end of EventStream: everything queued for the worker goes out, everything in is dispatched.</summary>
    private sealed class RpcService(StandInFunctionsHost host) : FunctionRpc.FunctionRpcBase
    {
        public override async Task EventStream(IAsyncStreamReader<StreamingMessage> requestStream, IServerStreamWriter<StreamingMessage> responseStream, ServerCallContext context)
        {
            var pump = Task.Run(async () =>
            {
                await foreach (var message in host._toWorker.Reader.ReadAllAsync(context.CancellationToken))
                {
                    await responseStream.WriteAsync(message, context.CancellationToken);
                }
            });
            try
            {
                await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
                {
                    host.Received(message);
                }
            }
            catch (OperationCanceledException)
            {
                // the worker or the test went away
            }

            try
            {
                await pump;
            }
            catch (OperationCanceledException)
            {
                // the call ended
            }
        }
    }
}
