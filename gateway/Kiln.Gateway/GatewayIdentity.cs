namespace Kiln.Gateway;

/// <summary>
/// Who this replica is to the scaler: its id (the pod name from HOSTNAME, else a fresh GUID, so two replicas'
/// reports add up rather than overwrite) and the namespace it reports for.
/// </summary>
public sealed record GatewayIdentity(string Namespace, string GatewayId)
{
    public static GatewayIdentity From(GatewayOptions options, string? gatewayId = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var host = Environment.GetEnvironmentVariable("HOSTNAME");
        var id = gatewayId ?? (string.IsNullOrWhiteSpace(host) ? Guid.NewGuid().ToString("N") : host.Trim());
        return new GatewayIdentity(options.EffectiveNamespace(), id);
    }
}
