#!/usr/bin/env bash
# Documentation shows only code that CI runs.
# Pages written as F# scripts: docs/X.fsx is the source, run by CI, and docs/X.md is the page made
# from it: prose from the (** … *) comments, the code between them as ```fsharp blocks. Code after a
# line "(*** hide ***)" runs but is left off the page, up to the next (** comment: the script's
# header, the checks of what the page claims, ";;" between snippets that reuse a name.
# For every docs/*.fsx this checks that
#   - every ```fsharp block of the page appears verbatim in the script,
#   - the page is the one the script makes now, so the prose cannot drift either, and
#   - the script runs (dotnet fsi) and exits 0: its checks of the page's claims hold.
# Every other page: a ```fsharp block only on a page made from a script; ```csharp blocks only in
# docs/api.md, whose blocks appear verbatim in the C# program that .ci/packages.sh builds and runs,
# and docs/getting-started-csharp.md and docs/custom-cells-csharp.md, whose blocks the C# tests
# compile and run (DocsSnippets.cs, CustomCellsPageSnippets.cs; DocsPageTests checks them).
# Sections of a page between "<!-- seqnets derive X --markdown…" and "<!-- end of seqnets derive X -->"
# are the output of that command (docs/derivations.md): checked byte for byte, remade by --write.
# `bash .ci/docs.sh --write` remakes the pages from the scripts; `--pages` checks the pages and
# runs no script. Run after `dotnet build SeqNets.slnx -c Release`: the scripts #r the build output.
set -uo pipefail
cd "$(dirname "$0")/.."

# The page of a literate script: "(**" and "*)" on lines of their own open and close prose.
page() { # script
    local name
    name=$(basename "$1")
    {
        echo "<!-- Made from $name by .ci/docs.sh --write: edit the script, not this page. -->"
        echo
        awk '
            function flush(   first, last, i) {
                first = 1; last = n
                while (first <= n && code[first] ~ /^[ \t]*$/) first++
                while (last >= first && code[last] ~ /^[ \t]*$/) last--
                if (first <= last) {
                    print ""; print "```fsharp"
                    for (i = first; i <= last; i++) print code[i]
                    print "```"; print ""
                }
                n = 0
            }
            /^\(\*\*\*[ \t]*hide[ \t]*\*\*\*\)[ \t]*$/ && !prose { flush(); hidden = 1; next }
            /^\(\*\*[ \t]*$/ && !prose { flush(); prose = 1; hidden = 0; print ""; next }
            /^\*\)[ \t]*$/ && prose { prose = 0; print ""; next }
            prose { print; next }
            hidden { next }
            { code[++n] = $0 }
            END { flush() }
        ' "$1"
    } | cat -s | awk '{ lines[NR] = $0 } END { last = NR; while (last > 0 && lines[last] == "") last--; for (i = 1; i <= last; i++) print lines[i] }'
}

# Every ```<language> block of the page that is not a verbatim part of the source.
missing_blocks() { # page, source, language
    awk -v language="$3" '
        NR == FNR { source = source $0 "\n"; next }
        $0 ~ "^```" language "[ \t]*$" { inside = 1; block = ""; start = FNR; next }
        inside && /^```[ \t]*$/ {
            inside = 0
            if (index(source, block) == 0) { printf "  the %s block at line %d is not in the source:\n%s", language, start, block; bad = 1 }
            next
        }
        inside { block = block $0 "\n" }
        END { exit bad }
    ' "$2" "$1"
}

mode=check
case "${1:-}" in
    --write) mode=write ;;
    --pages) mode=pages ;;
    "") ;;
    *) echo "usage: bash .ci/docs.sh [--write | --pages]"; exit 2 ;;
esac
failed=0

# Derived sections: the output of `seqnets derive <cell> --markdown`, byte for byte.
seqnets_cli=SeqNets.Cli/bin/Release/net10.0/seqnets.dll
derived_cells() { # page
    sed -n 's/^<!-- seqnets derive \([a-z-]*\) --markdown.*-->$/\1/p' "$1"
}
derived_section() { # page, cell: the lines between the cell's markers
    awk -v start="<!-- seqnets derive $2 --markdown" -v stop="<!-- end of seqnets derive $2 -->" '
        index($0, start) == 1 { inside = 1; next }
        $0 == stop { inside = 0 }
        inside { print }
    ' "$1"
}
for md in docs/*.md; do
    cells=$(derived_cells "$md")
    [ -z "$cells" ] && continue
    if [ ! -f "$seqnets_cli" ]; then
        echo "docs: $md has derived sections but $seqnets_cli is not built (dotnet build SeqNets.Cli -c Release)"
        failed=1
        continue
    fi
    if [ "$mode" = write ]; then
        out=$(mktemp)
        while IFS= read -r line; do
            printf '%s\n' "$line"
            cell=$(sed -n 's/^<!-- seqnets derive \([a-z-]*\) --markdown.*-->$/\1/p' <<<"$line")
            if [ -n "$cell" ]; then
                dotnet "$seqnets_cli" derive "$cell" --markdown
            fi
        done < <(awk '
            /^<!-- seqnets derive [a-z-]+ --markdown.*-->$/ { print; skip = 1; next }
            /^<!-- end of seqnets derive [a-z-]+ -->$/ { skip = 0 }
            !skip { print }
        ' "$md") >"$out"
        mv "$out" "$md"
        echo "wrote the derived sections of $md: $(echo $cells)"
        continue
    fi
    for cell in $cells; do
        if cmp -s <(derived_section "$md" "$cell") <(dotnet "$seqnets_cli" derive "$cell" --markdown); then
            echo "docs: $md's section for $cell is what seqnets derive $cell --markdown prints"
        else
            echo "docs: $md's section for $cell differs from seqnets derive $cell --markdown; run: bash .ci/docs.sh --write"
            diff -u <(derived_section "$md" "$cell") <(dotnet "$seqnets_cli" derive "$cell" --markdown) | head -n 40
            failed=1
        fi
    done
done

for script in docs/*.fsx; do
    md="${script%.fsx}.md"
    if [ "$mode" = write ]; then
        page "$script" >"$md"
        echo "wrote $md"
        continue
    fi
    ok=1
    if [ ! -f "$md" ]; then
        echo "docs: $script has no page $md; run: bash .ci/docs.sh --write"
        ok=0
    elif ! missing_blocks "$md" "$script" fsharp; then
        echo "docs: $md shows F# code that $script does not run"
        ok=0
    fi
    if [ -f "$md" ] && ! diff -u "$md" <(page "$script") >/dev/null; then
        echo "docs: $md is not the page $script makes; run: bash .ci/docs.sh --write"
        diff -u "$md" <(page "$script") | head -n 40
        ok=0
    fi
    if [ "$ok" -eq 1 ]; then echo "docs: $md matches $script"; else failed=1; fi
done
[ "$mode" = write ] && exit 0

for md in docs/*.md; do
    name=$(basename "$md")
    if grep -q '^```fsharp[ \t]*$' "$md" && [ ! -f "${md%.md}.fsx" ]; then
        echo "docs: $md shows F# code but is not made from a script docs/${name%.md}.fsx"
        failed=1
    fi
    case "$name" in
        api.md | getting-started-csharp.md | custom-cells-csharp.md) ;;
        *) if grep -q '^```csharp[ \t]*$' "$md"; then
               echo "docs: $md shows C# code that nothing compiles (only api.md, getting-started-csharp.md and custom-cells-csharp.md may)"
               failed=1
           fi ;;
    esac
done

if missing_blocks docs/api.md .ci/packages.sh csharp; then
    echo "docs: docs/api.md shows only C# that .ci/packages.sh compiles and runs"
else
    echo "docs: docs/api.md shows C# that .ci/packages.sh does not compile"
    failed=1
fi

# The README's C# block, without its using lines, appears in the C# test that compiles and runs it
# (ReadmeExample.cs), line by line up to indentation.
readme_csharp() {
    awk '
        function norm(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
        NR == FNR { source = source norm($0) "\n"; next }
        /^```csharp[ \t]*$/ { inside = 1; block = ""; next }
        inside && /^```[ \t]*$/ { inside = 0; next }
        inside && !/^using [A-Za-z.]+;[ \t]*$/ && norm($0) != "" { block = block norm($0) "\n" }
        END { if (block == "" || index(source, block) == 0) { printf "%s", block; exit 1 } }
    ' tests/SeqNets.CSharp.Tests/ReadmeExample.cs README.md
}
if readme_csharp >/dev/null; then
    echo "docs: README.md's C# block is the one the C# tests compile and run"
else
    echo "docs: README.md's C# block differs from tests/SeqNets.CSharp.Tests/ReadmeExample.cs:"
    readme_csharp
    failed=1
fi

if [ "$mode" = check ]; then
    # The README's F# blocks run as written, each as a script next to the README (so that its
    # relative #r paths resolve), after a hidden header that references the built assemblies.
    n=0
    while IFS= read -r -d '' block; do
        n=$((n + 1))
        script=".readme-block-$n.$$.fsx"
        {
            echo '#r "SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"'
            echo '#r "SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"'
            printf '%s' "$block"
        } >"$script"
        if dotnet fsi "$script" >/dev/null 2>"${TMPDIR:-/tmp}/docs-fsi.$$" \
            && ! grep -q 'error FS[0-9]' "${TMPDIR:-/tmp}/docs-fsi.$$"; then
            echo "docs: README.md's F# block $n runs"
        else
            echo "docs: README.md's F# block $n FAILED:"
            cat "${TMPDIR:-/tmp}/docs-fsi.$$"
            failed=1
        fi
        rm -f "$script"
    done < <(awk '/^```fsharp[ \t]*$/ { inside = 1; block = ""; next }
                  inside && /^```[ \t]*$/ { inside = 0; printf "%s%c", block, 0; next }
                  inside { block = block $0 "\n" }' README.md)
    for script in docs/*.fsx; do
        start=$(date +%s)
        # A script split into interactions by ";;" can report a syntax error in one and still exit 0:
        # any compiler error counts as a failure.
        if dotnet fsi "$script" >/dev/null 2>"${TMPDIR:-/tmp}/docs-fsi.$$" \
            && ! grep -q 'error FS[0-9]' "${TMPDIR:-/tmp}/docs-fsi.$$"; then
            echo "docs: $script runs, every claim checked ($(( $(date +%s) - start )) s)"
        else
            echo "docs: $script FAILED ($(( $(date +%s) - start )) s):"
            cat "${TMPDIR:-/tmp}/docs-fsi.$$"
            failed=1
        fi
    done
    rm -f "${TMPDIR:-/tmp}/docs-fsi.$$"
fi
exit "$failed"
