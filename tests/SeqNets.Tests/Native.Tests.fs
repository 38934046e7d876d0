/// Loading libtorch: the ELF version tables, the one-flag fix, and what a user sees when
/// loading fails.
module SeqNets.Tests.NativeTests

open System
open System.IO
open System.Diagnostics
open Expecto
open SeqNets

let private anchor = "_ZSt21ios_base_library_initv"

/// The untouched libLibTorchSharp.so in the NuGet package folder (read, never written).
let private pristine () =
    let root =
        match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
        | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
        | p -> p
    let v = typeof<TorchSharp.torch.Tensor>.Assembly.GetName().Version
    Path.Combine(root, "torchsharp", $"{v.Major}.{v.Minor}.{v.Build}", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")

let private withCopy (f: string -> unit) =
    let dir = Directory.CreateTempSubdirectory "seqnets-native-"
    try
        let copy = Path.Combine(dir.FullName, "libLibTorchSharp.so")
        File.Copy(pristine (), copy)
        f copy
    finally
        dir.Delete true

/// Every version the pristine library needs, as if the system defined all but `lacking`.
let private providesAllBut (library: string) (lacking: string list) =
    let all = Elf.versionNeeds library |> List.map (fun n -> n.File, n.Version)
    fun file -> Some(all |> List.filter (fun (f, v) -> f = file && not (List.contains v lacking)) |> List.map snd |> Set.ofList)

let private runProbe (dir: string) =
    let psi = ProcessStartInfo("dotnet", ResizeArray [ Path.Combine(dir, "SeqNets.Tests.dll"); "--probe-engine" ])
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out.Result + err

/// A copy of this test program's folder: managed files copied (the host resolves a linked
/// entry assembly back to its original folder), native files linked, except libLibTorchSharp.so,
/// which `prepare` writes (or leaves out).
let private withAppCopy (prepare: string -> unit) (check: int * string -> unit) =
    let dir = Directory.CreateTempSubdirectory "seqnets-app-"
    try
        let src = AppContext.BaseDirectory
        for f in Directory.EnumerateFiles(src, "*", SearchOption.AllDirectories) do
            let rel = Path.GetRelativePath(src, f)
            if Path.GetFileName f <> "libLibTorchSharp.so" then
                let target = Path.Combine(dir.FullName, rel)
                Directory.CreateDirectory(Path.GetDirectoryName target) |> ignore
                if rel.StartsWith "runtimes" then File.CreateSymbolicLink(target, f) |> ignore
                else File.Copy(f, target)
        prepare (Path.Combine(dir.FullName, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"))
        check (runProbe dir.FullName)
    finally
        dir.Delete true

[<Tests>]
let tests =
    testList "Native loading" [
        test "the pristine library needs GLIBCXX_3.4.32 only for an unrelocated link anchor" {
            let needs = Elf.versionNeeds (pristine ())
            let n = needs |> List.find (fun n -> n.Version = "GLIBCXX_3.4.32")
            Expect.equal n.File "libstdc++.so.6" "required from libstdc++"
            Expect.equal n.Symbols [ anchor ] "only the ios_base anchor is bound to it"
            Expect.isFalse n.Relocated "no relocation refers to the anchor"
            Expect.equal (n.Flags &&& Elf.WeakFlag) 0us "not weak in the package"
            Expect.isTrue (needs |> List.exists (fun n -> n.Relocated)) "other versions are really used"
        }

        test "the fix flips exactly one flag, only where a version is missing, and is idempotent" {
            withCopy (fun copy ->
                let before = File.ReadAllBytes copy
                let d = Native.diagnoseWith (providesAllBut copy [ "GLIBCXX_3.4.32" ]) copy
                Expect.equal (d.Fixable |> List.map _.Version) [ "GLIBCXX_3.4.32" ] "one fixable version"
                Expect.isEmpty d.Unfixable "nothing unfixable"
                Expect.equal (Native.applyFix d) [ "GLIBCXX_3.4.32" ] "marked weak"
                let after = File.ReadAllBytes copy
                let changed = [ for i in 0 .. before.Length - 1 do if before[i] <> after[i] then yield i ]
                let offset = d.Fixable.Head.FlagsOffset
                Expect.equal changed [ offset ] "only the low byte of vna_flags changed"
                Expect.equal after[offset] 2uy "VER_FLG_WEAK"
                let again = Native.diagnoseWith (providesAllBut copy [ "GLIBCXX_3.4.32" ]) copy
                Expect.isEmpty again.Missing "a weak version is no longer missing"
                Expect.isEmpty (Native.applyFix again) "second fix does nothing"
                Expect.sequenceEqual (File.ReadAllBytes copy) after "file unchanged by the second fix")
        }

        test "a system that has every version leaves the library untouched" {
            withCopy (fun copy ->
                let before = File.ReadAllBytes copy
                let d = Native.diagnoseWith (providesAllBut copy []) copy
                Expect.isEmpty d.Missing "nothing missing"
                Expect.isEmpty (Native.applyFix d) "nothing to fix"
                Expect.sequenceEqual (File.ReadAllBytes copy) before "unchanged")
        }

        test "a missing version that real code uses is reported as unfixable" {
            withCopy (fun copy ->
                let used = Elf.versionNeeds copy |> List.find (fun n -> n.Relocated && n.File = "libstdc++.so.6")
                let d = Native.diagnoseWith (providesAllBut copy [ used.Version ]) copy
                Expect.equal (d.Unfixable |> List.map _.Version) [ used.Version ] "unfixable"
                Expect.isEmpty (Native.applyFix d) "an unfixable version is not touched")
        }

        test "this system's verdict on the pristine library matches its libstdc++" {
            let libstdcxx = Native.systemLibraryPath "libstdc++.so.6"
            Expect.isSome libstdcxx "libstdc++ resolves"
            let has = Elf.definedVersions libstdcxx.Value |> Set.contains "GLIBCXX_3.4.32"
            let d = Native.diagnose (pristine ())
            if has then Expect.isEmpty d.Missing "a GCC 13 libstdc++ needs no fix"
            else Expect.equal (d.Fixable |> List.map _.Version) [ "GLIBCXX_3.4.32" ] "an older libstdc++ needs exactly this fix"
            Expect.isEmpty d.Unfixable "nothing unfixable on this system"
        }

        test "the copy this process loaded needs nothing more" {
            let loaded = Native.candidateLibraries () |> List.head
            Expect.isFalse (Native.isInPackageCache loaded) "the loaded copy is the build output, not the package cache"
            Expect.isEmpty (Native.diagnose loaded).Missing "every version it needs is defined or weak"
        }

        test "a library in the package cache gets a private fixed copy that finds libtorch through links" {
            let dir = Directory.CreateTempSubdirectory "seqnets-cache-"
            try
                let library = pristine ()
                let before = File.ReadAllBytes library
                let d = Native.diagnoseWith (providesAllBut library [ "GLIBCXX_3.4.32" ]) library
                let copy = Native.privateCopyIn dir.FullName d
                Expect.sequenceEqual (File.ReadAllBytes library) before "the package's file is only read"
                Expect.isFalse (Native.isInPackageCache copy) "the copy lives outside the package cache"
                let after = File.ReadAllBytes copy
                let changed = [ for i in 0 .. before.Length - 1 do if before[i] <> after[i] then yield i ]
                Expect.equal changed [ d.Fixable.Head.FlagsOffset ] "the copy differs by the one flag"
                let companion = Path.Combine(Path.GetDirectoryName copy, "libtorch_cpu.so")
                Expect.isTrue (File.Exists companion) "libtorch_cpu.so is reachable next to the copy"
                Expect.isNotNull (FileInfo(companion).LinkTarget) "as a link, not a copy"
                Expect.equal (Native.privateCopyIn dir.FullName d) copy "made once, then reused"
            finally
                dir.Delete true
        }

        test "the package cache is recognised and never written" {
            Expect.isTrue (Native.isInPackageCache (pristine ())) "package folder"
            Expect.isFalse (Native.isInPackageCache (Path.Combine(Path.GetTempPath(), "x", "libLibTorchSharp.so"))) "temp folder"
        }

        testSequenced <| testList "fresh processes" [
            test "a fresh build output with the pristine library loads after the fix" {
                withAppCopy (fun target -> File.Copy(pristine (), target)) (fun (code, output) ->
                    Expect.equal code 0 $"probe exit code; output: {output}"
                    Expect.stringContains output "engine loaded" "loaded")
            }

            test "a missing library is named in one clear error" {
                withAppCopy ignore (fun (code, output) ->
                    Expect.equal code 3 $"probe exit code; output: {output}"
                    Expect.stringContains output "libLibTorchSharp.so was not found" "names the missing file"
                    Expect.isFalse (output.Contains "doesn't contain a reference") "not TorchSharp's misleading text")
            }

            test "a library needing a version that real code uses names the version" {
                withAppCopy
                    (fun target ->
                        File.Copy(pristine (), target)
                        // Rename a really used version (same length) so the system lacks it.
                        let used = Elf.versionNeeds target |> List.find (fun n -> n.Relocated && n.Version = "GLIBCXX_3.4.21")
                        let bytes = File.ReadAllBytes target
                        let name = Text.Encoding.ASCII.GetBytes "GLIBCXX_3.4.21\000"
                        let fake = Text.Encoding.ASCII.GetBytes "GLIBCXX_9.4.21\000"
                        let at = [ 0 .. bytes.Length - name.Length ] |> List.find (fun i -> Seq.forall2 (=) name (ArraySegment(bytes, i, name.Length)))
                        fake.CopyTo(bytes, at)
                        File.WriteAllBytes(target, bytes)
                        Expect.isNonEmpty used.Symbols "the renamed version binds symbols")
                    (fun (code, output) ->
                        Expect.equal code 3 $"probe exit code; output: {output}"
                        Expect.stringContains output "GLIBCXX_9.4.21" "names the missing version"
                        Expect.stringContains output "libstdc++.so.6" "names the library")
            }
        ]
    ]
