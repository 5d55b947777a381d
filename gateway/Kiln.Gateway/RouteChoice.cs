namespace Kiln.Gateway;

/// <summary>The pod a call goes to, and whether a cached prefix decided it.</summary>
public sealed record RouteChoice(Pod Pod, bool AffinityHit);
