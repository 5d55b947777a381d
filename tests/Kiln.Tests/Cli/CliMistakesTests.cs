namespace Kiln.Tests.Cli;

/// <summary>
/// A user's mistake on the command line is one line on stderr naming the option and what is wrong, exit code 1, no
/// .NET internals and no help dump; and detokenize prints text, not special-token markers, unless asked.
/// </summary>
public sealed class CliMistakesTests
{
    [Theory]
    [InlineData("--max-tokens must be at least 1, not -1", "generate", "--prompt", "hi", "--max-tokens", "-1")]
    [InlineData("--max-tokens: 'many' is not an integer", "generate", "--prompt", "hi", "--max-tokens", "many")]
    [InlineData("--temperature: 'hot' is not a number", "generate", "--prompt", "hi", "--temperature", "hot")]
    [InlineData("--temperature must be between 0 and 2, not 5", "generate", "--prompt", "hi", "--temperature", "5")]
    [InlineData("--seed: '-3' is not a non-negative integer", "generate", "--prompt", "hi", "--seed", "-3")]
    [InlineData("--tp must be at least 1, not 0", "logits", "--ids", "1,2", "--tp", "0")]
    [InlineData("--greedy must be at least 0, not -2", "logits", "--ids", "1,2", "--greedy", "-2")]
    [InlineData("--ids: 'x' is not a token id", "detokenize", "--ids", "1,x")]
    public async Task Mistake_IsOneLineNamingTheOption(string expected, params string[] arguments)
    {
        var (exitCode, stdout, stderr) = await KilnProcess.RunAsync(arguments);

        Assert.Equal(1, exitCode);
        Assert.Equal(string.Empty, stdout.Trim());
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("kiln: error: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", line, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Detokenize_LeavesSpecialTokensOut_UnlessAskedFor()
    {
        // The demo model's GPT-2 vocabulary: 50256 is <|endoftext|>, its BOS and EOS; 464 and 3797 are "The" and " cat".
        var (plainExit, plain, _) = await KilnProcess.RunAsync(["detokenize", "--ids", "50256,464,3797,50256"]);
        var (specialExit, special, _) = await KilnProcess.RunAsync(["detokenize", "--ids", "50256,464,3797,50256", "--special"]);

        Assert.Equal(0, plainExit);
        Assert.Equal(0, specialExit);
        Assert.Equal("The cat", plain.TrimEnd('\n'));
        Assert.Equal("<|endoftext|>The cat<|endoftext|>", special.TrimEnd('\n'));
    }
}
