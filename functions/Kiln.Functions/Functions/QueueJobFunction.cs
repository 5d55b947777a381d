using System.Globalization;
using Kiln.Functions.Jobs;
using Microsoft.Azure.Functions.Worker;

namespace Kiln.Functions.Functions;

/// <summary>
/// The queue trigger under the Functions host: a thin adapter over <see cref="JobRunner"/>. The host owns the queue
/// semantics (host.json extensions.queues): a return deletes the message, a throw retries it and poisons it after
/// maxDequeueCount. The queue name is the app setting Kiln:JobQueue (environment Kiln__JobQueue, default kiln-jobs:
/// the host resolves %...% itself, so the setting must exist there), the account is AzureWebJobsStorage.
/// </summary>
public sealed class QueueJobFunction(JobRunner runner)
{
    [Function("QueueJob")]
    public async Task Run([QueueTrigger("%Kiln:JobQueue%")] string message, FunctionContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var data = context.BindingContext.BindingData;
        string messageId = data.TryGetValue("Id", out var id) && id?.ToString() is { Length: > 0 } text ? text.Trim('"') : context.InvocationId;
        long dequeueCount = data.TryGetValue("DequeueCount", out var count)
            && long.TryParse(count?.ToString()?.Trim('"'), NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) ? n : 1;
        await runner.RunAsync(message, messageId, dequeueCount, context.CancellationToken).ConfigureAwait(false);
    }
}
