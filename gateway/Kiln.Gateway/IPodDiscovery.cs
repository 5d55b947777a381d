namespace Kiln.Gateway;

/// <summary>Lists the app pods that are ready to take calls right now.</summary>
public interface IPodDiscovery
{
    /// <summary>Where the pods come from, for logs.</summary>
    string Source { get; }

    Task<IReadOnlyList<PodCandidate>> ListAsync(CancellationToken cancellationToken);
}
