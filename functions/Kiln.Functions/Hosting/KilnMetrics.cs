using Kiln.Runtime.Engine;
using Prometheus;

namespace Kiln.Functions.Hosting;

/// <summary>
/// The Prometheus metrics of one app: gauges read from <see cref="InferenceEngine.GetStats"/> at each scrape, and
/// latency histograms observed by the request handlers. A registry per app (not prometheus-net's static default)
/// so that several apps in one process (tests) do not share series.
/// </summary>
public sealed class KilnMetrics
{
    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    private readonly ModelHost _model;
    private readonly Gauge _loaded;
    private readonly Gauge _waiting;
    private readonly Gauge _running;
    private readonly Gauge _backlog;
    private readonly Gauge _kvTotal;
    private readonly Gauge _kvUsed;
    private readonly Gauge _kvFree;
    private readonly Gauge _kvCached;
    private readonly Gauge _prefixHitRate;
    private readonly Gauge _promptTokensPerSecond;
    private readonly Gauge _outputTokensPerSecond;
    private readonly Counter _preemptions;
    private readonly Counter _completed;

    public KilnMetrics(ModelHost model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        _loaded = f.CreateGauge("kiln_model_loaded", "1 once the model is loaded and the engine runs.");
        _waiting = f.CreateGauge("kiln_requests_waiting", "Requests waiting for admission.");
        _running = f.CreateGauge("kiln_requests_running", "Sequences running in the engine.");
        _backlog = f.CreateGauge("kiln_token_backlog", "Prompt tokens still to prefill plus output tokens still owed.");
        _kvTotal = f.CreateGauge("kiln_kv_blocks_total", "KV blocks in the pool.");
        _kvUsed = f.CreateGauge("kiln_kv_blocks_used", "KV blocks held by sequences.");
        _kvFree = f.CreateGauge("kiln_kv_blocks_free", "KV blocks free (cached ones included).");
        _kvCached = f.CreateGauge("kiln_kv_blocks_cached", "Free KV blocks that still hold a cached prefix.");
        _prefixHitRate = f.CreateGauge("kiln_prefix_cache_hit_rate", "Share of prompt tokens served from the prefix cache.");
        _promptTokensPerSecond = f.CreateGauge("kiln_prompt_tokens_per_second", "Prompt tokens prefilled per second over the last second.");
        _outputTokensPerSecond = f.CreateGauge("kiln_generation_tokens_per_second", "Output tokens generated per second over the last second.");
        _preemptions = f.CreateCounter("kiln_preemptions_total", "Sequences preempted (recomputed later).");
        _completed = f.CreateCounter("kiln_requests_completed_total", "Requests the engine finished.");
        TimeToFirstToken = f.CreateHistogram(
            "kiln_time_to_first_token_seconds", "From submission to a request's first token.", new HistogramConfiguration { Buckets = LatencyBuckets });
        TimePerOutputToken = f.CreateHistogram(
            "kiln_time_per_output_token_seconds", "Between consecutive tokens of one sample.", new HistogramConfiguration { Buckets = LatencyBuckets });
        HttpRequests = f.CreateCounter("kiln_http_requests_total", "API requests by endpoint and status.", new CounterConfiguration { LabelNames = ["endpoint", "status"] });
        PromptTokens = f.CreateCounter("kiln_prompt_tokens_total", "Prompt tokens of finished requests.");
        GenerationTokens = f.CreateCounter("kiln_generation_tokens_total", "Output tokens of finished requests.");
        Registry.AddBeforeCollectCallback(Update);
    }

    public CollectorRegistry Registry { get; }

    public Histogram TimeToFirstToken { get; }

    public Histogram TimePerOutputToken { get; }

    public Counter HttpRequests { get; }

    public Counter PromptTokens { get; }

    public Counter GenerationTokens { get; }

    /// <summary>Prometheus text format, version 0.0.4.</summary>
    public Task WriteAsync(Stream destination, CancellationToken cancellationToken) =>
        Registry.CollectAndExportAsTextAsync(destination, cancellationToken);

    private void Update()
    {
        var engine = _model.Engine;
        _loaded.Set(engine is null ? 0 : 1);
        if (engine is null)
        {
            return;
        }

        var s = engine.GetStats();
        _waiting.Set(s.WaitingRequests);
        _running.Set(s.RunningSequences);
        _backlog.Set(s.TokenBacklog);
        _kvTotal.Set(s.KvBlocksTotal);
        _kvUsed.Set(s.KvBlocksUsed);
        _kvFree.Set(s.KvBlocksFree);
        _kvCached.Set(s.KvBlocksCached);
        _prefixHitRate.Set(s.PrefixCacheHitRate);
        _promptTokensPerSecond.Set(s.PromptTokensPerSecond);
        _outputTokensPerSecond.Set(s.OutputTokensPerSecond);
        _preemptions.IncTo(s.Preemptions);
        _completed.IncTo(s.CompletedRequests);
    }
}
