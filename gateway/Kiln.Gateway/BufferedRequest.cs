using System.Text.Json;
using Kiln.Scaler.Contracts;
using Microsoft.AspNetCore.Http.Features;

namespace Kiln.Gateway;

/// <summary>
/// A call's body read whole (bounded by <c>MaxRequestBodyBytes</c>): needed to price it for the scaler, to hash its
/// prompt prefix, and to send it again to another pod when the first one turns it away.
/// </summary>
public sealed class BufferedRequest
{
    private BufferedRequest(byte[] body, int length, bool hasBody, double estimatedTokens, IReadOnlyList<ulong> blocks)
    {
        Body = body;
        Length = length;
        HasBody = hasBody;
        EstimatedTokens = estimatedTokens;
        Blocks = blocks;
    }

    public byte[] Body { get; }
    public int Length { get; }
    public bool HasBody { get; }

    /// <summary><see cref="TokenEstimator.EstimateRequest"/> of the body (0 for a call without one).</summary>
    public double EstimatedTokens { get; }

    public IReadOnlyList<ulong> Blocks { get; }

    /// <summary>The body, or null when it is over <c>MaxRequestBodyBytes</c> (answer 413).</summary>
    public static async Task<BufferedRequest?> ReadAsync(HttpRequest request, GatewayOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        var maxBytes = options.MaxRequestBodyBytes;
        if (request.ContentLength > maxBytes)
        {
            return null;
        }

        // The gateway enforces its own bound, so that an oversized body gets its 413 with a body, not Kestrel's bare one.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }

        var buffer = new byte[(int)Math.Min(request.ContentLength ?? 16 * 1024, maxBytes + 1)];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (length > maxBytes)
                {
                    return null;
                }

                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, maxBytes + 1));
            }

            var read = await request.Body.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            length += read;
        }

        if (length > maxBytes)
        {
            return null;
        }

        var hasBody = length > 0 || request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0;
        var (tokens, blocks) = Inspect(buffer.AsMemory(0, length), options);
        return new BufferedRequest(buffer, length, hasBody, tokens, blocks);
    }

    /// <summary>Puts the body back for one attempt: a fresh stream with its exact length.</summary>
    public void Rewind(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!HasBody)
        {
            return;
        }

        request.Body = new MemoryStream(Body, 0, Length, writable: false);
        request.ContentLength = Length;
        request.Headers.TransferEncoding = default;
    }

    private static (double Tokens, IReadOnlyList<ulong> Blocks) Inspect(ReadOnlyMemory<byte> body, GatewayOptions options)
    {
        if (body.IsEmpty)
        {
            return (0, []);
        }

        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                return (TokenEstimator.EstimateRequest(doc.RootElement, options.DefaultMaxTokens), PromptPrefix.Blocks(doc.RootElement, options.PrefixBlockChars));
            }
        }
        catch (JsonException)
        {
            // Not JSON: the app answers 400 for it; priced by its size meanwhile.
        }

        return (Math.Ceiling(body.Length / (double)TokenEstimator.CharsPerToken) + options.DefaultMaxTokens, []);
    }
}
