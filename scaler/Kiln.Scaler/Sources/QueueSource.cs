using System.Collections.Concurrent;
using Azure;
using Azure.Core;
using Azure.Storage.Queues;
using Kiln.Scaler.Contracts;

namespace Kiln.Scaler.Sources;

/// <summary>One reading of a storage queue: how many messages, and what the peeked ones would cost.</summary>
public readonly record struct QueueSample(long ApproximateCount, int Peeked, double MeanTokens)
{
    public double Tokens => ApproximateCount * MeanTokens;
}

public interface IQueueSource
{
    Task<QueueSample> ReadAsync(string connectionString, string queueName, int defaultMaxTokens, CancellationToken cancellationToken);
}

/// <summary>
/// Azure Storage queues: the approximate count (one properties call) times the mean estimated tokens of up to 32
/// peeked messages (peeking does not hide them from the workers). Messages being processed are invisible to the peek
/// but still counted, so the mean comes from the visible ones; with none visible, the default output budget is used.
/// </summary>
public sealed class AzureQueueSource(TimeSpan timeout) : IQueueSource
{
    public const int PeekCount = 32;

    private readonly ConcurrentDictionary<(string, string), QueueClient> _clients = new();

    public async Task<QueueSample> ReadAsync(string connectionString, string queueName, int defaultMaxTokens, CancellationToken cancellationToken)
    {
        var client = _clients.GetOrAdd((connectionString, queueName), k => Create(k.Item1, k.Item2, timeout));
        long count;
        try
        {
            count = (await client.GetPropertiesAsync(cancellationToken)).Value.ApproximateMessagesCount;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // The app creates its queue on first use: no queue yet means no work yet.
            return new QueueSample(0, 0, 0);
        }

        if (count == 0)
        {
            return new QueueSample(0, 0, 0);
        }

        var peeked = (await client.PeekMessagesAsync(PeekCount, cancellationToken)).Value;
        if (peeked.Length == 0)
        {
            return new QueueSample(count, 0, defaultMaxTokens);
        }

        double sum = 0;
        foreach (var m in peeked)
        {
            sum += TokenEstimator.EstimateMessage(m.Body.ToMemory().Span, defaultMaxTokens);
        }

        return new QueueSample(count, peeked.Length, sum / peeked.Length);
    }

    private static QueueClient Create(string connectionString, string queueName, TimeSpan timeout)
    {
        // No SDK retries: the resilient cache serves the last good value instead, and retries would outlast the timeout.
        var options = new QueueClientOptions { Retry = { MaxRetries = 0, NetworkTimeout = timeout, Mode = RetryMode.Fixed } };
        return new QueueClient(connectionString, queueName, options);
    }
}
