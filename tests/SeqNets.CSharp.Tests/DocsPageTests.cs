using System.Text.RegularExpressions;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// The C# pages cannot drift from compiled code: every code block on docs/getting-started-csharp.md
/// is C# and appears verbatim (up to whitespace) in <see cref="DocsSnippets"/>, and every block of
/// docs/custom-cells-csharp.md in <see cref="CustomCellsPageSnippets"/>, each inside a test (or a
/// definition) marked with the section it belongs to.
/// </summary>
public partial class DocsPageTests
{
    /// <summary>Each C# page, the file of its compiled snippets and the fewest code blocks it must have.</summary>
    public static TheoryData<string, string, int> Pages => new()
    {
        { "docs/getting-started-csharp.md", "DocsSnippets.cs", 6 },
        { "docs/custom-cells-csharp.md", "CustomCellsPageSnippets.cs", 6 },
    };

    /// <summary>The folder holding SeqNets.slnx, found by walking up from the test binaries.</summary>
    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SeqNets.slnx")))
                return dir.FullName;
        throw new InvalidOperationException($"no SeqNets.slnx above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^```(\S*)[ \t]*\r?\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex Fence();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Space();

    [GeneratedRegex(@"^## (.+)$|^### (.+)$", RegexOptions.Multiline)]
    private static partial Regex Heading();

    private static string Normalised(string code) => Space().Replace(code, " ").Trim();

    private static (string Language, string Code)[] Blocks(string markdown) =>
        Fence().Matches(markdown).Select(m => (m.Groups[1].Value, m.Groups[2].Value)).ToArray();

    [Theory]
    [MemberData(nameof(Pages))]
    public void Every_code_block_is_CSharp_and_appears_verbatim_in_the_compiled_snippets(string page, string snippetsFile, int fewestBlocks)
    {
        var root = Root();
        var markdown = File.ReadAllText(Path.Combine(root, page));
        var snippets = File.ReadAllText(Path.Combine(root, "tests", "SeqNets.CSharp.Tests", snippetsFile));
        var source = Normalised(snippets);
        var blocks = Blocks(markdown);
        Assert.True(blocks.Length >= fewestBlocks, $"expected the page's walkthrough, but found {blocks.Length} code blocks");
        var problems = new List<string>();
        foreach (var (language, code) in blocks)
        {
            if (language != "csharp")
            {
                problems.Add($"a ```{language} block cannot be compiled by the C# tests:\n{code}");
                continue;
            }
            // using directives sit at the top of the snippets file; the rest sits in a test body.
            var lines = code.Split('\n');
            var usings = lines.TakeWhile(l => l.TrimStart().StartsWith("using ", StringComparison.Ordinal) && l.TrimEnd().EndsWith(';')
                                              || string.IsNullOrWhiteSpace(l)).ToList();
            foreach (var u in usings.Where(u => !string.IsNullOrWhiteSpace(u)))
                if (!snippets.Contains(u.Trim() + "\n", StringComparison.Ordinal) && !snippets.Contains(u.Trim() + "\r\n", StringComparison.Ordinal))
                    problems.Add($"the directive '{u.Trim()}' is not in {snippetsFile}");
            var body = Normalised(string.Join("\n", lines.Skip(usings.Count)));
            if (body.Length > 0 && !source.Contains(body, StringComparison.Ordinal))
                problems.Add($"this block is not in {snippetsFile} as written:\n{code}");
        }
        Assert.True(problems.Count == 0, string.Join("\n\n", problems));
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public void Every_snippet_names_a_section_of_the_page_and_every_section_with_code_has_a_snippet(string page, string snippetsFile, int fewestBlocks)
    {
        var root = Root();
        var markdown = File.ReadAllText(Path.Combine(root, page));
        var snippets = File.ReadAllText(Path.Combine(root, "tests", "SeqNets.CSharp.Tests", snippetsFile));
        Assert.True(fewestBlocks > 0);
        var marked = Regex.Matches(snippets, "// " + Regex.Escape(page) + @": (.+)$", RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value.Trim()).ToList();
        // The sections whose text holds a code block, each named by its nearest heading above it.
        var headings = Heading().Matches(markdown).Select(m => (m.Index, Title: (m.Groups[1].Success ? m.Groups[1] : m.Groups[2]).Value.Trim())).ToList();
        var withCode = Fence().Matches(markdown)
            .Select(f => headings.Last(h => h.Index < f.Index).Title)
            .Distinct()
            .ToList();
        Assert.Equal(withCode.Order(), marked.Distinct().Order());
        Assert.Equal(marked.Count, marked.Distinct().Count());
    }
}
