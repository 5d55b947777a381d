using System.Text.Json;
using Kiln.Scaler.Contracts;
using Microsoft.Extensions.Options;

namespace Kiln.Gateway;

/// <summary>
/// Tells the scaler what this replica holds: a <see cref="GatewayReport"/> PUT at once when the first call is held
/// (so the scaler wakes KEDA's StreamIsActive and a deployment at zero starts scaling without waiting for a poll),
/// then every <c>ReportIntervalMs</c> while any is held, then one report of zero. Reports go from this loop only, so a
/// slow or failing scaler never delays a call; a failure is logged once per outage and the recovery in one line.
/// </summary>
public sealed partial class ScalerReporter : BackgroundService
{
    /// <summary>Short: a report is superseded by the next one anyway.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    private readonly HeldRequests _held;
    private readonly TimeProvider _time;
    private readonly ILogger<ScalerReporter> _log;
    private readonly HttpClient? _http;
    private readonly Uri? _target;
    private readonly TimeSpan _interval;
    private readonly AsyncSignal _wake = new();
    private bool _failing;
    private long _sent;

    public ScalerReporter(IOptions<GatewayOptions> options, GatewayIdentity identity, HeldRequests held, TimeProvider time, ILogger<ScalerReporter> log)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(held);
        var o = options.Value;
        (_held, _time, _log, _interval) = (held, time, log, TimeSpan.FromMilliseconds(o.ReportIntervalMs));
        if (!string.IsNullOrWhiteSpace(o.ScalerUrl))
        {
            _target = new Uri(o.ScalerUrl.TrimEnd('/') + GatewayReportPath.For(identity.Namespace, o.ScaledObjectName, identity.GatewayId));
            _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = Timeout }) { Timeout = Timeout };
        }

        _held.Changed += _ => _wake.Set();
    }

    /// <summary>Where reports go, or null when no scaler is configured.</summary>
    public Uri? Target => _target;

    /// <summary>Reports sent successfully, for /gateway/stats.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_http is null)
        {
            return;
        }

        var lastCount = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            var wake = _wake.Next;
            var (count, tokens) = _held.Snapshot();
            if (count > 0 || lastCount > 0)
            {
                await SendAsync(new GatewayReport { HeldRequests = count, HeldTokens = tokens }, stoppingToken).ConfigureAwait(false);
                lastCount = count;
            }

            try
            {
                if (count > 0)
                {
                    await wake.WaitAsync(_interval, _time, stoppingToken).ConfigureAwait(false);
                }
                else
                {
                    await wake.WaitAsync(stoppingToken).ConfigureAwait(false);
                }
            }
            catch (TimeoutException)
            {
                // the interval passed: report again
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task SendAsync(GatewayReport report, CancellationToken ct)
    {
        try
        {
            using var response = await _http!.PutAsJsonAsync(_target, report, JsonSerializerOptions.Web, ct).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            Interlocked.Increment(ref _sent);
            if (_failing)
            {
                _failing = false;
                LogRecovered(_log, _target!);
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            if (!_failing)
            {
                _failing = true;
                LogFailed(_log, _target!, e.Message);
            }
        }
    }

    public override void Dispose()
    {
        _http?.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Scaler reports to {Target} work again")]
    private static partial void LogRecovered(ILogger logger, Uri target);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Scaler report to {Target} failed ({Error}); calls are unaffected, retrying each interval")]
    private static partial void LogFailed(ILogger logger, Uri target, string error);
}
