using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using Kiln.Scaler;
using Kiln.Scaler.Protocol;
using Kiln.Scaler.Service;
using Kiln.Scaler.Sources;
using Microsoft.Extensions.DependencyInjection;

namespace Kiln.Tests.Scaler;

public sealed class TlsTests
{
    [Fact]
    public async Task Tls_PemCertificateFromConfiguration_ServesGrpcOverHttps()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kiln-scaler.kiln.svc", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        var dir = Directory.CreateTempSubdirectory("kiln-tls-");
        try
        {
            var certPath = Path.Combine(dir.FullName, "tls.crt");
            var keyPath = Path.Combine(dir.FullName, "tls.key");
            await File.WriteAllTextAsync(certPath, cert.ExportCertificatePem(), TestContext.Current.CancellationToken);
            await File.WriteAllTextAsync(keyPath, key.ExportPkcs8PrivateKeyPem(), TestContext.Current.CancellationToken);

            await using var scaler = await ScalerHost.StartAsync(
                new ScalerOptions { TlsCertificatePath = certPath, TlsKeyPath = keyPath, KubernetesBaseUrl = "http://127.0.0.1:9" },
                s => s.AddSingleton<IQueueSource>(new FakeQueueSource()));
            Assert.Equal("https", scaler.GrpcAddress.Scheme);

            // KEDA with a caCert from a TriggerAuthentication: trust exactly this certificate.
            using var handler = new HttpClientHandler
            {
                ServerCertificateCustomValidationCallback = (_, presented, _, _) => presented?.Thumbprint == cert.Thumbprint,
            };
            using var channel = GrpcChannel.ForAddress(scaler.GrpcAddress, new GrpcChannelOptions { HttpHandler = handler });
            var client = new ExternalScaler.ExternalScalerClient(channel);
            var r = new ScaledObjectRef { Name = "llama", Namespace = "kiln" };
            r.ScalerMetadata.Add(new Dictionary<string, string>
            {
                ["queueName"] = "q",
                ["connectionFromEnv"] = "UseDevelopmentStorage=true",
                ["tpSize"] = "1",
                ["targetBacklogPerReplica"] = "10",
                ["podSelector"] = "app=x",
            });
            var spec = await client.GetMetricSpecAsync(r, cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal(10, spec.MetricSpecs.Single().TargetSizeFloat);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
