using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI;
using OpenAI.Chat;

namespace Kiln.LocalCluster;

/// <summary>
/// Where the seconds of a call that woke the deployment went: KEDA's reaction (call to replicas 0 -> 1), the app's
/// start (to the pod's first ready probe: scheduling, process start, model load), and the first token (ready to
/// first streamed content: the gateway forwarding the held call, prefill, one decode step).
/// </summary>
public sealed record WakeFigures(TimeSpan KedaReaction, TimeSpan AppStart, TimeSpan FirstToken, string ActivatedBy, string Text, ChatFinishReason? FinishReason)
{
    public TimeSpan Total => KedaReaction + AppStart + FirstToken;

    public override string ToString() => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"call to first token {Total.TotalSeconds:F2} s = KEDA reaction {KedaReaction.TotalSeconds:F2} s ({ActivatedBy}) + app start {AppStart.TotalSeconds:F2} s + first token {FirstToken.TotalSeconds:F2} s");
}

/// <summary>The scenarios run against a <see cref="LoopbackCluster"/>: by the demo command and by the end-to-end tests.</summary>
public static class Scenarios
{
    /// <summary>The official OpenAI SDK pointed at the gateway with the cluster's API key (no retries: what the gateway answers is what shows).</summary>
    public static OpenAIClient Client(LoopbackCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return new OpenAIClient(
            new ApiKeyCredential(cluster.Options.ApiKey),
            new OpenAIClientOptions { Endpoint = new Uri(cluster.Gateway.Address, "api/v1"), RetryPolicy = new ClientRetryPolicy(maxRetries: 0), NetworkTimeout = TimeSpan.FromMinutes(5) });
    }

    /// <summary>One streamed chat call through the gateway at zero replicas, timed against the cluster's events.</summary>
    public static async Task<WakeFigures> ChatFromZeroAsync(LoopbackCluster cluster, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        if (cluster.Kubernetes.Replicas != 0)
        {
            throw new InvalidOperationException($"the deployment has {cluster.Kubernetes.Replicas} replicas, not zero");
        }

        var chat = Client(cluster).GetChatClient("kiln-demo");
        var start = DateTimeOffset.UtcNow;
        DateTimeOffset? first = null;
        ChatFinishReason? finish = null;
        var text = new System.Text.StringBuilder();
        await foreach (var update in chat.CompleteChatStreamingAsync(
            [new UserChatMessage("Once upon a time")], new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0 }, cancellationToken))
        {
            foreach (var part in update.ContentUpdate)
            {
                if (part.Text.Length > 0)
                {
                    first ??= DateTimeOffset.UtcNow;
                    text.Append(part.Text);
                }
            }

            finish ??= update.FinishReason;
        }

        var scaled = cluster.Events.First("scale", start) ?? throw new InvalidOperationException("answered without a scale from zero");
        var ready = cluster.Events.First("pod-ready", scaled.At) ?? throw new InvalidOperationException("answered before a pod was ready");
        var firstToken = first ?? throw new InvalidOperationException("the stream carried no content");
        var by = scaled.Detail[(scaled.Detail.IndexOf('(', StringComparison.Ordinal) + 1)..].TrimEnd(')');
        return new WakeFigures(scaled.At - start, ready.At - scaled.At, firstToken - ready.At, by, text.ToString(), finish);
    }
}
