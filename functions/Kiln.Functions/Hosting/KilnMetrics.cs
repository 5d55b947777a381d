using System.Text;
using Kiln.Runtime.Engine;
using Prometheus;

namespace Kiln.Functions.Hosting;

/// <summary>
/// The Prometheus metrics of one app. First vLLM's series, under vLLM's names and meanings and labelled
/// <c>model_name</c>, so the dashboards and autoscaling rules built for vLLM work unchanged; then <c>kiln_*</c> series
/// where they add something (the token backlog the scaler uses, block counts, rates, calls by status). Gauges and
/// counters are read from <see cref="InferenceEngine.GetStats"/> at each scrape; the latency histograms are observed by
/// the request handlers. The <c>kiln_*</c> series use prometheus-net with a registry per app (several apps in one
/// process, in tests, do not share series); the <c>vllm:</c> ones are written here, as prometheus-net refuses colons.
/// </summary>
public sealed class KilnMetrics
{
    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private static readonly double[] RequestBuckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200];

    private readonly ModelHost _model;
    private readonly string _modelLabel;
    private readonly Gauge _loaded;
    private readonly Gauge _sequences;
    private readonly Gauge _backlog;
    private readonly Gauge _kvBlocks;
    private readonly Gauge _kvUsed;
    private readonly Gauge _kvFree;
    private readonly Gauge _kvCached;
    private readonly Gauge _promptTokensPerSecond;
    private readonly Gauge _outputTokensPerSecond;

    public KilnMetrics(ModelHost model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _modelLabel = PrometheusText.Label("model_name", model.ModelId);
        TimeToFirstToken = new("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", LatencyBuckets);
        InterTokenLatency = new("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", LatencyBuckets);
        EndToEndLatency = new("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", RequestBuckets);

        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        _loaded = f.CreateGauge("kiln_model_loaded", "1 once the model is loaded and the engine runs.");
        _sequences = f.CreateGauge("kiln_sequences_running", "Samples running in the engine (a request of n samples counts n).");
        _backlog = f.CreateGauge("kiln_token_backlog", "Prompt tokens still to prefill plus output tokens still owed (what the KEDA scaler scales on).");
        _kvBlocks = f.CreateGauge("kiln_kv_blocks", "KV blocks in the pool.");
        _kvUsed = f.CreateGauge("kiln_kv_blocks_used", "KV blocks held by sequences.");
        _kvFree = f.CreateGauge("kiln_kv_blocks_free", "KV blocks free (cached ones included).");
        _kvCached = f.CreateGauge("kiln_kv_blocks_cached", "Free KV blocks that still hold a cached prefix.");
        _promptTokensPerSecond = f.CreateGauge("kiln_prompt_tokens_per_second", "Prompt tokens prefilled per second over the last second.");
        _outputTokensPerSecond = f.CreateGauge("kiln_generation_tokens_per_second", "Output tokens generated per second over the last second.");
        HttpRequests = f.CreateCounter("kiln_http_requests_total", "API calls by endpoint and status (aborted: the client went away).", new CounterConfiguration { LabelNames = ["endpoint", "status"] });
        Registry.AddBeforeCollectCallback(Update);
    }

    public CollectorRegistry Registry { get; }

    /// <summary>From a call's submission to its first token.</summary>
    public PrometheusHistogram TimeToFirstToken { get; }

    /// <summary>Between consecutive tokens of one sample.</summary>
    public PrometheusHistogram InterTokenLatency { get; }

    /// <summary>From a call's submission to its last token, for calls whose every stream ended.</summary>
    public PrometheusHistogram EndToEndLatency { get; }

    public Counter HttpRequests { get; }

    /// <summary>Prometheus text format, version 0.0.4: the vLLM series, then the kiln ones.</summary>
    public async Task WriteAsync(Stream destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var text = new StringBuilder(4096);
        WriteVllmSeries(text);
        await destination.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), cancellationToken).ConfigureAwait(false);
        await Registry.CollectAndExportAsTextAsync(destination, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// vLLM's names and meanings (docs.vllm.ai, "Production Metrics"): requests (not samples) running and waiting, the
    /// KV usage as a fraction, prefix-cache queries and hits in tokens, tokens, preemptions, requests by finish reason
    /// (stop, length, abort) and the latency histograms. Before the model is loaded the engine's series read zero.
    /// </summary>
    private void WriteVllmSeries(StringBuilder text)
    {
        var s = _model.Engine?.GetStats() ?? new EngineStats();
        string m = _modelLabel;
        PrometheusText.Sample(text, "vllm:num_requests_running", "Number of requests with a sample running in the engine.", "gauge", m, s.RunningRequests);
        PrometheusText.Sample(text, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", "gauge", m, s.WaitingRequests);
        PrometheusText.Sample(text, "vllm:kv_cache_usage_perc", "KV-cache usage: the fraction of blocks in use, 1 = 100%.", "gauge", m, s.KvBlocksTotal == 0 ? 0 : (double)s.KvBlocksUsed / s.KvBlocksTotal);
        PrometheusText.Sample(text, "vllm:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", "counter", m, s.PromptTokensAdmitted);
        PrometheusText.Sample(text, "vllm:prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", "counter", m, s.PromptTokensCached);
        PrometheusText.Sample(text, "vllm:num_preemptions_total", "Sequences preempted (recomputed later).", "counter", m, s.Preemptions);
        PrometheusText.Sample(text, "vllm:prompt_tokens_total", "Prompt tokens of admitted requests.", "counter", m, s.PromptTokensAdmitted);
        PrometheusText.Sample(text, "vllm:generation_tokens_total", "Output tokens generated.", "counter", m, s.OutputTokens);

        const string Success = "vllm:request_success_total";
        PrometheusText.Header(text, Success, "Requests finished, by finish reason.", "counter");
        foreach (var (reason, count) in new[] { ("stop", s.FinishedStop), ("length", s.FinishedLength), ("abort", s.FinishedAborted) })
        {
            text.Append(Success).Append('{').Append(m).Append(",finished_reason=\"").Append(reason).Append("\"} ").Append(count).Append('\n');
        }

        TimeToFirstToken.WriteTo(text, m);
        InterTokenLatency.WriteTo(text, m);
        EndToEndLatency.WriteTo(text, m);
    }

    private void Update()
    {
        var engine = _model.Engine;
        _loaded.Set(engine is null ? 0 : 1);
        if (engine is null)
        {
            return;
        }

        var s = engine.GetStats();
        _sequences.Set(s.RunningSequences);
        _backlog.Set(s.TokenBacklog);
        _kvBlocks.Set(s.KvBlocksTotal);
        _kvUsed.Set(s.KvBlocksUsed);
        _kvFree.Set(s.KvBlocksFree);
        _kvCached.Set(s.KvBlocksCached);
        _promptTokensPerSecond.Set(s.PromptTokensPerSecond);
        _outputTokensPerSecond.Set(s.OutputTokensPerSecond);
    }
}
