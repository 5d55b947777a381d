namespace Kiln.Gateway;

/// <summary>How the router picks among ready pods.</summary>
public enum BalancingMode
{
    /// <summary>The pod that served the longest prefix of the prompt while it has room, else the least loaded.</summary>
    PrefixAffinity,

    /// <summary>The pod with the smallest token load.</summary>
    LeastLoaded,

    /// <summary>Each ready pod in turn: the benchmark's baseline.</summary>
    RoundRobin,
}
