namespace Kiln.Gateway;

/// <summary>A pod discovery lists as ready: its name and its base URL (http://POD_IP:PORT).</summary>
public sealed record PodCandidate(string Name, Uri BaseUrl);
