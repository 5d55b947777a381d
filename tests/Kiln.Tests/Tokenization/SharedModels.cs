namespace Kiln.Tests.Tokenization;

/// <summary>
/// Finds the shared model files kept outside the repository (../shared/models relative to the repo
/// root) by walking up from the test binaries; tests that need them skip when they are absent.
/// </summary>
internal static class SharedModels
{
    public const string Stories260K = "stories260K.gguf";

    public static string? Find(string fileName)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var models = Path.Combine(dir.FullName, "shared", "models");
            if (Directory.Exists(models))
            {
                var path = Path.Combine(models, fileName);
                return File.Exists(path) ? path : null;
            }
        }

        return null;
    }

    /// <summary>The model's path, or skips the calling test with a message saying what is missing.</summary>
    public static string Require(string fileName)
    {
        var path = Find(fileName);
        if (path is null)
        {
            Assert.Skip($"Needs shared data: shared/models/{fileName} was not found in any parent of {AppContext.BaseDirectory}.");
        }

        return path!;
    }
}
