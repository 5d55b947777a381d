namespace Kiln.Scaler.Contracts;

/// <summary>
/// What one gateway replica holds for one ScaledObject: calls waiting for a ready pod, and their estimated tokens
/// (<see cref="TokenEstimator.EstimateRequest"/>, the price the scaler puts on queue jobs). The gateway sends it with
/// <c>PUT {scaler metrics address}/v1/gateways/{namespace}/{scaledObject}/{gatewayId}</c> (JSON, web defaults) when
/// its first call is held and every report interval while it holds any; the scaler adds it to that object's backlog
/// until <see cref="GatewayReportPath.Ttl"/> has passed without a newer one, and a report that starts holding wakes
/// the object's StreamIsActive streams at once.
/// </summary>
public sealed record GatewayReport
{
    public int HeldRequests { get; init; }

    public double HeldTokens { get; init; }
}

/// <summary>The route of <see cref="GatewayReport"/> on the scaler's HTTP port, shared by both ends.</summary>
public static class GatewayReportPath
{
    public const string Template = "/v1/gateways/{namespace}/{scaledObject}/{gatewayId}";

    /// <summary>A report counts this long after it arrives; a gateway that holds calls re-sends well within it.</summary>
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(10);

    public static string For(string ns, string scaledObject, string gatewayId) =>
        $"/v1/gateways/{Uri.EscapeDataString(ns)}/{Uri.EscapeDataString(scaledObject)}/{Uri.EscapeDataString(gatewayId)}";
}
