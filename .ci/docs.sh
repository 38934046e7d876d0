#!/usr/bin/env bash
# Documentation shows only code that CI runs.
# Pages written as F# scripts: docs/X.fsx is the source, run by CI, and docs/X.md is the page made
# from it (prose from the (** … *) comments, the code between them as ```fsharp blocks). For every
# docs/*.fsx with a docs/*.md beside it this checks that
#   - every ```fsharp block of the page appears verbatim in the script, and
#   - the page is the one the script makes now, so the prose cannot drift either.
# Other pages with code from a compiled program: every ```csharp block of docs/api.md appears
# verbatim in the C# program that .ci/packages.sh builds and runs.
# `bash .ci/docs.sh --write` remakes the pages from the scripts.
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
            /^\(\*\*[ \t]*$/ && !prose { flush(); prose = 1; next }
            /^\*\)[ \t]*$/ && prose { prose = 0; next }
            prose { print; next }
            { code[++n] = $0 }
            END { flush() }
        ' "$1"
    } | cat -s
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

write=0
[ "${1:-}" = "--write" ] && write=1
failed=0
for script in docs/*.fsx; do
    md="${script%.fsx}.md"
    if [ "$write" -eq 1 ]; then
        page "$script" >"$md"
        echo "wrote $md"
        continue
    fi
    [ -f "$md" ] || continue
    if ! missing_blocks "$md" "$script" fsharp; then
        echo "docs: $md shows F# code that $script does not run"
        failed=1
    fi
    if ! diff -u "$md" <(page "$script") >/dev/null; then
        echo "docs: $md is not the page $script makes; run: bash .ci/docs.sh --write"
        diff -u "$md" <(page "$script") | head -n 40
        failed=1
    fi
    [ "$failed" -eq 0 ] && echo "docs: $md matches $script"
done

if [ "$write" -eq 0 ]; then
    if missing_blocks docs/api.md .ci/packages.sh csharp; then
        echo "docs: docs/api.md shows only C# that .ci/packages.sh compiles and runs"
    else
        echo "docs: docs/api.md shows C# that .ci/packages.sh does not compile"
        failed=1
    fi
fi
exit "$failed"
