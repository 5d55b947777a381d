using Kiln.Runtime.Formats;
using Kiln.Runtime.Loading;
using Kiln.Tests.Numerics;

namespace Kiln.Tests.Loading;

/// <summary>
/// <see cref="ModelLoader.ReadConfig"/> gives the configuration the full load gives, without weights: from a Hugging
/// Face directory, from its config.json standing alone (what an image build copies), and from a GGUF file.
/// </summary>
public sealed class ReadConfigTests
{
    private static readonly TinyLlamaSpec Spec = new() { VocabSize = 300, Hidden = 64, Intermediate = 96, Layers = 2, Heads = 8, KvHeads = 2, Seed = 91 };

    [Fact]
    public void HuggingFaceDirectory_AndItsConfigJsonAlone_GiveTheLoadersConfig()
    {
        using var directory = new TempDirectory();
        TinyCheckpoints.WriteHuggingFace(directory.Path, new TinyLlama(Spec));
        using var loaded = ModelLoader.Load(directory.Path);

        Assert.Equal(loaded.Config, ModelLoader.ReadConfig(directory.Path));

        using var alone = new TempDirectory();
        File.Copy(directory.File("config.json"), alone.File("config.json"));
        Assert.Equal(loaded.Config, ModelLoader.ReadConfig(alone.File("config.json")));
        Assert.Equal(loaded.Config, ModelLoader.ReadConfig(alone.Path));
        Assert.Equal(4, loaded.Config.HeadCount / loaded.Config.KvHeadCount); // the shape a GPU module is compiled for
    }

    [Fact]
    public void GgufFile_GivesTheLoadersConfig()
    {
        using var directory = new TempDirectory();
        string path = directory.File("tiny.gguf");
        TinyCheckpoints.WriteGguf(path, new TinyLlama(Spec));
        using var loaded = ModelLoader.Load(path);

        Assert.Equal(loaded.Config, ModelLoader.ReadConfig(path));
    }

    [Fact]
    public void NoPath_IsTheDemoModel_AndAWrongPathSaysWhatWasExpected()
    {
        Assert.Same(DemoModel.Config, ModelLoader.ReadConfig(null));

        using var directory = new TempDirectory();
        var missing = Assert.Throws<FileNotFoundException>(() => ModelLoader.ReadConfig(directory.File("absent.gguf")));
        Assert.Contains("absent.gguf", missing.Message, StringComparison.Ordinal);
        File.WriteAllText(directory.File("notes.txt"), "not a model");
        var wrong = Assert.Throws<ModelFormatException>(() => ModelLoader.ReadConfig(directory.File("notes.txt")));
        Assert.Contains("notes.txt", wrong.Message, StringComparison.Ordinal);
    }
}
