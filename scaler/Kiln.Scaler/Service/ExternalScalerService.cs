using Grpc.Core;
using Kiln.Scaler.Protocol;
using Kiln.Scaler.Scaling;
using Kiln.Scaler.Sources;
using Microsoft.Extensions.Options;

namespace Kiln.Scaler.Service;

/// <summary>
/// KEDA's ExternalScaler service. Every call carries the ScaledObject's metadata, parsed per call; errors map to
/// InvalidArgument (bad metadata, naming the key) and Unavailable (a source failed past its staleness bound).
/// </summary>
internal sealed partial class ExternalScalerService(
    BacklogService backlog, GatewayReports gateways, IOptions<ScalerOptions> options, TimeProvider time, ILogger<ExternalScalerService> log)
    : ExternalScaler.ExternalScalerBase
{
    public const string MetricName = "token-backlog";

    public override Task<IsActiveResponse> IsActive(ScaledObjectRef request, ServerCallContext context) =>
        Guard(async () =>
        {
            var e = await backlog.PollAsync(Parse(request), context.CancellationToken);
            return new IsActiveResponse { Result = e.Decision.Active };
        });

    public override Task<GetMetricSpecResponse> GetMetricSpec(ScaledObjectRef request, ServerCallContext context) =>
        Guard(() =>
        {
            var md = Parse(request);
#pragma warning disable CS0612 // the int64 field is deprecated but older KEDA releases still read it
            var spec = new MetricSpec { MetricName = MetricName, TargetSizeFloat = md.TargetBacklogPerReplica, TargetSize = ScalingMath.ToInt64(md.TargetBacklogPerReplica) };
#pragma warning restore CS0612
            return Task.FromResult(new GetMetricSpecResponse { MetricSpecs = { spec } });
        });

    public override Task<GetMetricsResponse> GetMetrics(GetMetricsRequest request, ServerCallContext context) =>
        Guard(async () =>
        {
            var md = Parse(request.ScaledObjectRef ?? throw new MetadataException("scaledObjectRef", "is required"));
            var e = await backlog.PollAsync(md, context.CancellationToken);
            var name = string.IsNullOrEmpty(request.MetricName) ? MetricName : request.MetricName;
#pragma warning disable CS0612
            var value = new MetricValue { MetricName = name, MetricValueFloat = e.Decision.Metric, MetricValue_ = ScalingMath.ToInt64(e.Decision.Metric) };
#pragma warning restore CS0612
            return new GetMetricsResponse { MetricValues = { value } };
        });

    /// <summary>
    /// Re-evaluates every poll interval while the stream is open, and at once when a gateway starts holding calls for
    /// the object, and pushes on each change (the first state at once); KEDA acts only on true, which scales an idle
    /// deployment from zero without waiting for its polling interval.
    /// </summary>
    public override async Task StreamIsActive(ScaledObjectRef request, IServerStreamWriter<IsActiveResponse> responseStream, ServerCallContext context)
    {
        var md = await Guard(() => Task.FromResult(Parse(request)));
        var ct = context.CancellationToken;
        var poll = TimeSpan.FromMilliseconds(options.Value.StreamPollIntervalMs);
        bool? last = null;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var active = (await backlog.EvaluateAsync(md, ct)).Decision.Active;
                if (active != last)
                {
                    await responseStream.WriteAsync(new IsActiveResponse { Result = active }, ct);
                    last = active;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (MetadataException e)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
            }
            catch (SourceUnavailableException e)
            {
                // The stream stays open: polling (IsActive) reports the failure, this just tries again.
                LogStreamError(log, md.Key, e.Message);
            }

            // Either the interval passes or a gateway's first held call arrives; WhenAny never throws on cancellation.
            await Task.WhenAny(Task.Delay(poll, time, ct), gateways.HoldingStarted(md.Key));
        }
    }

    public override Task StreamMetricSpec(ScaledObjectRef request, IServerStreamWriter<GetMetricSpecResponse> responseStream, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "StreamMetricSpec is not implemented: the metric spec only changes with the ScaledObject"));

    private static ScalerMetadata Parse(ScaledObjectRef r) => ScalerMetadata.Parse(r.Name, r.Namespace, r.ScalerMetadata);

    private static async Task<T> Guard<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (MetadataException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
        }
        catch (SourceUnavailableException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, e.Message));
        }
    }

    // The failing source is logged once per outage by OutageLog.
    [LoggerMessage(Level = LogLevel.Debug, Message = "{ScaledObject}: StreamIsActive evaluation failed: {Error}")]
    private static partial void LogStreamError(ILogger logger, string scaledObject, string error);
}
