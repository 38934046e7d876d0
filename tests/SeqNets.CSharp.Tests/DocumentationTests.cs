using System.Reflection;
using System.Xml.Linq;
using SeqNets.CSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>Every public member of the facade carries a real summary: one or two sentences, no empty tags.</summary>
public class DocumentationTests
{
    private static readonly Assembly Facade = typeof(RecurrentNetwork).Assembly;

    private static Dictionary<string, string> Summaries()
    {
        var path = Path.ChangeExtension(Facade.Location, ".xml");
        Assert.True(File.Exists(path), $"expected the facade's XML documentation at {path}");
        return XDocument.Load(path).Descendants("member").ToDictionary(
            m => (string)m.Attribute("name")!,
            m => string.Join(" ", (m.Element("summary")?.DescendantNodes().OfType<XText>().Select(t => t.Value) ?? [])).Trim());
    }

    /// <summary>The documentation ID prefix of a member: methods and constructors are matched by name, overloads alike.</summary>
    private static string Id(MemberInfo m) => m switch
    {
        Type t => "T:" + t.FullName,
        PropertyInfo p => $"P:{p.DeclaringType!.FullName}.{p.Name}",
        FieldInfo f => $"F:{f.DeclaringType!.FullName}.{f.Name}",
        ConstructorInfo c => $"M:{c.DeclaringType!.FullName}.#ctor",
        MethodInfo mi => $"M:{mi.DeclaringType!.FullName}.{mi.Name}",
        _ => m.Name,
    };

    [Fact]
    public void Every_public_member_has_a_real_summary()
    {
        var summaries = Summaries();
        const BindingFlags declared = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var members = Facade.GetExportedTypes()
            .SelectMany(t => t.GetMembers(declared).Prepend(t))
            .Where(m => !(m is MethodBase mb && (mb.IsSpecialName && m is not ConstructorInfo || mb.Name.StartsWith('<'))))
            .Where(m => !(m is FieldInfo f && f.IsSpecialName))
            .Where(m => !(m is ConstructorInfo && m.DeclaringType!.IsEnum))
            .Where(m => !m.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute))) // a record's Equals, ToString, …
            .ToList();
        var missing = new List<string>();
        foreach (var m in members)
        {
            var id = Id(m);
            var docs = summaries.Where(kv => kv.Key == id || kv.Key.StartsWith(id + "(", StringComparison.Ordinal)).Select(kv => kv.Value).ToList();
            if (docs.Count == 0) missing.Add($"{id}: no documentation");
            else if (docs.Any(d => d.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length < 4 || !d.TrimEnd().EndsWith('.')))
                missing.Add($"{id}: summary is not a sentence: '{docs.First()}'");
        }
        Assert.True(missing.Count == 0, string.Join("\n", missing));
        Assert.True(members.Count > 80, $"expected the whole surface, but checked only {members.Count} members");
    }
}
