namespace Kiln.Functions.Hosting;

/// <summary>What a call asks for, hence which keys admit it (<see cref="ApiAccess"/>).</summary>
public enum ApiScope
{
    /// <summary>Inference and the model list: an API key (Kiln:ApiKeys).</summary>
    Api,

    /// <summary>/api/stats and /api/metrics: an API key or a metrics key (Kiln:MetricsKeys).</summary>
    Stats,
}
