using System.Text;
using System.Text.Json.Nodes;
using Kiln.Tokenization;
using Microsoft.ML.Tokenizers;

namespace Kiln.Tests.Tokenization;

public class HuggingFaceByteLevelTests(ByteLevelJsonFixture files) : IClassFixture<ByteLevelJsonFixture>
{
    private const string ChatPrompt =
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat's 2+2? 😀<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";

    private static readonly TiktokenTokenizer Gpt2Reference = TiktokenTokenizer.CreateForModel("gpt2");

    private static readonly Lazy<TiktokenTokenizer> Llama3Reference = new(() => Tokenization.Gpt2Reference.Tiktoken(
        Tokenization.Gpt2Reference.Llama3Pattern,
        ByteLevelJsonFixture.Llama3Specials.ToDictionary(s => s.Content, s => s.Id)));

    [Fact]
    public void Gpt2TokenizerJson_EncodesLikeTiktoken()
    {
        var tokenizer = files.Gpt2Json;
        Assert.Equal(50257, tokenizer.VocabSize);
        Assert.Null(tokenizer.BosTokenId); // no tokenizer_config.json and no template
        Assert.Equal([50256], tokenizer.EosTokenIds);
        Assert.False(tokenizer.AddsBosByDefault);
        foreach (var text in HardTexts.Common.Append("a<|endoftext|>b"))
        {
            Assert.Equal(Gpt2Reference.EncodeToIds(text), tokenizer.Encode(text));
        }
    }

    [Fact]
    public void Gpt2TokenizerJson_AgreesWithBuiltInGpt2OnAstralText()
    {
        // Merge-list BPE (BpeTokenizer) and rank BPE (Tiktoken) must agree on GPT-2's vocabulary.
        var builtIn = TokenizerLoader.CreateGpt2();
        foreach (var text in HardTexts.All)
        {
            Assert.Equal(builtIn.Encode(text), files.Gpt2Json.Encode(text));
        }
    }

    [Fact]
    public void Llama3StyleTokenizerJson_EncodesLikeTiktokenWithLlama3Regex()
    {
        var tokenizer = files.Llama3Json;
        foreach (var text in HardTexts.Common.Append(ChatPrompt))
        {
            var expected = Llama3Reference.Value.EncodeToIds(text);
            Assert.Equal(expected, tokenizer.Encode(text, addSpecialTokens: false));
            Assert.Equal([50257, .. expected], tokenizer.Encode(text));
        }
    }

    [Fact]
    public void Llama3StyleTokenizerJson_SplitsOnCodePointsLikePython()
    {
        // Hand-split with the Llama 3 pattern: "[^\r\n\p{L}\p{N}]?\p{L}+" takes the whole emoji as its
        // optional prefix, and "\p{N}{1,3}" counts code points, not UTF-16 units.
        var tokenizer = files.Llama3Json;
        Assert.Equal(Pieces("😀hello"), tokenizer.Encode("😀hello", addSpecialTokens: false));
        Assert.Equal(Pieces("x", " ", "𝟙𝟚𝟛", "𝟜"), tokenizer.Encode("x 𝟙𝟚𝟛𝟜", addSpecialTokens: false));
    }

    [Fact]
    public void Llama3StyleTokenizerJson_SpecialTokensFromTemplateAndAddedTokens()
    {
        var tokenizer = files.Llama3Json;
        Assert.Equal(50262, tokenizer.VocabSize);
        Assert.Equal(50257, tokenizer.BosTokenId);
        Assert.True(tokenizer.AddsBosByDefault);
        Assert.Equal([50258, 50261], tokenizer.EosTokenIds.Order());
        Assert.True(tokenizer.IsSpecial(50261));
        Assert.Equal("<|eot_id|>", tokenizer.TokenText(50261));

        var ids = tokenizer.Encode(ChatPrompt, addSpecialTokens: false);
        Assert.Equal(ChatPrompt, tokenizer.Decode([.. ids]));
        Assert.Equal("user\n\nWhat's 2+2? 😀assistant\n\n", tokenizer.Decode([.. ids], skipSpecialTokens: true));
    }

    [Fact]
    public void TokenizerConfig_OverridesBosEosAndAddBos()
    {
        var config = files.WriteConfig(
            "config-no-bos.json",
            """{"bos_token": {"content": "<|begin_of_text|>", "special": true}, "eos_token": "<|eot_id|>", "add_bos_token": false}""");
        var tokenizer = TokenizerLoader.FromHuggingFace(files.Llama3JsonPath, config);

        Assert.Equal(50257, tokenizer.BosTokenId);
        Assert.False(tokenizer.AddsBosByDefault);
        Assert.Equal(50261, tokenizer.EosTokenIds[0]);
        Assert.Contains(50258, tokenizer.EosTokenIds);
        Assert.Equal(tokenizer.Encode("hi", addSpecialTokens: false), tokenizer.Encode("hi"));
    }

    [Fact]
    public void TokenizerConfig_AddEosAppendsEos()
    {
        var config = files.WriteConfig("config-eos.json", """{"eos_token": "<|end_of_text|>", "add_eos_token": true}""");
        var tokenizer = TokenizerLoader.FromHuggingFace(files.Llama3JsonPath, config);

        var ids = tokenizer.Encode("hi");
        Assert.Equal(50257, ids[0]);
        Assert.Equal(50258, ids[^1]);
    }

    [Fact]
    public void NfcNormalizer_ComposesBeforeEncoding_NeedsIcu()
    {
        // Qwen2 normalizes with NFC: a decomposed "é" must encode like the composed one.
        var json = JsonNode.Parse(File.ReadAllText(files.Llama3JsonPath))!;
        json["normalizer"] = new JsonObject { ["type"] = "NFC" };
        var tokenizer = TokenizerLoader.FromHuggingFace(files.WriteTokenizer("nfc.json", json));
        Assert.Equal(files.Llama3Json.Encode("caf\u00e9"), tokenizer.Encode("caf\u00e9"));

        if ("e\u0301".Normalize(NormalizationForm.FormC) != "\u00e9")
        {
            Assert.Skip("Needs ICU: this process runs with InvariantGlobalization, where string.Normalize is a no-op.");
        }

        Assert.Equal(tokenizer.Encode("caf\u00e9"), tokenizer.Encode("cafe\u0301"));
        Assert.NotEqual(files.Llama3Json.Encode("caf\u00e9"), files.Llama3Json.Encode("cafe\u0301"));
    }

    [Fact]
    public void ConcurrentEncode_GivesTheSameIdsAsSequential()
    {
        // One tokenizer serves many requests; the library's BPE caches start empty here and are
        // filled concurrently, which must not corrupt results.
        var fresh = TokenizerLoader.FromHuggingFace(files.Llama3JsonPath);
        var texts = HardTexts.All.SelectMany(t => new[] { t, t + " again", "x" + t + "y" }).ToArray();
        var concurrent = new IReadOnlyList<int>[texts.Length * 20];
        Parallel.For(0, concurrent.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            concurrent[i] = fresh.Encode(texts[i % texts.Length]));

        for (var i = 0; i < concurrent.Length; i++)
        {
            Assert.Equal(files.Llama3Json.Encode(texts[i % texts.Length]), concurrent[i]);
        }
    }

    [Theory]
    [MemberData(nameof(HardTexts.AllData), MemberType = typeof(HardTexts))]
    public void Llama3StyleTokenizerJson_RoundTripsAndStreams(string text)
    {
        var tokenizer = files.Llama3Json;
        Assert.Equal(text, tokenizer.Decode([.. tokenizer.Encode(text, addSpecialTokens: false)]));

        var withBos = tokenizer.Encode(text);
        Assert.Equal("<|begin_of_text|>" + text, tokenizer.Decode([.. withBos]));
        Assert.Equal(text, tokenizer.Decode([.. withBos], skipSpecialTokens: true));
        TokenizerAssert.StreamsLikeDecode(tokenizer, withBos, skipSpecialTokens: true);
        TokenizerAssert.StreamsLikeDecode(tokenizer, withBos, skipSpecialTokens: false);
    }

    private static int[] Pieces(params string[] pieces) =>
        [.. pieces.SelectMany(p => Gpt2Reference.EncodeToIds(p, considerPreTokenization: false, considerNormalization: false))];
}
