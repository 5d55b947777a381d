namespace Kiln.Kernels.Cuda.Tests;

/// <summary>The checkout the tests run from, for the scripts under kernels/ (absent in a published copy).</summary>
internal static class Repository
{
    public static string? Root()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Functions.sln")))
            {
                return directory.FullName;
            }
        }

        return null;
    }
}
