using Kiln.Runtime.Sampling;

namespace Kiln.Tests.Sampling;

public class SamplingParamsTests
{
    public static TheoryData<string, SamplingParams> OutOfRange => new()
    {
        { "temperature", new() { Temperature = -0.1f } },
        { "temperature", new() { Temperature = float.NaN } },
        { "temperature", new() { Temperature = float.PositiveInfinity } },
        { "top_p", new() { TopP = 0 } },
        { "top_p", new() { TopP = 1.01f } },
        { "top_k", new() { TopK = -1 } },
        { "min_p", new() { MinP = -0.01f } },
        { "min_p", new() { MinP = 1.5f } },
        { "repetition_penalty", new() { RepetitionPenalty = 0 } },
        { "repetition_penalty", new() { RepetitionPenalty = float.PositiveInfinity } },
        { "presence_penalty", new() { PresencePenalty = 2.01f } },
        { "presence_penalty", new() { PresencePenalty = -2.5f } },
        { "frequency_penalty", new() { FrequencyPenalty = -2.01f } },
        { "frequency_penalty", new() { FrequencyPenalty = float.NaN } },
        { "max_tokens", new() { MaxTokens = 0 } },
        { "n", new() { N = 0 } },
        { "logprobs", new() { LogProbs = -1 } },
        { "logprobs", new() { LogProbs = 21 } },
        { "stop", new() { Stop = ["a", "b", "c", "d", "e"] } },
        { "stop_token_ids", new() { StopTokenIds = [-1] } },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void Validate_OutOfRange_ThrowsNamingTheOpenAiParameter(string name, SamplingParams p)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(p.Validate);
        Assert.Equal(name, e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingState(p));
    }

    [Fact]
    public void Validate_EmptyOrNullStop_ThrowsArgumentException()
    {
        Assert.Equal("stop", Assert.Throws<ArgumentException>(new SamplingParams { Stop = ["ok", ""] }.Validate).ParamName);
        Assert.Equal("stop", Assert.Throws<ArgumentException>(new SamplingParams { Stop = null! }.Validate).ParamName);
    }

    [Fact]
    public void Validate_Boundaries_AreAccepted()
    {
        new SamplingParams().Validate();
        SamplingParams.Greedy.Validate();
        new SamplingParams
        {
            Temperature = 0,
            TopP = 1,
            TopK = 0,
            MinP = 1,
            RepetitionPenalty = 2,
            PresencePenalty = -2,
            FrequencyPenalty = 2,
            MaxTokens = 1,
            N = 4,
            LogProbs = 20,
            Stop = ["a", "b", "c", "d"],
            StopTokenIds = [0],
            IgnoreEos = true,
        }.Validate();
        new SamplingParams { LogProbs = 0 }.Validate();
    }

    [Fact]
    public void Defaults_MatchVllm()
    {
        var p = new SamplingParams();
        Assert.Equal((1f, 1f, 0, 0f, 1f, 0f, 0f, 1), (p.Temperature, p.TopP, p.TopK, p.MinP, p.RepetitionPenalty, p.PresencePenalty, p.FrequencyPenalty, p.N));
        Assert.False(p.IsGreedy);
        Assert.True(SamplingParams.Greedy.IsGreedy);
        Assert.Null(p.Seed);
        Assert.Null(p.LogProbs);
    }

    [Fact]
    public void SamplingState_SampleIndexMustBeBelowN()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingState(new SamplingParams { N = 2 }, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingState(new SamplingParams(), -1));
        Assert.Equal(1, new SamplingState(new SamplingParams { N = 2, Seed = 3 }, 1).SampleIndex);
    }
}
