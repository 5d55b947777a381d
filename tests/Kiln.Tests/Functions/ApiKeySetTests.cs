using System.Net;
using System.Security.Cryptography;
using System.Text;
using Kiln.Access;
using Microsoft.Extensions.Configuration;

namespace Kiln.Tests.Functions;

/// <summary>
/// The key set shared by the app and the gateway (functions/Kiln.Access): both forms of the setting, what a bearer
/// header must look like, and that nothing short of the whole key matches.
/// </summary>
public sealed class ApiKeySetTests
{
    private static readonly string[] ThreeKeys = ["a", "b", "c"];

    [Fact]
    public void CommaSeparated_IsTrimmed_AndEmptyEntriesDropped()
    {
        var keys = Read(new() { ["Kiln:ApiKeys"] = " k1, ,k2 ,,k1" });

        Assert.Equal(["k1", "k2"], ApiKeySet.ReadKeys(Config(new() { ["Kiln:ApiKeys"] = " k1, ,k2 ,,k1" }), "Kiln:ApiKeys"));
        Assert.Equal(2, keys.Count);
        Assert.True(keys.TryMatch("Bearer k1", out _));
        Assert.True(keys.TryMatch("Bearer k2", out _));
        Assert.False(keys.TryMatch("Bearer  k1 ,k2", out _));
        Assert.False(keys.TryMatch("Bearer ", out _));
    }

    [Fact]
    public void ConfigurationArray_IsReadToo_EachEntryTrimmed()
    {
        var keys = Read(new() { ["Kiln:ApiKeys:0"] = " a ", ["Kiln:ApiKeys:1"] = "", ["Kiln:ApiKeys:2"] = "b,c" });

        Assert.Equal(3, keys.Count);
        Assert.All(ThreeKeys, k => Assert.True(keys.TryMatch("Bearer " + k, out _), k));
    }

    [Fact]
    public void Unset_OrOnlyBlanks_IsEmpty_AndMatchesNothing()
    {
        Assert.True(Read([]).IsEmpty);
        var blanks = Read(new() { ["Kiln:ApiKeys"] = " , ," });
        Assert.True(blanks.IsEmpty);
        Assert.False(blanks.TryMatch("Bearer ", out _));
        Assert.False(blanks.TryMatch("Bearer ,", out _));
    }

    [Theory]
    [InlineData("Bearer secret-key-1234", true)]
    [InlineData("bearer secret-key-1234", true)]
    [InlineData("  Bearer   secret-key-1234  ", true)]
    [InlineData("secret-key-1234", false)]
    [InlineData("Basic secret-key-1234", false)]
    [InlineData("Bearersecret-key-1234", false)]
    [InlineData("Bearer", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void TheHeader_IsBearerAndTheKey(string? header, bool matches) =>
        Assert.Equal(matches, ApiKeySet.From(["secret-key-1234"]).TryMatch(header, out _));

    [Theory]
    [InlineData("secret-key-123")] // a prefix
    [InlineData("secret-key-12345")] // longer, with the key as its prefix
    [InlineData("s")]
    [InlineData("secret-key-1235")] // same length, last character differs
    [InlineData("SECRET-KEY-1234")] // keys are case-sensitive
    public void NothingButTheWholeKey_Matches(string presented)
    {
        var keys = ApiKeySet.From(["secret-key-1234", "another-key"]);
        Assert.False(keys.TryMatch("Bearer " + presented, out var caller));
        Assert.Null(caller);
    }

    [Fact]
    public void TheCallerId_IsTheKeysHashPrefix_StableAndIndependentOfTheOtherKeys()
    {
        string expected = "key-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("k2")).AsSpan(0, 4));

        Assert.True(ApiKeySet.From(["k1,k2"]).TryMatch("Bearer k2", out var before));
        Assert.True(ApiKeySet.From(["k2", "k3"]).TryMatch("Bearer k2", out var afterRotation)); // k1 retired, k3 added
        Assert.True(ApiKeySet.From(["k1"]).TryMatch("Bearer k1", out var other));

        Assert.Equal(expected, before.Id);
        Assert.Equal(before, afterRotation);
        Assert.NotEqual(before, other);
        Assert.DoesNotContain("k2", before.Id[4..], StringComparison.Ordinal);
    }

    [Fact]
    public void AnAnonymousCaller_IsNamedByItsAddress()
    {
        Assert.Equal("anon:10.1.2.3", ApiCaller.Anonymous(IPAddress.Parse("::ffff:10.1.2.3")).Id);
        Assert.Equal("anon:::1", ApiCaller.Anonymous(IPAddress.IPv6Loopback).Id);
        Assert.Equal("anon:unknown", ApiCaller.Anonymous(null).Id);
    }

    private static ApiKeySet Read(Dictionary<string, string?> values) => ApiKeySet.FromConfiguration(Config(values), "Kiln:ApiKeys");

    private static IConfiguration Config(Dictionary<string, string?> values) => new ConfigurationBuilder().AddInMemoryCollection(values).Build();
}
