namespace Kiln.Runtime.Sampling;

/// <summary>A token id with its log-probability under the raw model distribution.</summary>
public readonly record struct TokenLogProb(int Id, float LogProb);

/// <summary>
/// The token a <see cref="Sampler"/> chose, its log-probability, and (when <see cref="SamplingParams.LogProbs"/> is set)
/// the most likely alternatives, most likely first. Log-probabilities are log-softmax of the raw model logits, before
/// penalties, temperature and filtering, like vLLM's default (raw_logprobs), so they describe the model, not the sampler.
/// </summary>
public readonly record struct SampledToken(int Id, float LogProb, TokenLogProb[]? TopLogProbs);
