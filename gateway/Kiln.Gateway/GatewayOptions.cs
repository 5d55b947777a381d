namespace Kiln.Gateway;

/// <summary>
/// The gateway's settings: configuration section <c>Gateway</c> (environment <c>Gateway__Name</c>, command line
/// <c>--Gateway:Name=</c>). The names are the deploy manifests' contract; <see cref="Validate"/> names any bad one.
/// </summary>
public sealed class GatewayOptions
{
    public const string Section = "Gateway";

    private const string ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

    /// <summary>The namespace whose pods are listed; empty means the gateway pod's own namespace, else "default".</summary>
    public string? Namespace { get; set; }

    /// <summary>A label selector such as <c>app=kiln-llama</c>; required unless <see cref="StaticPods"/> is set.</summary>
    public string? PodSelector { get; set; }

    public int PodPort { get; set; } = 80;

    /// <summary>The API server's address; empty means in-cluster, else $KUBECONFIG, else ~/.kube/config.</summary>
    public string? KubernetesBaseUrl { get; set; }

    /// <summary>Comma-separated base URLs of app instances, for runs without Kubernetes (each ready while GET /api/ready is 200).</summary>
    public string? StaticPods { get; set; }

    public int DiscoveryIntervalMs { get; set; } = 1000;
    public int StatsIntervalMs { get; set; } = 500;
    public int MaxHeldRequests { get; set; } = 256;

    /// <summary>How long a call may wait for a ready pod: a GPU pod's cold start takes minutes.</summary>
    public int MaxHoldSeconds { get; set; } = 300;

    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>The scaler's HTTP address, e.g. http://kiln-scaler.kiln.svc.cluster.local:8080; empty = no reports.</summary>
    public string? ScalerUrl { get; set; }

    public string ScaledObjectName { get; set; } = "kiln-llama";
    public int ReportIntervalMs { get; set; } = 1000;
    public int DefaultMaxTokens { get; set; } = 256;

    /// <summary><c>prefix-affinity</c> (default), <c>least-loaded</c> or <c>round-robin</c>.</summary>
    public string Balancing { get; set; } = "prefix-affinity";

    /// <summary>Characters per prefix block (2048 is about 512 tokens).</summary>
    public int PrefixBlockChars { get; set; } = 2048;

    /// <summary>A pod stays the home of its prefixes while its token load is under this.</summary>
    public long AffinityMaxBacklogTokens { get; set; } = 32768;

    /// <summary>
    /// The client keys the gateway admits (Kiln.Access: comma-separated here; the array form
    /// <c>Gateway:ApiKeys:0</c> is read by <see cref="FromConfiguration"/>); empty = no check at the gateway.
    /// </summary>
    public string? ApiKeys { get; set; }

    /// <summary>The key sent with the gateway's own reads of a pod's /api/stats (a metrics key); empty = the first of <see cref="ApiKeys"/>.</summary>
    public string? StatsKey { get; set; }

    /// <summary>The section <see cref="Section"/> of <paramref name="configuration"/>, with ApiKeys in either form.</summary>
    public static GatewayOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        // The binder cannot put an array into a string property (it throws): bind everything else, read the keys apart.
        var others = configuration.GetSection(Section).AsEnumerable(makePathsRelative: true)
            .Where(kv => kv.Value is not null && !kv.Key.StartsWith(nameof(ApiKeys) + ConfigurationPath.KeyDelimiter, StringComparison.OrdinalIgnoreCase));
        var options = new ConfigurationBuilder().AddInMemoryCollection(others).Build().Get<GatewayOptions>() ?? new GatewayOptions();
        options.ApiKeys = string.Join(',', Kiln.Access.ApiKeySet.ReadKeys(configuration, $"{Section}:{nameof(ApiKeys)}"));
        return options;
    }

    /// <summary>The namespace in effect: the setting, else the service account's namespace file, else "default".</summary>
    public string EffectiveNamespace()
    {
        if (!string.IsNullOrWhiteSpace(Namespace))
        {
            return Namespace.Trim();
        }

        try
        {
            if (File.Exists(ServiceAccountNamespaceFile))
            {
                var ns = File.ReadAllText(ServiceAccountNamespaceFile).Trim();
                if (ns.Length > 0)
                {
                    return ns;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return "default";
    }

    public BalancingMode BalancingMode() => Balancing.Trim().ToLowerInvariant() switch
    {
        "prefix-affinity" => Gateway.BalancingMode.PrefixAffinity,
        "least-loaded" => Gateway.BalancingMode.LeastLoaded,
        "round-robin" => Gateway.BalancingMode.RoundRobin,
        _ => throw new InvalidOperationException($"Gateway:Balancing is '{Balancing}'; expected prefix-affinity, least-loaded or round-robin."),
    };

    /// <summary>The static pods' base URLs, each ending without a slash.</summary>
    public IReadOnlyList<Uri> StaticPodUrls() =>
        [.. (StaticPods ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseStaticPod)];

    /// <summary>Throws with a message naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(StaticPods) && string.IsNullOrWhiteSpace(PodSelector))
        {
            throw Invalid("PodSelector", "is required unless Gateway:StaticPods is set (e.g. app=kiln-llama)");
        }

        _ = StaticPodUrls();
        Positive(PodPort, "PodPort", 65535);
        Positive(DiscoveryIntervalMs, "DiscoveryIntervalMs");
        Positive(StatsIntervalMs, "StatsIntervalMs");
        Positive(MaxHeldRequests, "MaxHeldRequests");
        Positive(MaxHoldSeconds, "MaxHoldSeconds");
        Positive(ReportIntervalMs, "ReportIntervalMs");
        Positive(DefaultMaxTokens, "DefaultMaxTokens");
        Positive(PrefixBlockChars, "PrefixBlockChars");
        if (MaxRequestBodyBytes <= 0 || MaxRequestBodyBytes > int.MaxValue)
        {
            throw Invalid("MaxRequestBodyBytes", $"is {MaxRequestBodyBytes}; it must be between 1 and {int.MaxValue} (the body is buffered)");
        }

        if (AffinityMaxBacklogTokens < 0)
        {
            throw Invalid("AffinityMaxBacklogTokens", $"is {AffinityMaxBacklogTokens}; it must not be negative");
        }

        if (string.IsNullOrWhiteSpace(ScaledObjectName))
        {
            throw Invalid("ScaledObjectName", "must not be empty");
        }

        if (!string.IsNullOrWhiteSpace(ScalerUrl) && !IsHttpUrl(ScalerUrl))
        {
            throw Invalid("ScalerUrl", $"is '{ScalerUrl}'; expected an http:// or https:// address");
        }

        if (!string.IsNullOrWhiteSpace(KubernetesBaseUrl) && !IsHttpUrl(KubernetesBaseUrl))
        {
            throw Invalid("KubernetesBaseUrl", $"is '{KubernetesBaseUrl}'; expected an http:// or https:// address");
        }

        _ = BalancingMode();
    }

    private static Uri ParseStaticPod(string s) =>
        IsHttpUrl(s) ? new Uri(s.TrimEnd('/')) : throw Invalid("StaticPods", $"has '{s}'; expected comma-separated http:// base URLs");

    private static bool IsHttpUrl(string s) =>
        Uri.TryCreate(s.Trim(), UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps);

    private static void Positive(long value, string name, long max = int.MaxValue)
    {
        if (value <= 0 || value > max)
        {
            throw Invalid(name, $"is {value}; it must be between 1 and {max}");
        }
    }

    private static InvalidOperationException Invalid(string name, string what) => new($"Gateway:{name} {what}.");
}
