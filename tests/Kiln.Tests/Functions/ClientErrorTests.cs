using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Kiln.Tests.Infrastructure;
using Kiln.Tests.Reference;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Kiln.Tests.Functions;

/// <summary>
/// A client's broken body is the client's error: text that is not Unicode 400, a body over the bound 413, a body cut
/// short 400, a body too slow 408, each with an OpenAI error body and one log line without a stack trace, never a
/// 500. Spoken over a raw socket where an HTTP client would refuse to send such a request.
/// </summary>
public sealed class ClientErrorTests : IAsyncLifetime
{
    private const int BodyLimit = 64 * 1024;
    private readonly TempGguf _file = new(KilnServerFixture.ModelOptions);
    private readonly CapturedLogs _logs = new();
    private KilnServer _server = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _server = await KilnServer.StartAsync(_file.Path, [$"Kiln:MaxRequestBodyBytes={BodyLimit}"], builder =>
        {
            _logs.AddTo(builder.Logging);

            // Kestrel's slow-body guard, made quick for the test (its default is 240 bytes/s after 5 s).
            builder.WebHost.ConfigureKestrel(k => k.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 1000, gracePeriod: TimeSpan.FromSeconds(2)));
        });
        await _server.WaitUntilLoadedAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _file.Dispose();
        _logs.Dispose();
    }

    [Fact]
    public async Task InvalidUtf8InAString_Is400()
    {
        byte[] body = [.. Encoding.ASCII.GetBytes("{\"model\":\"model.gguf\",\"prompt\":\"ab"), 0xC3, 0x28, 0xFF, .. Encoding.ASCII.GetBytes("\"}")];
        var (status, json) = await SendAsync(body.Length, async s => await s.WriteAsync(body, Ct));
        AssertError(status, json, 400);
        AssertLoggedOnceWithoutTrace(400);
    }

    [Fact]
    public async Task BodyOverTheBound_Is413_WhetherDeclaredOrNot()
    {
        var (declared, json) = await SendAsync(BodyLimit + 1, _ => Task.CompletedTask); // refused on the header alone
        AssertError(declared, json, 413, "request_too_large");

        byte[] big = Encoding.ASCII.GetBytes("{\"model\":\"model.gguf\",\"prompt\":\"" + new string('a', BodyLimit) + "\"}");
        var (chunked, json2) = await SendAsync(null, async s =>
        {
            await s.WriteAsync(Encoding.ASCII.GetBytes($"{big.Length:X}\r\n"), Ct);
            await s.WriteAsync(big, Ct);
            await s.WriteAsync("\r\n0\r\n\r\n"u8.ToArray(), Ct);
        });
        AssertError(chunked, json2, 413, "request_too_large");
        AssertLoggedOnceWithoutTrace(413, count: 2);
    }

    [Fact]
    public async Task BodyCutShort_IsNeverA500()
    {
        // A client that closes its side mid-body has gone away as far as Kestrel is concerned: the request is aborted
        // and nothing can be answered. What must not happen is the old 500 with a stack trace in the log.
        var (status, _) = await SendAsync(1000, async s =>
        {
            await s.WriteAsync("{\"model\":\"model.gguf\",\"prompt\":\"hi"u8.ToArray(), Ct);
            await s.FlushAsync(Ct);
        }, halfClose: true);
        Assert.True(status is 0 or 400, $"expected no answer (aborted) or 400, got {status}");
        Assert.DoesNotContain(_logs.Entries, e => e.Level >= LogLevel.Error || e.Exception is not null && e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task BodyTooSlow_Is408()
    {
        var (status, json) = await SendAsync(10_000, async s =>
        {
            for (int i = 0; i < 40; i++)
            {
                await s.WriteAsync("{"u8.ToArray(), Ct);
                await s.FlushAsync(Ct);
                await Task.Delay(200, Ct); // 5 bytes a second against the 1000 required
            }
        });
        AssertError(status, json, 408, "request_timeout");
        AssertLoggedOnceWithoutTrace(408);
    }

    private static void AssertError(int status, string json, int expected, string? code = null)
    {
        Assert.True(status == expected, $"expected {expected}, got {status}: {json}");
        var error = JsonDocument.Parse(json).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        if (code is not null)
        {
            Assert.Equal(code, error.GetProperty("code").GetString());
        }
    }

    private void AssertLoggedOnceWithoutTrace(int status, int count = 1)
    {
        var refused = _logs.Entries.Where(e => e.Message.StartsWith("Refused a completions request: " + status, StringComparison.Ordinal)).ToList();
        Assert.Equal(count, refused.Count);
        Assert.All(refused, e => Assert.Null(e.Exception));
        Assert.DoesNotContain(_logs.AtLeast(LogLevel.Warning), e => e.Exception is not null); // no stack trace anywhere
    }

    /// <summary>A POST to /api/v1/completions with the body <paramref name="write"/> sends; the status and body of the answer.</summary>
    private async Task<(int Status, string Body)> SendAsync(long? contentLength, Func<NetworkStream, Task> write, bool halfClose = false)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(_server.Root.Host, _server.Root.Port, Ct);
        var stream = client.GetStream();
        string length = contentLength is long n ? $"Content-Length: {n}\r\n" : "Transfer-Encoding: chunked\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /api/v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n{length}\r\n"), Ct);
        try
        {
            await write(stream);
        }
        catch (IOException)
        {
            // the server may answer and close before the whole body is sent: read what it said
        }

        if (halfClose)
        {
            client.Client.Shutdown(SocketShutdown.Send);
        }

        using var reader = new StreamReader(stream, Encoding.UTF8);
        string response;
        try
        {
            response = await reader.ReadToEndAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            // An aborted request may end in a reset rather than a close, depending on what was still unread.
            return (0, string.Empty);
        }

        if (response.Length == 0)
        {
            return (0, string.Empty); // closed without an answer
        }

        int status = int.Parse(response.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        int start = response.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
        string body = response[start..];
        return (status, Dechunk(body));
    }

    /// <summary>The JSON object inside a possibly chunked body.</summary>
    private static string Dechunk(string body)
    {
        int open = body.IndexOf('{', StringComparison.Ordinal);
        int close = body.LastIndexOf('}');
        return open >= 0 && close > open ? body[open..(close + 1)] : body;
    }
}
