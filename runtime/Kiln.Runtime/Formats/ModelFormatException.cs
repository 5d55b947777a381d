namespace Kiln.Runtime.Formats;

/// <summary>
/// A model file that is malformed or unsupported. The message always names the file and what is wrong,
/// so a user can tell a truncated download from an unsupported architecture without a debugger.
/// </summary>
public sealed class ModelFormatException : FormatException
{
    public ModelFormatException(string filePath, string problem)
        : base($"{filePath}: {problem}")
    {
        FilePath = filePath;
        Problem = problem;
    }

    public ModelFormatException(string filePath, string problem, Exception inner)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
        Problem = problem;
    }

    public ModelFormatException()
        : this(string.Empty, "malformed model file")
    {
    }

    public ModelFormatException(string message)
        : this(string.Empty, message)
    {
    }

    public ModelFormatException(string message, Exception inner)
        : this(string.Empty, message, inner)
    {
    }

    public string FilePath { get; }

    public string Problem { get; }
}
