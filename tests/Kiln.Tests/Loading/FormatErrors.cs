using Kiln.Runtime.Formats;
using Kiln.Runtime.Loading;

namespace Kiln.Tests.Loading;

/// <summary>Assertions for loading malformed files: always a <see cref="ModelFormatException"/> that says which file and what.</summary>
public static class FormatErrors
{
    /// <summary>
    /// Loads <paramref name="loadPath"/> and asserts a ModelFormatException about <paramref name="badFile"/> whose
    /// message names the file and contains every fragment (case-insensitive). Any other exception fails the test
    /// with its type, so an IndexOutOfRange or NullReference from a loader shows as such.
    /// </summary>
    public static ModelFormatException AssertLoadFails(string loadPath, string badFile, params string[] fragments)
    {
        var e = Assert.Throws<ModelFormatException>(() =>
        {
            using var model = ModelLoader.Load(loadPath);
        });
        Assert.Equal(badFile, e.FilePath);
        Assert.Contains(badFile, e.Message, StringComparison.Ordinal);
        foreach (string fragment in fragments)
        {
            Assert.Contains(fragment, e.Problem, StringComparison.OrdinalIgnoreCase);
        }

        return e;
    }

    /// <summary>Loading either works or fails with a ModelFormatException; returns the exception or null.</summary>
    public static Exception? LoadOutcome(string path)
    {
        try
        {
            using var model = ModelLoader.Load(path);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    public static void Truncate(string path, long length)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
        stream.SetLength(length);
    }
}
