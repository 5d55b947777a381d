namespace Kiln.Functions.Api;

/// <summary>
/// The endpoints' routes below the route prefix, shared by the triggers' attributes and the standalone route table
/// so the two modes cannot drift apart.
/// </summary>
public static class Routes
{
    public const string ChatCompletions = "v1/chat/completions";
    public const string Completions = "v1/completions";
    public const string Models = "v1/models";
    public const string Health = "health";
    public const string Ready = "ready";
    public const string Metrics = "metrics";
    public const string Stats = "stats";

    /// <summary>Every endpoint: its HTTP method, route and handler.</summary>
    public static IReadOnlyList<(string Method, string Route, Func<ApiHandlers, Microsoft.AspNetCore.Http.HttpContext, Task> Handle)> All { get; } =
    [
        ("POST", ChatCompletions, static (h, c) => h.ChatCompletionsAsync(c)),
        ("POST", Completions, static (h, c) => h.CompletionsAsync(c)),
        ("GET", Models, static (h, c) => h.ModelsAsync(c)),
        ("GET", Health, static (h, c) => h.HealthAsync(c)),
        ("GET", Ready, static (h, c) => h.ReadyAsync(c)),
        ("GET", Metrics, static (h, c) => h.MetricsAsync(c)),
        ("GET", Stats, static (h, c) => h.StatsAsync(c)),
    ];
}
