namespace Kiln.Tests.Reference;

/// <summary>
/// Locates the repository's sibling <c>shared</c> folder (models, fixtures, traces that are not in git): the first
/// directory, walking up from the test binaries, that holds <c>shared/models/stories260K.gguf</c>. The environment
/// variable <c>KILN_SHARED</c> may name the shared folder directly. Every path is null when it is missing.
/// </summary>
public static class SharedData
{
    private const string StoriesRelative = "models/stories260K.gguf";

    private static readonly Lazy<string?> Root = new(Find);

    /// <summary>The shared folder itself, or null.</summary>
    public static string? SharedDir => Root.Value;

    public static string? StoriesGguf => Existing(Root.Value, StoriesRelative, file: true);

    public static string? FixturesDir => Existing(Root.Value, "fixtures", file: false);

    public static string? TracesDir => Existing(Root.Value, "traces", file: false);

    /// <summary>The path of stories260K.gguf, or skips the calling test with a message that says where it looked.</summary>
    public static string RequireStoriesGguf() => StoriesGguf ?? Skip("models/stories260K.gguf");

    public static string RequireFixturesDir() => FixturesDir ?? Skip("fixtures");

    public static string RequireTracesDir() => TracesDir ?? Skip("traces");

    private static string Skip(string what)
    {
        Assert.Skip(
            $"This test needs ../shared/{what} (not found): looked for shared/{StoriesRelative} in every directory above " +
            $"{AppContext.BaseDirectory}, and in $KILN_SHARED. Clone or copy the shared folder beside the repository.");
        return string.Empty;
    }

    private static string? Existing(string? root, string relative, bool file)
    {
        if (root is null)
        {
            return null;
        }

        string path = Path.Combine(root, relative);
        return (file ? File.Exists(path) : Directory.Exists(path)) ? path : null;
    }

    private static string? Find()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("KILN_SHARED");
        if (!string.IsNullOrEmpty(fromEnvironment) && File.Exists(Path.Combine(fromEnvironment, StoriesRelative)))
        {
            return Path.GetFullPath(fromEnvironment);
        }

        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            string candidate = Path.Combine(directory.FullName, "shared");
            if (File.Exists(Path.Combine(candidate, StoriesRelative)))
            {
                return candidate;
            }
        }

        return null;
    }
}
