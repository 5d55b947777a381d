using System.Text.Json;
using Kiln.Scaler.Contracts;
using Kiln.Scaler.Sources;

namespace Kiln.Scaler.Service;

/// <summary>
/// <c>PUT /v1/gateways/{namespace}/{scaledObject}/{gatewayId}</c> on the scaler's HTTP port: a gateway's report of
/// the calls it holds (<see cref="GatewayReport"/>). Small and validated: anything inside the cluster can reach it.
/// </summary>
internal static class GatewayReportEndpoint
{
    private const int MaxBodyBytes = 4096;
    private const int MaxNameLength = 253; // a Kubernetes object name

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static async Task<IResult> HandleAsync(string @namespace, string scaledObject, string gatewayId, HttpRequest request, GatewayReports reports)
    {
        if (@namespace.Length > MaxNameLength || scaledObject.Length > MaxNameLength || gatewayId.Length > MaxNameLength)
        {
            return Results.BadRequest(new { error = "names are at most 253 characters" });
        }

        if (request.ContentLength > MaxBodyBytes)
        {
            return Results.StatusCode(StatusCodes.Status413PayloadTooLarge);
        }

        GatewayReport? report;
        try
        {
            report = await JsonSerializer.DeserializeAsync<GatewayReport>(request.Body, Json, request.HttpContext.RequestAborted);
        }
        catch (JsonException e)
        {
            return Results.BadRequest(new { error = $"not a gateway report: {e.Message}" });
        }

        if (report is null || report.HeldRequests < 0 || !double.IsFinite(report.HeldTokens) || report.HeldTokens < 0)
        {
            return Results.BadRequest(new { error = "heldRequests and heldTokens must be non-negative numbers" });
        }

        return reports.Record($"{@namespace}/{scaledObject}", gatewayId, report)
            ? Results.NoContent()
            : Results.StatusCode(StatusCodes.Status429TooManyRequests);
    }
}
