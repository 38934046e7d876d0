/// Loading libtorch. TorchSharp's Linux build of libLibTorchSharp.so declares a dependency on
/// GLIBCXX_3.4.32 (GCC 13's libstdc++) although the only symbol bound to that version,
/// `_ZSt21ios_base_library_initv`, is a link anchor that nothing relocates against. On systems
/// whose libstdc++ stops at 3.4.30/3.4.31 (Debian 12, Ubuntu 22.04) the library refuses to load.
/// Marking such an unused version requirement weak (VER_FLG_WEAK in `.gnu.version_r`) lets the
/// dynamic loader accept it. This module reads ELF version tables, decides whether that fix is
/// needed, applies it to the copy of the library the process will load, and turns any remaining
/// load failure into one exception that names the real cause.
namespace SeqNets

open System
open System.IO
open System.Runtime.InteropServices
open System.Text

/// Raised when the native tensor engine (libtorch through TorchSharp) cannot be loaded.
type EngineLoadException(message: string, inner: exn) =
    inherit Exception(message, inner)
    new(message: string) = EngineLoadException(message, null)

/// One version requirement (`Vernaux`) of an ELF shared object.
type VersionNeed =
    { /// The library the version is required from, e.g. `libstdc++.so.6`.
      File: string
      /// The version name, e.g. `GLIBCXX_3.4.32`.
      Version: string
      /// The raw `vna_flags` value; bit 2 is VER_FLG_WEAK.
      Flags: uint16
      /// File offset of the `vna_flags` field.
      FlagsOffset: int
      /// The symbol-version index (`vna_other`) that symbols use to refer to this requirement.
      Index: uint16
      /// Dynamic symbols bound to this version.
      Symbols: string list
      /// Whether any dynamic relocation refers to one of those symbols.
      Relocated: bool }

/// Minimal reader and patcher for the ELF64 little-endian symbol-version tables.
[<RequireQualifiedAccess>]
module Elf =
    let private SHT_RELA = 4u
    let private SHT_DYNSYM = 11u
    let private SHT_REL = 9u
    let private SHT_GNU_VERDEF = 0x6ffffffdu
    let private SHT_GNU_VERNEED = 0x6ffffffeu
    let private SHT_GNU_VERSYM = 0x6fffffffu

    /// VER_FLG_WEAK: a missing version is a warning, not an error.
    [<Literal>]
    let WeakFlag = 2us

    type private Section =
        { Type: uint32; Offset: int; Size: int; Link: int; Info: int; EntSize: int }

    let private u16 (b: byte[]) o = BitConverter.ToUInt16(b, o)
    let private u32 (b: byte[]) o = BitConverter.ToUInt32(b, o)
    let private u64 (b: byte[]) o = BitConverter.ToUInt64(b, o)

    let private cstring (b: byte[]) o =
        let mutable e = o
        while e < b.Length && b[e] <> 0uy do e <- e + 1
        Encoding.ASCII.GetString(b, o, e - o)

    let private sections (path: string) (b: byte[]) =
        if b.Length < 64 || b[0] <> 0x7fuy || b[1] <> byte 'E' || b[2] <> byte 'L' || b[3] <> byte 'F' then
            invalidArg "path" $"Expected an ELF shared object, but '{path}' does not start with the ELF magic bytes."
        if b[4] <> 2uy || b[5] <> 1uy then
            invalidArg "path" $"Expected a 64-bit little-endian ELF file, but '{path}' has class {b[4]} and data encoding {b[5]}."
        let shoff = int (u64 b 0x28)
        let shentsize = int (u16 b 0x3A)
        let shnum = int (u16 b 0x3C)
        if shoff <= 0 || shoff + shnum * shentsize > b.Length then
            invalidArg "path" $"The section header table of '{path}' lies outside the file (truncated?)."
        Array.init shnum (fun i ->
            let o = shoff + i * shentsize
            { Type = u32 b (o + 4)
              Offset = int (u64 b (o + 0x18))
              Size = int (u64 b (o + 0x20))
              Link = int (u32 b (o + 0x28))
              Info = int (u32 b (o + 0x2C))
              EntSize = int (u64 b (o + 0x38)) })

    /// The version names an ELF shared object defines (`.gnu.version_d`), e.g. every `GLIBCXX_*`
    /// of a libstdc++.
    let definedVersions (path: string) : Set<string> =
        let b = File.ReadAllBytes path
        let secs = sections path b
        secs
        |> Array.filter (fun s -> s.Type = SHT_GNU_VERDEF)
        |> Array.collect (fun s ->
            let strtab = secs[s.Link].Offset
            let mutable o = s.Offset
            [| for _ in 1 .. s.Info do
                   let cnt = int (u16 b (o + 6))
                   let aux = int (u32 b (o + 12))
                   let next = int (u32 b (o + 16))
                   let mutable a = o + aux
                   for _ in 1 .. cnt do
                       yield cstring b (strtab + int (u32 b a))
                       a <- a + int (u32 b (a + 4))
                   o <- o + next |])
        |> Set.ofArray

    /// Every version requirement of an ELF shared object, with the dynamic symbols bound to it
    /// and whether any relocation refers to them.
    let versionNeeds (path: string) : VersionNeed list =
        let b = File.ReadAllBytes path
        let secs = sections path b
        let dynsymIndex = secs |> Array.tryFindIndex (fun s -> s.Type = SHT_DYNSYM)
        let versym = secs |> Array.tryFind (fun s -> s.Type = SHT_GNU_VERSYM)
        let symbolsByVersion, relocatedSymbols =
            match dynsymIndex, versym with
            | Some di, Some vs ->
                let dynsym = secs[di]
                let strtab = secs[dynsym.Link].Offset
                let count = dynsym.Size / 24
                let byVersion =
                    [ for i in 0 .. count - 1 ->
                          let ver = u16 b (vs.Offset + 2 * i) &&& 0x7fffus
                          ver, (i, cstring b (strtab + int (u32 b (dynsym.Offset + 24 * i)))) ]
                    |> List.groupBy fst
                    |> List.map (fun (v, xs) -> v, List.map snd xs)
                    |> Map.ofList
                let relocated =
                    secs
                    |> Array.filter (fun s -> (s.Type = SHT_RELA || s.Type = SHT_REL) && s.Link = di)
                    |> Array.collect (fun s ->
                        let ent = if s.EntSize > 0 then s.EntSize elif s.Type = SHT_RELA then 24 else 16
                        Array.init (s.Size / ent) (fun k -> int (u64 b (s.Offset + k * ent + 8) >>> 32)))
                    |> Set.ofArray
                byVersion, relocated
            | _ -> Map.empty, Set.empty
        secs
        |> Array.filter (fun s -> s.Type = SHT_GNU_VERNEED)
        |> Array.toList
        |> List.collect (fun s ->
            let strtab = secs[s.Link].Offset
            let mutable o = s.Offset
            [ for _ in 1 .. s.Info do
                  let cnt = int (u16 b (o + 2))
                  let file = cstring b (strtab + int (u32 b (o + 4)))
                  let aux = int (u32 b (o + 8))
                  let next = int (u32 b (o + 12))
                  let mutable a = o + aux
                  for _ in 1 .. cnt do
                      let index = u16 b (a + 6)
                      let syms = symbolsByVersion |> Map.tryFind index |> Option.defaultValue []
                      yield
                          { File = file
                            Version = cstring b (strtab + int (u32 b (a + 8)))
                            Flags = u16 b (a + 4)
                            FlagsOffset = a + 4
                            Index = index
                            Symbols = List.map snd syms
                            Relocated = syms |> List.exists (fun (i, _) -> relocatedSymbols.Contains i) }
                      a <- a + int (u32 b (a + 12))
                  o <- o + next ])

/// What the loader found out about one copy of libLibTorchSharp.so on this system.
type NativeDiagnosis =
    { /// The library that was examined.
      Library: string
      /// Required versions that the system libraries do not define and that are not weak yet.
      Missing: VersionNeed list }
    /// Missing versions that only unrelocated link anchors use: safe to mark weak.
    member d.Fixable = d.Missing |> List.filter (fun n -> not n.Relocated)
    /// Missing versions that real code depends on: no patch can help.
    member d.Unfixable = d.Missing |> List.filter (fun n -> n.Relocated)

/// P/Invoke declarations for SignalShield.
module internal SignalMaskInterop =
    /// int pthread_sigmask(int how, const sigset_t *set, sigset_t *oldset); glibc's sigset_t is
    /// 1024 bits (16 uint64 words), of which the kernel reads the first 64.
    [<DllImport("libc", EntryPoint = "pthread_sigmask")>]
    extern int pthread_sigmask(int how, uint64[] set, uint64[] oldset)

/// Per-thread state of SignalShield: nesting depth and the mask to restore.
type internal ShieldState =
    [<ThreadStatic; DefaultValue>]
    static val mutable private depth: int
    [<ThreadStatic; DefaultValue>]
    static val mutable private saved: uint64[]
    [<ThreadStatic; DefaultValue>]
    static val mutable private warmed: bool
    static member Depth with get () = ShieldState.depth and set v = ShieldState.depth <- v
    static member Saved with get () = ShieldState.saved and set v = ShieldState.saved <- v
    /// Whether libtorch's worker threads for this thread were started inside a shield.
    static member Warmed with get () = ShieldState.warmed and set v = ShieldState.warmed <- v

/// One use of SignalShield.enter: left once, on the thread that entered it.
[<Sealed>]
type internal ShieldScope(thread: int, leave: unit -> unit) =
    let mutable left = false
    interface IDisposable with
        member _.Dispose() =
            if not left then
                if Environment.CurrentManagedThreadId <> thread then
                    raise (InvalidOperationException(
                        "A SignalShield scope must be left on the thread that entered it (signal masks belong to threads)."))
                left <- true
                leave ()

/// Keeps asynchronous signals off the threads that run libtorch's kernels.
///
/// The float32 GEMM kernels that oneDNN generates at run time for AVX2 and AVX-512 (used by
/// libtorch's fused RNN kernels, among others) point the stack pointer into a heap workspace while
/// they run. A signal handled on such a thread at that moment gets its frame written by the
/// kernel onto the heap, and the process later aborts in free() ("corrupted size vs. prev_size")
/// or segfaults. .NET handles SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGCONT and SIGWINCH, so a Ctrl+C
/// during training was enough (oneDNN issue 4845, fixed upstream after the libtorch 2.10 that
/// TorchSharp 0.107 ships). The shield blocks these signals on the calling thread while SeqNets
/// computes; libtorch's worker threads, which Native.ensure starts inside a shield for each
/// calling thread, inherit the block.
/// The process still receives every signal: the kernel hands a process-directed signal to a thread
/// that does not block it (one of the runtime's own), so Console.CancelKeyPress and
/// PosixSignalRegistration work as before. On the way out the calling thread's mask is restored,
/// so processes it starts later do not inherit a blocked mask. Does nothing on other systems.
[<RequireQualifiedAccess>]
module SignalShield =
    /// The asynchronous signals that are blocked (Linux numbering): SIGHUP, SIGINT, SIGQUIT,
    /// SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCHLD, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG,
    /// SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR. Synchronous signals (SIGSEGV,
    /// SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGPIPE, SIGSYS) and the real-time signals the
    /// runtime uses to suspend threads are left alone.
    let signals = [ 1; 2; 3; 10; 12; 14; 15; 17; 18; 20; 21; 22; 23; 24; 25; 26; 27; 28; 29; 30 ]

    let private SIG_BLOCK = 0
    let private SIG_SETMASK = 2
    let private words = 16

    let private blockSet =
        let set = Array.zeroCreate<uint64> words
        for s in signals do set[(s - 1) / 64] <- set[(s - 1) / 64] ||| (1UL <<< ((s - 1) % 64))
        set

    let private active = OperatingSystem.IsLinux()

    /// Whether the calling thread currently blocks `signal` (1–64, Linux numbering; false on
    /// other systems).
    let isBlocked (signal: int) : bool =
        if signal < 1 || signal > 64 then
            raise (ArgumentOutOfRangeException(nameof signal, signal, $"signal: expected a signal number from 1 to 64, but got {signal}."))
        if not active then false
        else
            let current = Array.zeroCreate<uint64> words
            if SignalMaskInterop.pthread_sigmask(SIG_BLOCK, null, current) <> 0 then false
            else current[(signal - 1) / 64] &&& (1UL <<< ((signal - 1) % 64)) <> 0UL

    let private leave () =
        ShieldState.Depth <- ShieldState.Depth - 1
        if ShieldState.Depth = 0 && not (isNull ShieldState.Saved) then
            SignalMaskInterop.pthread_sigmask(SIG_SETMASK, ShieldState.Saved, null) |> ignore

    let private inactive = { new IDisposable with member _.Dispose() = () }

    /// Blocks the asynchronous signals on the calling thread until the result is disposed, on the
    /// same thread (disposing twice does nothing). Nested uses only count; the outermost restores
    /// the thread's mask. `use _ = SignalShield.enter ()` around code that runs libtorch kernels,
    /// including a backward pass you run yourself on SeqNets' outputs.
    let enter () : IDisposable =
        if not active then inactive
        else
            if ShieldState.Depth = 0 then
                if isNull ShieldState.Saved then ShieldState.Saved <- Array.zeroCreate<uint64> words
                SignalMaskInterop.pthread_sigmask(SIG_BLOCK, blockSet, ShieldState.Saved) |> ignore
            ShieldState.Depth <- ShieldState.Depth + 1
            new ShieldScope(Environment.CurrentManagedThreadId, leave)

/// Locating, checking, fixing and loading libtorch for TorchSharp.
[<RequireQualifiedAccess>]
module Native =
    let private libName = "libLibTorchSharp.so"

    /// The path the dynamic loader resolves for a system library such as `libstdc++.so.6`,
    /// found by loading it and reading `/proc/self/maps`.
    let systemLibraryPath (soname: string) : string option =
        let mutable handle = IntPtr.Zero
        if NativeLibrary.TryLoad(soname, &handle) then
            try
                File.ReadLines "/proc/self/maps"
                |> Seq.choose (fun line ->
                    let i = line.IndexOf '/'
                    if i >= 0 && Path.GetFileName(line.Substring i) = soname then Some(line.Substring i) else None)
                |> Seq.tryHead
                |> Option.orElseWith (fun () ->
                    // The loaded file may be named by its real version (libstdc++.so.6.0.30).
                    File.ReadLines "/proc/self/maps"
                    |> Seq.choose (fun line ->
                        let i = line.IndexOf '/'
                        if i >= 0 && Path.GetFileName(line.Substring i).StartsWith(soname + ".") then Some(line.Substring i) else None)
                    |> Seq.tryHead)
            finally
                NativeLibrary.Free handle
        else
            None

    /// Examines a copy of libLibTorchSharp.so against the versions that `provides` says each
    /// needed system library defines (None: the library cannot be found, so it is not judged).
    let diagnoseWith (provides: string -> Set<string> option) (library: string) : NativeDiagnosis =
        let missing =
            Elf.versionNeeds library
            |> List.filter (fun n ->
                n.Flags &&& Elf.WeakFlag = 0us
                && (match provides n.File with
                    | Some defined -> not (defined.Contains n.Version)
                    | None -> false))
        { Library = library; Missing = missing }

    let private systemProvides =
        let cache = Collections.Concurrent.ConcurrentDictionary<string, Set<string> option>()
        fun (file: string) ->
            cache.GetOrAdd(file, fun f -> systemLibraryPath f |> Option.map Elf.definedVersions)

    /// Examines a copy of libLibTorchSharp.so against this system's libraries.
    let diagnose (library: string) = diagnoseWith systemProvides library

    /// Marks the fixable missing versions of `diagnosis` weak, writing a new file next to the
    /// library and renaming it over the original so that a reader never sees a half-written file.
    /// Returns the version names that were marked. Does nothing when nothing is fixable.
    let applyFix (diagnosis: NativeDiagnosis) : string list =
        match diagnosis.Fixable with
        | [] -> []
        | fixable ->
            let bytes = File.ReadAllBytes diagnosis.Library
            for n in fixable do
                let flags = BitConverter.ToUInt16(bytes, n.FlagsOffset) ||| Elf.WeakFlag
                BitConverter.GetBytes(flags).CopyTo(bytes, n.FlagsOffset)
            let temp = $"{diagnosis.Library}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp"
            try
                File.WriteAllBytes(temp, bytes)
                if not (OperatingSystem.IsWindows()) then
                    File.SetUnixFileMode(temp, File.GetUnixFileMode diagnosis.Library)
                File.Move(temp, diagnosis.Library, true)
            finally
                if File.Exists temp then File.Delete temp
            fixable |> List.map (fun n -> n.Version)

    let private nugetRoots () =
        [ Environment.GetEnvironmentVariable "NUGET_PACKAGES"
          Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages") ]
        |> List.filter (String.IsNullOrEmpty >> not)
        |> List.map (fun p -> Path.GetFullPath(p).TrimEnd('/') + "/")

    /// Whether a path lies inside a NuGet package folder, which must never be modified.
    let isInPackageCache (path: string) =
        let full = Path.GetFullPath path
        let inRoot = nugetRoots () |> List.exists (fun r -> full.StartsWith(r, StringComparison.Ordinal))
        let rec hasMetadata (dir: DirectoryInfo) depth =
            not (isNull dir) && depth < 6
            && (File.Exists(Path.Combine(dir.FullName, ".nupkg.metadata")) || hasMetadata dir.Parent (depth + 1))
        inRoot || hasMetadata (FileInfo(full).Directory) 0

    /// The folders the runtime probes for native libraries, then the folders of the loaded
    /// SeqNets and TorchSharp assemblies (an F# script that references built assemblies has no
    /// deps.json, so only the latter know where the build put the native files).
    let candidateDirectories () : string list =
        let probe =
            match AppContext.GetData "NATIVE_DLL_SEARCH_DIRECTORIES" with
            | :? string as s -> s.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries) |> Array.toList
            | _ -> []
        let assemblyDirs =
            [ typeof<EngineLoadException>.Assembly.Location
              typeof<TorchSharp.torch.Tensor>.Assembly.Location ]
            |> List.filter (String.IsNullOrEmpty >> not)
            |> List.map Path.GetDirectoryName
        let rid = "runtimes/linux-x64/native"
        // In a NuGet package the native files sit at ../../runtimes/… from lib/<framework>/.
        probe @ (assemblyDirs |> List.collect (fun d -> [ d; Path.Combine(d, rid); Path.Combine(d, "..", "..", rid) ]))
        @ [ Path.Combine(AppContext.BaseDirectory, rid) ]
        |> List.map (fun d -> Path.GetFullPath(d).TrimEnd('/'))
        |> List.distinct

    /// Copies of libLibTorchSharp.so the process could load, in the order TorchSharp would try them.
    let candidateLibraries () =
        candidateDirectories ()
        |> List.map (fun d -> Path.Combine(d, libName))
        |> List.filter File.Exists

    let private describe (d: NativeDiagnosis) =
        d.Missing
        |> List.map (fun n ->
            let uses = String.Join(", ", n.Symbols |> List.truncate 3)
            $"{n.File} lacks version {n.Version} (needed by {uses})")
        |> String.concat "; "

    /// The folder under which private fixed copies live: $SEQNETS_NATIVE_CACHE, else
    /// $XDG_CACHE_HOME/seqnets/native, else ~/.cache/seqnets/native.
    let cacheRoot () =
        match Environment.GetEnvironmentVariable "SEQNETS_NATIVE_CACHE" with
        | null | "" ->
            let xdg = Environment.GetEnvironmentVariable "XDG_CACHE_HOME"
            let baseDir =
                if String.IsNullOrEmpty xdg then Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".cache")
                else xdg
            Path.Combine(baseDir, "seqnets", "native")
        | p -> p

    /// Folders holding libtorch's own libraries (libtorch_cpu.so and its companions): the
    /// probed folders first, then the libtorch-cpu-linux-x64 package that TorchSharp expects.
    let libtorchDirectories () =
        let probed = candidateDirectories () |> List.filter (fun d -> File.Exists(Path.Combine(d, "libtorch_cpu.so")))
        let fromPackages =
            let version =
                let f = typeof<TorchSharp.torch>.GetField("libtorchPackageVersion", Reflection.BindingFlags.Static ||| Reflection.BindingFlags.NonPublic ||| Reflection.BindingFlags.Public)
                if isNull f then None else Some(string (f.GetValue null))
            nugetRoots ()
            |> List.collect (fun root ->
                let pkg = Path.Combine(root, "libtorch-cpu-linux-x64")
                if not (Directory.Exists pkg) then []
                else
                    Directory.GetDirectories pkg
                    // TorchSharp names 2.10.0.0 what the package folder calls 2.10.0.
                    |> Array.filter (fun d -> version.IsNone || (version.Value + ".").StartsWith(Path.GetFileName d + "."))
                    |> Array.sortDescending
                    |> Array.map (fun d -> Path.Combine(d, "runtimes", "linux-x64", "native"))
                    |> Array.filter (fun d -> File.Exists(Path.Combine(d, "libtorch_cpu.so")))
                    |> Array.toList)
        (probed @ fromPackages) |> List.distinct

    /// A fixed copy of `library` in a private folder of the cache root, next to links to every
    /// other native library of its folder and of libtorch's, so that the copy finds its
    /// companions through its $ORIGIN run path. The original is only read. Made once per
    /// library (keyed by its path, size and time) and reused; built in a temporary folder and
    /// renamed into place, so that a concurrent process never sees it half made.
    let privateCopyIn (root: string) (d: NativeDiagnosis) : string =
        let info = FileInfo d.Library
        let key =
            let text = $"{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}"
            Convert.ToHexString(Security.Cryptography.SHA256.HashData(Text.Encoding.UTF8.GetBytes text)).Substring(0, 16).ToLowerInvariant()
        let dir = Path.Combine(root, key)
        let target = Path.Combine(dir, libName)
        if not (File.Exists target) then
            Directory.CreateDirectory root |> ignore
            let temp = Path.Combine(root, $".{key}.{Environment.ProcessId}.{Guid.NewGuid():N}")
            Directory.CreateDirectory temp |> ignore
            try
                for source in info.DirectoryName :: libtorchDirectories () do
                    for f in Directory.GetFiles source do
                        let name = Path.GetFileName f
                        let link = Path.Combine(temp, name)
                        if name <> libName && name.Contains ".so" && not (File.Exists link) then
                            File.CreateSymbolicLink(link, f) |> ignore
                File.Copy(d.Library, Path.Combine(temp, libName))
                applyFix { d with Library = Path.Combine(temp, libName) } |> ignore
                try Directory.Move(temp, dir)
                with :? IOException when File.Exists target -> () // another process made it first
            finally
                if Directory.Exists temp then Directory.Delete(temp, true)
        target

    /// privateCopyIn under the cache root.
    let privateCopy (d: NativeDiagnosis) = privateCopyIn (cacheRoot ()) d

    /// Makes `library` loadable and returns the path to load: the library itself when it needs
    /// nothing or could be fixed in place, else a private fixed copy.
    let private prepare (library: string) : string =
        let d = diagnose library
        match d.Unfixable with
        | _ :: _ ->
            raise (EngineLoadException(
                $"libtorch cannot run on this system: {describe d} in '{library}'. Those symbols are used by "
                + "real code, so only a newer C++ runtime (GCC 13's libstdc++ or later) can satisfy them."))
        | [] when d.Fixable.IsEmpty -> library
        | [] ->
            let copy () =
                try privateCopy d
                with e ->
                    raise (EngineLoadException(
                        $"'{library}' needs a one-flag fix to load on this system ({describe d}); it cannot be fixed in place "
                        + $"and a private copy under '{cacheRoot ()}' could not be made: {e.Message}", e))
            if isInPackageCache library then copy ()
            else
                try
                    applyFix d |> ignore
                    library
                with
                | :? UnauthorizedAccessException
                | :? IOException -> copy ()

    let private load () =
        use _ = SignalShield.enter ()
        if OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture = Architecture.X64 then
            match candidateLibraries () with
            | [] ->
                let dirs = String.Join(", ", candidateDirectories ())
                raise (EngineLoadException(
                    $"{libName} was not found in any of: {dirs}. Add a PackageReference to TorchSharp-cpu "
                    + "(SeqNets.Core brings it) and build the project so that the native files are copied."))
            | found :: _ ->
                let library = prepare found
                let mutable handle = IntPtr.Zero
                let mutable error = ""
                try
                    handle <- NativeLibrary.Load library
                with e ->
                    error <- e.Message
                if handle = IntPtr.Zero then
                    let d = diagnose library
                    let cause = if d.Missing.IsEmpty then error else describe d
                    raise (EngineLoadException($"libtorch could not be loaded from '{library}': {cause}"))
        try
            TorchSharp.torch.InitializeDeviceType TorchSharp.DeviceType.CPU |> ignore
        with e ->
            let inner = if isNull e.InnerException then e else e.InnerException
            let details =
                candidateLibraries ()
                |> List.tryHead
                |> Option.map (fun l ->
                    let d = diagnose l
                    if d.Missing.IsEmpty then $"'{l}' looks loadable; TorchSharp said: {inner.Message}"
                    else $"'{l}': {describe d}")
                |> Option.defaultValue $"{libName} was not found next to the application or TorchSharp.dll."
            raise (EngineLoadException($"TorchSharp could not initialise libtorch. {details}", e))

    let private loaded = lazy (load ())

    /// libtorch (through OpenMP) keeps a pool of worker threads per calling thread, started at that
    /// thread's first parallel kernel; the workers keep the signal mask they were started with.
    /// Start them inside a shield, once per thread, so that they never take asynchronous signals.
    let private warmThread () =
        if not ShieldState.Warmed then
            ShieldState.Warmed <- true
            use _ = SignalShield.enter ()
            let threads = int64 (max 1 (TorchSharp.torch.get_num_threads ()))
            use warm = TorchSharp.torch.ones(threads * 65536L)
            warm.mul_ warm |> ignore

    /// Makes sure libtorch is loadable and loaded (once per process), and that this thread's
    /// libtorch workers block asynchronous signals (once per thread; see SignalShield). Every
    /// SeqNets entry point calls it. Raises EngineLoadException naming the real cause otherwise.
    let ensure () =
        loaded.Force()
        warmThread ()

