using System.Diagnostics;
using System.Text;
using Azure.Storage.Queues;
using Kiln.Tests.Infrastructure;

namespace Kiln.Tests.Scaler;

/// <summary>The backlog read from a real storage queue (Azurite), through the scaler's gRPC API.</summary>
public sealed class QueueBacklogTests(AzuriteFixture azurite) : IClassFixture<AzuriteFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // 80 characters of messages -> 20 tokens, + max_tokens 30 = 50 tokens a job.
    private static string Job(int i) =>
        $$$"""{"id":"job-{{{i}}}","request":{"model":"llama","messages":[{"role":"user","content":"{{{new string('x', 80)}}}"}],"max_tokens":30}}""";

    private async Task<QueueClient> NewQueueAsync()
    {
        var queue = new QueueClient(azurite.ConnectionString, $"jobs-{Guid.NewGuid():N}"[..30]);
        await queue.CreateAsync(cancellationToken: Ct);
        return queue;
    }

    [Fact]
    public async Task GetMetrics_QueueBacklogIsCountTimesMeanPeekedTokens_NeedsAzurite()
    {
        var queue = await NewQueueAsync();
        await using var h = await ScalerHarness.StartAsync(azurite.ConnectionString);
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 64)); // room enough: no cap
        var r = h.Ref(queue.Name);
        Assert.Equal(0, await h.MetricAsync(r));

        for (var i = 0; i < 40; i++)
        {
            await queue.SendMessageAsync(Job(i), Ct);
        }

        // 40 messages; the mean of the 32 peeked is 50 tokens.
        Assert.Equal(40 * 50, await h.MetricAsync(r));

        // Base64 bodies (the Functions queue default) and a job without max_tokens (defaultMaxTokens = 100) mix in.
        var other = await NewQueueAsync();
        await other.SendMessageAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(Job(1))), Ct);
        await other.SendMessageAsync("""{"id":"p","request":{"prompt":"abcd"}}""", Ct);
        Assert.Equal(2 * ((50 + 101) / 2.0), await h.MetricAsync(h.Ref(other.Name)));

        // A queue that does not exist yet is no work, not an error.
        Assert.Equal(0, await h.MetricAsync(h.Ref("not-created-yet")));
    }

    [Fact]
    public async Task ScaleFromAndToZero_ActivationFollowsTheQueue_NeedsAzurite()
    {
        var queue = await NewQueueAsync();
        await using var h = await ScalerHarness.StartAsync(azurite.ConnectionString);
        h.Kube.Nodes.Add(FakeKubernetesApi.Node("gpu-a", 8));
        var r = h.Ref(queue.Name);
        Assert.False((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);

        var sent = await queue.SendMessageAsync(Job(1), Ct);
        Assert.True((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);
        Assert.False((await h.Client.IsActiveAsync(h.Ref(queue.Name, ("activationThreshold", "50")), cancellationToken: Ct)).Result);

        // A worker takes the job and deletes it: idle again.
        var received = (await queue.ReceiveMessageAsync(cancellationToken: Ct)).Value;
        await queue.DeleteMessageAsync(received.MessageId, received.PopReceipt, Ct);
        Assert.False((await h.Client.IsActiveAsync(r, cancellationToken: Ct)).Result);
        Assert.Equal(0, await h.MetricAsync(r));
        Assert.NotNull(sent);
    }

    [Fact]
    public async Task StreamIsActive_PushesTrueWithinASecondOfWorkArriving_NeedsAzurite()
    {
        var queue = await NewQueueAsync();
        await using var h = await ScalerHarness.StartAsync(azurite.ConnectionString, configure: o => o.StreamPollIntervalMs = 250);
        using var stream = h.Client.StreamIsActive(h.Ref(queue.Name), deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct);
        Assert.True(await stream.ResponseStream.MoveNext(Ct));
        Assert.False(stream.ResponseStream.Current.Result); // idle: the first state is pushed at once

        var clock = Stopwatch.StartNew();
        await queue.SendMessageAsync(Job(7), Ct);
        using var within = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        within.CancelAfter(TimeSpan.FromSeconds(1));
        Assert.True(await stream.ResponseStream.MoveNext(within.Token));
        Assert.True(stream.ResponseStream.Current.Result);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"pushed after {clock.Elapsed}");
    }
}
