using System.IO.MemoryMappedFiles;

namespace Kiln.Runtime.Formats;

/// <summary>
/// A read-only memory mapping of a whole file. Weights are used in place from the mapping, so loading a model
/// neither copies the file nor doubles its resident memory: pages come in from the page cache as they are touched.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _pointer;

    private MappedFile(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, long length)
    {
        Path = path;
        _file = file;
        _view = view;
        Length = length;
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + _view.PointerOffset;
    }

    public string Path { get; }

    public long Length { get; }

    public byte* Pointer => _pointer != null ? _pointer : throw new ObjectDisposedException(Path);

    public static MappedFile Open(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path}: file not found", path);
        }

        if (info.Length == 0)
        {
            throw new ModelFormatException(path, "the file is empty");
        }

        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new MappedFile(path, file, view, info.Length);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Returns a span over [offset, offset+length), or throws naming the file when it runs past the end.</summary>
    public ReadOnlySpan<byte> Slice(long offset, long length, string what)
    {
        if (offset < 0 || length < 0 || offset > Length || length > Length - offset)
        {
            throw new ModelFormatException(Path, $"{what} is truncated: it needs bytes {offset}..{offset + length} but the file has {Length}");
        }

        if (length > int.MaxValue)
        {
            throw new ModelFormatException(Path, $"{what} is larger than 2 GiB, which a single span cannot address");
        }

        return new ReadOnlySpan<byte>(Pointer + offset, (int)length);
    }

    public void Dispose()
    {
        if (_pointer != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }

        _view.Dispose();
        _file.Dispose();
    }
}
