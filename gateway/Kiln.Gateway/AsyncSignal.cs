namespace Kiln.Gateway;

/// <summary>
/// A broadcast wake-up: <see cref="Next"/> completes at the next <see cref="Set"/>. Take the task before checking the
/// condition it guards, so that a change between the check and the wait is never missed.
/// </summary>
public sealed class AsyncSignal
{
    private TaskCompletionSource _next = NewSource();

    public Task Next => Volatile.Read(ref _next).Task;

    public void Set() => Interlocked.Exchange(ref _next, NewSource()).TrySetResult();

    private static TaskCompletionSource NewSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
