namespace Kiln.Runtime.Sampling;

/// <summary>
/// One row's draw for a backend that samples where the logits are (the CUDA runner's sample_rows kernel):
/// temperature (0 is the greedy argmax), top-k (0 keeps all), top-p over what top-k kept, and a seed that already
/// folds in the request's seed, the sample and the step (<see cref="SamplingState.StepSeed"/>), so a seeded request
/// repeats its tokens on that backend.
/// </summary>
public readonly record struct DeviceSampling(float Temperature, int TopK, float TopP, ulong Seed)
{
    public bool IsGreedy => Temperature == 0;
}
