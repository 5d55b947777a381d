using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Kiln.Functions;
using Kiln.Gateway;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

// Replays (a sample of the conversations at) the start of the Mooncake conversation trace through the gateway over three app instances (the real
// app, demo model, in this process), once with round-robin and once with prefix-affinity, each on fresh engines so
// that neither inherits the other's caches. Each hash id becomes a fixed pseudo-random block of text seeded by the
// id (BlockChars characters, ~64 tokens instead of the trace's 512), prompts keep at most MaxBlocks blocks, outputs
// are OutTokens tokens, and time is scaled by TimeScale, so that a run fits a 2-core machine in a few minutes.
var o = BenchOptions.Parse(args);
var trace = TraceRow.Read(o.TracePath, o.Window, o.Sample);
Console.WriteLine($"CPU: {Cpu.Model()} ({Environment.ProcessorCount} cores)");
Console.WriteLine($"trace: {trace.Count} requests (the conversations whose second block id divides by {o.Sample}) of the first {o.Window} of {Path.GetFileName(o.TracePath)}, {trace[^1].TimestampMs / 1000.0:F0} s of trace at time x{o.TimeScale}; " +
    $"blocks of {o.BlockChars} chars (max {o.MaxBlocks} a prompt), {o.OutTokens} output tokens, {o.Pods} pods with {o.KvCacheMiB} MiB KV each, AffinityMaxBacklogTokens {o.AffinityMax}");

var results = new List<(string Mode, Summary S)>();
foreach (var mode in new[] { "round-robin", "prefix-affinity" })
{
    results.Add((mode, await Replay.RunAsync(mode, trace, o)));
}

Console.WriteLine();
Console.WriteLine("| balancing | requests | rate req/s | prefix hit rate (engines' cached / prompt tokens) | calls per pod | TTFT mean ms | TTFT p95 ms | errors |");
Console.WriteLine("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |");
foreach (var (mode, s) in results)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {mode} | {s.Requests} | {s.Rate:F2} | {s.HitRate:P1} ({s.Cached}/{s.Prompt}) | {s.PerPod} | {s.TtftMean:F0} | {s.TtftP95:F0} | {s.Errors} |"));
}

/// <summary>
/// The bench's knobs: --window (trace rows read), --sample (keep a conversation, known by its second block id, when
/// that id divides by this: fewer calls, each conversation's turns all kept, so its prefix reuse is the trace's), --time-scale, --block-chars, --max-blocks, --out-tokens, --pods, --kv-mib, --trace,
/// --affinity-max (AffinityMaxBacklogTokens, the gateway's default 32768 unless given).
/// </summary>
internal sealed record BenchOptions(int Window, int Sample, double TimeScale, int BlockChars, int MaxBlocks, int OutTokens, int Pods, int KvCacheMiB, long AffinityMax, string TracePath)
{
    public static BenchOptions Parse(string[] args)
    {
        string Get(string name, string fallback)
        {
            var i = Array.IndexOf(args, "--" + name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        return new BenchOptions(
            int.Parse(Get("window", "900"), CultureInfo.InvariantCulture),
            int.Parse(Get("sample", "3"), CultureInfo.InvariantCulture),
            double.Parse(Get("time-scale", "0.35"), CultureInfo.InvariantCulture),
            int.Parse(Get("block-chars", "192"), CultureInfo.InvariantCulture),
            int.Parse(Get("max-blocks", "8"), CultureInfo.InvariantCulture),
            int.Parse(Get("out-tokens", "4"), CultureInfo.InvariantCulture),
            int.Parse(Get("pods", "3"), CultureInfo.InvariantCulture),
            int.Parse(Get("kv-mib", "32"), CultureInfo.InvariantCulture),
            long.Parse(Get("affinity-max", "32768"), CultureInfo.InvariantCulture),
            Get("trace", Path.Combine(AppContext.BaseDirectory, "../../../../../../shared/traces/mooncake_conversation_trace.jsonl")));
    }
}

internal sealed record TraceRow(long TimestampMs, int[] HashIds)
{
    public static List<TraceRow> Read(string path, int window, int sample) =>
        [.. File.ReadLines(path).Take(window).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            return new TraceRow(r.GetProperty("timestamp").GetInt64(), [.. r.GetProperty("hash_ids").EnumerateArray().Select(e => e.GetInt32())]);
        }).Where(r => r.HashIds.Length > 1 && r.HashIds[1] % sample == 0)];
}

/// <summary>A hash id's text: the same words for the same id on every run, exactly <c>chars</c> long.</summary>
internal static class BlockText
{
    private static readonly string[] Words = "the of and to in is was for on with as by at from that this which are be or an it not have has one all were their more".Split(' ');

    public static string For(int id, int chars)
    {
        var random = new Random(id);
        var sb = new StringBuilder(chars + 16);
        while (sb.Length < chars)
        {
            sb.Append(Words[random.Next(Words.Length)]).Append(' ');
        }

        return sb.ToString(0, chars);
    }
}

internal sealed record Summary(int Requests, double Rate, long Cached, long Prompt, string PerPod, double TtftMean, double TtftP95, int Errors)
{
    public double HitRate => Prompt == 0 ? 0 : (double)Cached / Prompt;
}

internal static class Replay
{
    public static async Task<Summary> RunAsync(string mode, List<TraceRow> trace, BenchOptions o)
    {
        var apps = new List<WebApplication>();
        for (var i = 0; i < o.Pods; i++)
        {
            var app = KilnApp.CreateStandalone(["--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning", $"--Kiln:KvCacheBytes={o.KvCacheMiB << 20}", "--Kiln:Threads=1"]);
            await app.StartAsync();
            apps.Add(app);
        }

        var urls = apps.Select(a => a.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).ToList();
        using var probe = new HttpClient();
        foreach (var u in urls)
        {
            while (!(await probe.GetAsync(new Uri(new Uri(u), "/api/ready"))).IsSuccessStatusCode)
            {
                await Task.Delay(100);
            }
        }

        await using var gateway = await GatewayHost.StartAsync(new GatewayOptions { StaticPods = string.Join(",", urls), Balancing = mode, PrefixBlockChars = o.BlockChars, AffinityMaxBacklogTokens = o.AffinityMax });
        using var http = new HttpClient { BaseAddress = gateway.Address, Timeout = TimeSpan.FromMinutes(5) };
        while (!(await http.GetStringAsync("gateway/stats")).Contains("\"ready\":true", StringComparison.Ordinal) ||
               CountReady(await http.GetStringAsync("gateway/stats")) < o.Pods)
        {
            await Task.Delay(50);
        }

        Console.WriteLine($"{mode}: replaying {trace.Count} requests...");
        var clock = Stopwatch.StartNew();
        var calls = trace.Select(async row =>
        {
            var due = TimeSpan.FromMilliseconds(row.TimestampMs * o.TimeScale);
            var wait = due - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            return await CallAsync(http, row, o);
        }).ToList();
        var outcomes = await Task.WhenAll(calls);
        var seconds = clock.Elapsed.TotalSeconds;

        // Each engine's hit rate (vllm:prefix_cache_hits_total over queries_total, in tokens) is shown per pod for
        // reference, while the table's rate sums the per-call counts (usage.prompt_tokens_details.cached_tokens).
        var engineRates = new List<string>();
        foreach (var u in urls)
        {
            var metrics = (await probe.GetStringAsync(new Uri(new Uri(u), "/api/metrics"))).Split('\n');
            double? Read(string name) => metrics.FirstOrDefault(l => l.StartsWith(name + "{", StringComparison.Ordinal)) is { } line
                ? double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture)
                : null;
            engineRates.Add(Read("vllm:prefix_cache_queries_total") is > 0 and var q && Read("vllm:prefix_cache_hits_total") is { } h ? (h / q).ToString("F3", System.Globalization.CultureInfo.InvariantCulture) : "-");
        }

        using var statsDoc = JsonDocument.Parse(await http.GetStringAsync("gateway/stats"));
        var perPod = string.Join(" / ", statsDoc.RootElement.GetProperty("pods").EnumerateArray().Select(p => p.GetProperty("forwarded").GetInt64()));
        Console.WriteLine($"{mode}: calls per pod {perPod}; engines' prefix-cache hit rates {string.Join(" / ", engineRates)}");
        foreach (var app in apps)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        var ok = outcomes.Where(x => x.Ok).ToList();
        var ttft = ok.Select(x => x.TtftMs).Order().ToList();
        return new Summary(trace.Count, trace.Count / seconds, ok.Sum(x => (long)x.Cached), ok.Sum(x => (long)x.Prompt), perPod,
            ttft.Count == 0 ? 0 : ttft.Average(), ttft.Count == 0 ? 0 : ttft[Math.Min(ttft.Count - 1, (int)Math.Ceiling(ttft.Count * 0.95) - 1)], outcomes.Count(x => !x.Ok));
    }

    private static int CountReady(string stats) => stats.Split("\"ready\":true").Length - 1;

    private static async Task<(bool Ok, double TtftMs, int Prompt, int Cached)> CallAsync(HttpClient http, TraceRow row, BenchOptions o)
    {
        var prompt = string.Concat(row.HashIds.Take(o.MaxBlocks).Select(id => BlockText.For(id, o.BlockChars)));
        var body = JsonSerializer.Serialize(new { model = "kiln-demo", prompt, max_tokens = o.OutTokens, temperature = 0, stream = true, stream_options = new { include_usage = true } });
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/completions") { Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json")) };
        var sw = Stopwatch.StartNew();
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
            {
                return (false, 0, 0, 0);
            }

            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            double ttft = -1;
            int promptTokens = 0, cached = 0;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    continue;
                }

                using var doc = JsonDocument.Parse(line.AsMemory(6));
                var root = doc.RootElement;
                if (ttft < 0 && root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0)
                {
                    ttft = sw.Elapsed.TotalMilliseconds;
                }

                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                {
                    promptTokens = usage.GetProperty("prompt_tokens").GetInt32();
                    cached = usage.TryGetProperty("prompt_tokens_details", out var d) ? d.GetProperty("cached_tokens").GetInt32() : 0;
                }
            }

            return (ttft >= 0, ttft, promptTokens, cached);
        }
        catch (HttpRequestException)
        {
            return (false, 0, 0, 0);
        }
    }
}

internal static class Cpu
{
    public static string Model()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':', 2)[1].Trim() ?? "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
