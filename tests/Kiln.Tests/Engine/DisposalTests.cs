
namespace Kiln.Tests.Engine;

/// <summary>Shutting the engine down answers every request: those in flight, those queued, and one racing the shutdown.</summary>
public sealed class DisposalTests(EngineTestModel fixture) : IClassFixture<EngineTestModel>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void SubmitRacingDispose_IsRefused_NotQueuedAfterTheDrain()
    {
        using var engine = fixture.CreateEngine();

        // The whole shutdown (loop stopped, inbox drained, backend released) runs between the request's checks and its
        // hand-off to the inbox, the window in which it used to be queued where nothing would ever run it.
        engine.BeforeHandoff = () =>
        {
            engine.BeforeHandoff = null;
            Task.Run(engine.Dispose, Ct).Wait(Ct);
        };

        var refused = Assert.Throws<ObjectDisposedException>(() => engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(1, 10), maxTokens: 4), Ct));
        Assert.Contains("shut down", refused.Message, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(2, 10), maxTokens: 4), Ct));
    }

    [Fact]
    public async Task DisposeWithRequestsRunningAndQueued_EndsEveryStreamWithTheShutdown()
    {
        var engine = fixture.CreateEngine(maxSequences: 2, maxWaiting: 8, maxBatchedTokens: 32);
        var streams = Enumerable.Range(0, 6)
            .Select(i => engine.Submit(EngineTestModel.Request(EngineTestModel.Prompt(i, 20), maxTokens: 400), Ct).GetAsyncEnumerator(Ct))
            .ToList();

        // The first two are running (a token arrived); the other four wait behind them.
        Assert.True(await streams[0].MoveNextAsync());
        Assert.True(await streams[1].MoveNextAsync());
        engine.Dispose();

        foreach (var stream in streams)
        {
            var ended = await Assert.ThrowsAsync<ObjectDisposedException>(async () =>
            {
                while (await stream.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30), Ct))
                {
                    Assert.Null(stream.Current.FinishReason); // 400 tokens cannot have finished
                }
            });
            Assert.Contains("shut down", ended.Message, StringComparison.Ordinal);
            await stream.DisposeAsync();
        }
    }
}
