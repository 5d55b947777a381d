using Kiln.Tokenization;

namespace Kiln.Tests.Tokenization;

public sealed class MalformedTokenizerJsonTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData("{ \"model\": { \"type\": \"BPE\", ")]
    [InlineData("not json at all")]
    [InlineData("")]
    public void BadJson_ThrowsInvalidDataNamingTheFile(string content)
    {
        var path = _directory.Write("broken.json", content);
        var error = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromHuggingFace(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("WordPiece")]
    [InlineData("Unigram")]
    [InlineData("WordLevel")]
    public void UnsupportedModelType_ThrowsNamingFileAndType(string type)
    {
        var path = _directory.Write($"{type}.json", """{"added_tokens": [], "model": {"type": "TYPE", "vocab": {"a": 0}}}""".Replace("TYPE", type, StringComparison.Ordinal));
        var error = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromHuggingFace(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(type, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"added_tokens": []}""", "model")]
    [InlineData("""[1, 2, 3]""", "object")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}""", "ByteLevel")]
    [InlineData("""{"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", "Whitespace")]
    [InlineData("""{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", "byte")]
    [InlineData("""{"normalizer": {"type": "Prepend", "prepend": "▁"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}""", "BPE")]
    public void UnsupportedOrInconsistentContent_ThrowsNamingTheFile(string json, string mentioned)
    {
        var path = _directory.Write("odd.json", json);
        var error = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromHuggingFace(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(mentioned, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigNamingAnUnknownBosToken_ThrowsNamingTheConfig()
    {
        var tokenizer = _directory.Write("tokenizer.json", TokenizerJsonFiles.TinySentencePiece());
        var config = _directory.Write("tokenizer_config.json", """{"bos_token": "<|nope|>"}""");
        var error = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromHuggingFace(tokenizer, config));
        Assert.Contains(config, error.Message, StringComparison.Ordinal);
        Assert.Contains("<|nope|>", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFile_ThrowsFileNotFound()
    {
        var path = Path.Combine(_directory.Path, "absent.json");
        Assert.Throws<FileNotFoundException>(() => TokenizerLoader.FromHuggingFace(path));
    }
}
