using Kiln.Runtime.Synthetic;

namespace Kiln.Tests.Reference;

/// <summary>A random Llama GGUF file in a fresh temporary folder, deleted on dispose.</summary>
public sealed class TempGguf : IDisposable
{
    private readonly string _directory;

    public TempGguf(RandomLlamaOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kiln-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        Path = System.IO.Path.Combine(_directory, "model.gguf");
        RandomLlamaGguf.Write(Path, options);
    }

    public RandomLlamaOptions Options { get; }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a file still mapped elsewhere is left for the OS to clean.
        }
    }
}
