using Azure;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Kiln.Functions.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kiln.Functions.Jobs;

/// <summary>
/// Standalone mode's stand-in for the host's queue trigger: the same <see cref="JobRunner"/> with the host's semantics,
/// numbers from host.json. Receives up to batchSize messages under a renewed lease, deletes each on success, makes a
/// failed one visible again after visibilityTimeout, and moves it to <c>&lt;queue&gt;-poison</c> once it has been
/// dequeued maxDequeueCount times. An empty queue is polled with a back-off up to maxPollingInterval.
/// When the pod drains (<see cref="ShutdownDrain"/>) it receives nothing more; a job it holds that has not started
/// (<see cref="JobStart"/>) is cancelled and its message made visible again at once, a started one finishes and is
/// deleted. Its loop is work the drain waits for, so those updates happen before the engine stops.
/// </summary>
public sealed partial class QueuePoller(JobRunner runner, ShutdownDrain drain, ILogger<QueuePoller> logger) : BackgroundService
{
    /// <summary>The host's lease on a message being processed, renewed at half-time so long generations keep it.</summary>
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan MinPollingInterval = TimeSpan.FromMilliseconds(100);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var loop = drain.TryEnter();
        if (loop is null)
        {
            return; // stopping before the first poll
        }

        using var receiving = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, drain.Draining);
        try
        {
            await PollAsync(receiving.Token, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (receiving.IsCancellationRequested)
        {
            // Draining or stopped: the messages received so far were handled (or returned) before this.
        }
    }

    /// <summary>Receives until <paramref name="receiving"/> ends; each batch is handled to its end under <paramref name="stoppingToken"/>.</summary>
    private async Task PollAsync(CancellationToken receiving, CancellationToken stoppingToken)
    {
        var options = runner.Options;
        var clientOptions = new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None }; // host.json: messageEncoding none
        var queue = new QueueClient(options.ConnectionString, options.QueueName, clientOptions);
        var poison = new QueueClient(options.ConnectionString, options.PoisonQueueName, clientOptions);
        var delay = MinPollingInterval;
        while (!receiving.IsCancellationRequested)
        {
            try
            {
                await queue.CreateIfNotExistsAsync(cancellationToken: receiving).ConfigureAwait(false);
                await poison.CreateIfNotExistsAsync(cancellationToken: receiving).ConfigureAwait(false);
                LogPolling(logger, options.QueueName, options.MaxDequeueCount, options.VisibilityTimeout);
                break;
            }
            catch (RequestFailedException e)
            {
                LogStorageError(logger, e);
                await Task.Delay(options.MaxPollingInterval, receiving).ConfigureAwait(false);
            }
        }

        while (!receiving.IsCancellationRequested)
        {
            QueueMessage[] batch;
            try
            {
                // Not cut short by the drain: a receive cancelled in flight could still lease messages for the whole
                // lease; one that completes hands them to HandleAsync, which returns them at once.
                batch = (await queue.ReceiveMessagesAsync(Math.Clamp(options.BatchSize, 1, 32), Lease, stoppingToken).ConfigureAwait(false)).Value;
            }
            catch (RequestFailedException e)
            {
                LogStorageError(logger, e);
                batch = [];
            }

            if (batch.Length == 0)
            {
                await Task.Delay(delay, receiving).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, Math.Max(options.MaxPollingInterval.Ticks, MinPollingInterval.Ticks)));
                continue;
            }

            delay = MinPollingInterval;
            await Task.WhenAll(batch.Select(m => HandleAsync(queue, poison, m, stoppingToken))).ConfigureAwait(false);
        }
    }

    private async Task HandleAsync(QueueClient queue, QueueClient poison, QueueMessage message, CancellationToken stoppingToken)
    {
        var options = runner.Options;
        var receipt = new Receipt(message.PopReceipt);
        using var start = new JobStart(stoppingToken);

        // Runs at once for a message received as the drain began; disposed before start, so it never sees it disposed.
        using var returning = drain.Draining.Register(() => start.TryReturn());
        try
        {
            if (message.DequeueCount > options.MaxDequeueCount)
            {
                // Dequeued too often without an outcome (the process died mid-job): the host poisons these unrun.
                await MoveToPoisonAsync(queue, poison, message, receipt, stoppingToken).ConfigureAwait(false);
                return;
            }

            using var renewing = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            var renewal = RenewAsync(queue, message.MessageId, receipt, renewing.Token);
            bool succeeded;
            bool returned = false;
            try
            {
                await runner.RunAsync(message.Body.ToString(), message.MessageId, message.DequeueCount, start, start.Token).ConfigureAwait(false);
                succeeded = true;
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // A job that failed while draining and never started (refused, cancelled) goes back as it came.
                returned = drain.IsDraining && start.TryReturn();
                if (!returned)
                {
                    LogFailed(logger, e, message.MessageId, message.DequeueCount);
                }

                succeeded = false;
            }
            finally
            {
                await renewing.CancelAsync().ConfigureAwait(false);
                await renewal.ConfigureAwait(false);
            }

            if (succeeded)
            {
                await queue.DeleteMessageAsync(message.MessageId, receipt.Value, stoppingToken).ConfigureAwait(false);
            }
            else if (returned)
            {
                // Visible again now, not at the end of its lease: another replica can take it at once.
                await queue.UpdateMessageAsync(message.MessageId, receipt.Value, visibilityTimeout: TimeSpan.Zero, cancellationToken: stoppingToken).ConfigureAwait(false);
                LogReturned(logger, message.MessageId);
            }
            else if (message.DequeueCount >= options.MaxDequeueCount)
            {
                await MoveToPoisonAsync(queue, poison, message, receipt, stoppingToken).ConfigureAwait(false);
            }
            else
            {
                await queue.UpdateMessageAsync(message.MessageId, receipt.Value, visibilityTimeout: options.VisibilityTimeout, cancellationToken: stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped past the drain: the lease runs out and another instance (or the next start) gets the message.
        }
        catch (RequestFailedException e)
        {
            // Lost the lease (its receipt changed) or storage failed: the message comes back and is handled again.
            LogStorageError(logger, e);
        }
    }

    private async Task MoveToPoisonAsync(QueueClient queue, QueueClient poison, QueueMessage message, Receipt receipt, CancellationToken cancellationToken)
    {
        LogPoisoned(logger, message.MessageId, message.DequeueCount, poison.Name);
        await poison.SendMessageAsync(message.Body, cancellationToken: cancellationToken).ConfigureAwait(false);
        await queue.DeleteMessageAsync(message.MessageId, receipt.Value, cancellationToken).ConfigureAwait(false);
    }

    private static async Task RenewAsync(QueueClient queue, string messageId, Receipt receipt, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(Lease / 2, cancellationToken).ConfigureAwait(false);
                var updated = await queue.UpdateMessageAsync(messageId, receipt.Value, visibilityTimeout: Lease, cancellationToken: cancellationToken).ConfigureAwait(false);
                receipt.Value = updated.Value.PopReceipt;
            }
        }
        catch (OperationCanceledException)
        {
            // the job finished
        }
        catch (RequestFailedException)
        {
            // the lease is lost; the delete or update after the job reports it
        }
    }

    /// <summary>The message's current pop receipt: every lease renewal replaces it.</summary>
    private sealed class Receipt(string value)
    {
        public string Value { get; set; } = value;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Polling queue {Queue} (maxDequeueCount {Max}, visibilityTimeout {Visibility})")]
    private static partial void LogPolling(ILogger logger, string queue, int max, TimeSpan visibility);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Queue storage error")]
    private static partial void LogStorageError(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {MessageId} failed on delivery {DequeueCount}")]
    private static partial void LogFailed(ILogger logger, Exception exception, string messageId, long dequeueCount);

    [LoggerMessage(Level = LogLevel.Information, Message = "Message {MessageId} returned to the queue unstarted: draining")]
    private static partial void LogReturned(ILogger logger, string messageId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {MessageId} moved to {Poison} after {DequeueCount} deliveries")]
    private static partial void LogPoisoned(ILogger logger, string messageId, long dequeueCount, string poison);
}
