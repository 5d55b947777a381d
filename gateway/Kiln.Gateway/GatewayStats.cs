using System.Text.Json;

namespace Kiln.Gateway;

/// <summary>GET /gateway/stats: what the gateway holds and how it sees each pod, for operators and tests.</summary>
public sealed class GatewayStats(HeldRequests held, PodDirectory directory, Router router, ScalerReporter reporter)
{
    public async Task WriteAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var (count, tokens) = held.Snapshot();
        context.Response.ContentType = "application/json";
        await using (var w = new Utf8JsonWriter(context.Response.BodyWriter))
        {
            w.WriteStartObject();
            w.WriteNumber("heldRequests", count);
            w.WriteNumber("heldTokens", tokens);
            w.WriteNumber("maxHeldRequests", held.MaxHeld);
            w.WriteString("balancing", router.Mode switch
            {
                BalancingMode.RoundRobin => "round-robin",
                BalancingMode.LeastLoaded => "least-loaded",
                _ => "prefix-affinity",
            });
            w.WriteNumber("scalerReportsSent", reporter.Sent);
            w.WriteStartArray("pods");
            foreach (var p in directory.All)
            {
                w.WriteStartObject();
                w.WriteString("name", p.Name);
                w.WriteString("address", p.BaseUrl.ToString().TrimEnd('/'));
                w.WriteBoolean("ready", p.Routable);
                w.WriteString("state", p.EngineState);
                w.WriteNumber("backlog", p.Load.EngineBacklog);
                w.WriteNumber("load", p.Load.Tokens);
                w.WriteNumber("inFlight", p.Load.InFlight);
                w.WriteNumber("forwarded", p.Load.Forwarded);
                w.WriteNumber("affinityHits", p.AffinityHits);
                w.WriteNumber("affinityMisses", p.AffinityMisses);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }
}
