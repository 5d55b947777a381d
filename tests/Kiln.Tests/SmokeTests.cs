namespace Kiln.Tests;

public class SmokeTests
{
    [Fact]
    public void LlamaSharpLoads() => Assert.NotNull(typeof(LLama.LLamaWeights));
}
