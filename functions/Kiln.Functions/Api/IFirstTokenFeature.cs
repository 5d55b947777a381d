namespace Kiln.Functions.Api;

/// <summary>
/// An HttpContext feature a caller sets to learn when its call's first token reaches the handler: the moment a queue
/// job counts as started (before it, the request is still waiting or prefilling in the engine and nothing was produced).
/// </summary>
public interface IFirstTokenFeature
{
    /// <summary>Called once, when the first token event of the call is read, before it is written anywhere.</summary>
    void OnFirstToken();
}
