namespace Kiln.Gateway;

/// <summary>
/// One app pod the gateway knows: its address, whether discovery lists it as ready, the engine's own state from its
/// last stats read, and whether a failed attempt has set it aside until its stats are read again.
/// </summary>
public sealed class Pod(string name, Uri baseUrl)
{
    public const string ReadyState = "ready";
    public const string UnreachableState = "unreachable";

    private long _suspensions;
    private long _affinityHits;
    private long _affinityMisses;
    private volatile string? _engineState;
    private volatile bool _suspended;

    public string Name { get; } = name;

    /// <summary>http://POD_IP:PORT, without a trailing slash.</summary>
    public Uri BaseUrl { get; } = baseUrl;

    /// <summary>The destination prefix the forwarder appends the path and query to.</summary>
    public string Prefix { get; } = baseUrl.GetLeftPart(UriPartial.Authority);

    public PodLoad Load { get; } = new();

    /// <summary>The engine's state from GET /api/stats (<c>ready</c>, <c>loading</c>, <c>draining</c>...), null before the first read.</summary>
    public string? EngineState => _engineState;

    public bool Suspended => _suspended;

    public long AffinityHits => Interlocked.Read(ref _affinityHits);

    public long AffinityMisses => Interlocked.Read(ref _affinityMisses);

    /// <summary>Routable: its engine says ready and no attempt has failed on it since.</summary>
    public bool Routable => EngineState == ReadyState && !Suspended;

    /// <summary>The pod refused a connection or answered 503: no new calls until a later stats read says ready.</summary>
    public void Suspend()
    {
        Interlocked.Increment(ref _suspensions);
        _suspended = true;
    }

    /// <summary>Taken when a stats read starts; a suspension after it outlives that read.</summary>
    public long SuspensionMark() => Interlocked.Read(ref _suspensions);

    /// <summary>Records a stats read (or <see cref="UnreachableState"/>); returns whether routability changed.</summary>
    public bool SetState(string state, long suspensionMark)
    {
        var before = Routable;
        _engineState = state;
        if (state == ReadyState && Interlocked.Read(ref _suspensions) == suspensionMark)
        {
            _suspended = false;
        }

        return before != Routable;
    }

    public void CountAffinity(bool hit) => Interlocked.Increment(ref hit ? ref _affinityHits : ref _affinityMisses);
}
