/// Sizes in 64-bit with overflow checks, and memory estimates checked against what the machine has
/// before anything is allocated: a model too large for the machine is an error naming what it
/// needed and what there was, not the kernel's OOM killer.
///
///   available = min(MemAvailable, cgroup limit − cgroup usage)     (Linux; elsewhere the runtime's view)
namespace SeqNets

open System
open System.IO
open TorchSharp

[<RequireQualifiedAccess>]
module Memory =
    /// a · b for sizes; ArgumentException naming what when the product does not fit in 64 bits.
    [<CompiledName("Multiply")>]
    let multiply (what: string) (a: int64) (b: int64) : int64 =
        if a < 0L || b < 0L then Check.fail what $"{what}: expected non-negative sizes, but got {a} · {b}."
        try Checked.(*) a b
        with :? OverflowException -> Check.fail what $"{what}: {a:N0} · {b:N0} does not fit in a 64-bit size."

    /// a + b for sizes; ArgumentException naming what when the sum does not fit in 64 bits.
    [<CompiledName("Add")>]
    let add (what: string) (a: int64) (b: int64) : int64 =
        if a < 0L || b < 0L then Check.fail what $"{what}: expected non-negative sizes, but got {a} + {b}."
        try Checked.(+) a b
        with :? OverflowException -> Check.fail what $"{what}: {a:N0} + {b:N0} does not fit in a 64-bit size."

    /// The product of a shape's dimensions, checked.
    [<CompiledName("Product")>]
    let product (what: string) (shape: seq<int64>) : int64 = Seq.fold (multiply what) 1L shape

    /// Bytes per value of a dtype (float32 4, float64 8, int64 8, …).
    [<CompiledName("BytesPerValue")>]
    let bytesPerValue (dtype: torch.ScalarType) : int64 =
        match dtype with
        | torch.ScalarType.Float64 | torch.ScalarType.Int64 | torch.ScalarType.ComplexFloat32 -> 8L
        | torch.ScalarType.Float32 | torch.ScalarType.Int32 -> 4L
        | torch.ScalarType.Float16 | torch.ScalarType.BFloat16 | torch.ScalarType.Int16 -> 2L
        | torch.ScalarType.ComplexFloat64 -> 16L
        | _ -> 1L

    /// Bytes of n values of a dtype, checked.
    [<CompiledName("TensorBytes")>]
    let tensorBytes (dtype: torch.ScalarType) (count: int64) : int64 = multiply "tensor size" count (bytesPerValue dtype)

    /// What a model's parameters need while it is built or loaded: θ and one working copy (the
    /// initial draw, or the values read from a file).
    [<CompiledName("ModelBytes")>]
    let modelBytes (dtype: torch.ScalarType) (parameters: int64) : int64 = multiply "model size" 2L (tensorBytes dtype parameters)

    /// What a training run needs beyond the model and the text: θ's gradient and up to two optimizer
    /// moments (Adam's m and v), three more copies of θ, plus what a backward pass keeps for each of
    /// the T · B rows of a batch: valuesPerRow values (the gates, states and outputs of every layer,
    /// the logits, and their gradients).
    [<CompiledName("TrainingBytes")>]
    let trainingBytes (dtype: torch.ScalarType) (parameters: int64) (steps: int) (batch: int) (valuesPerRow: int64) : int64 =
        let optimizer = multiply "training size" 3L (tensorBytes dtype parameters)
        let rows = multiply "training size" (int64 steps) (int64 batch)
        add "training size" optimizer (tensorBytes dtype (multiply "training size" rows valuesPerRow))

    /// Human-readable bytes: 1.5 GiB, 12.0 MiB.
    let internal show (bytes: int64) =
        let units = [| "bytes"; "KiB"; "MiB"; "GiB"; "TiB"; "PiB"; "EiB" |]
        let mutable v, u = float bytes, 0
        while v >= 1024.0 && u < units.Length - 1 do
            v <- v / 1024.0
            u <- u + 1
        if u = 0 then $"{bytes} bytes" else (v.ToString("0.0", Globalization.CultureInfo.InvariantCulture) + " " + units[u])

    let private readInt64 (path: string) =
        try
            match (File.ReadAllText path).Trim() with
            | "max" -> None
            | s ->
                match Int64.TryParse s with
                | true, v -> Some v
                | _ -> None
        with _ -> None

    /// MemAvailable from /proc/meminfo, in bytes.
    let private memAvailable () =
        try
            File.ReadLines "/proc/meminfo"
            |> Seq.tryFind (fun l -> l.StartsWith "MemAvailable:")
            |> Option.bind (fun l ->
                match Int64.TryParse(l.Substring(13).Trim().Split(' ')[0]) with
                | true, kb -> Some(kb * 1024L)
                | _ -> None)
        with _ -> None

    /// The headroom (limit − usage) of this process's cgroup and its ancestors, the smallest; None
    /// when no limit is set or cgroups cannot be read.
    let private cgroupHeadroom () =
        try
            let lines = File.ReadAllLines "/proc/self/cgroup"
            let v2 = lines |> Array.tryPick (fun l -> if l.StartsWith "0::" then Some(l.Substring 3) else None)
            let v1 = lines |> Array.tryPick (fun l -> match l.Split ':' with [| _; c; p |] when c.Split(',') |> Array.contains "memory" -> Some p | _ -> None)
            let candidates =
                match v2, v1 with
                | Some p, _ ->
                    // cgroup v2: memory.max / memory.current in the group and every ancestor.
                    let rec up (p: string) =
                        [ yield Path.Combine("/sys/fs/cgroup", p.TrimStart '/')
                          if p <> "/" && p <> "" then yield! up (match p.LastIndexOf '/' with 0 -> "/" | -1 -> "/" | i -> p.Substring(0, i)) ]
                    [ for d in up p -> Path.Combine(d, "memory.max"), Path.Combine(d, "memory.current") ]
                | None, Some p ->
                    let d = Path.Combine("/sys/fs/cgroup/memory", p.TrimStart '/')
                    [ Path.Combine(d, "memory.limit_in_bytes"), Path.Combine(d, "memory.usage_in_bytes")
                      "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes" ]
                | None, None -> []
            candidates
            |> List.choose (fun (limit, usage) ->
                match readInt64 limit, readInt64 usage with
                // cgroup v1 writes "no limit" as a huge number.
                | Some l, Some u when l < (1L <<< 60) -> Some(max 0L (l - u))
                | _ -> None)
            |> function [] -> None | hs -> Some(List.min hs)
        with _ -> None

    /// SEQNETS_MEMORY_LIMIT, when set: a number of bytes (suffixes K, M, G, T in powers of 1024)
    /// that SeqNets' estimates may not exceed, whatever the machine has.
    let private limit () =
        match Environment.GetEnvironmentVariable "SEQNETS_MEMORY_LIMIT" with
        | null | "" -> None
        | s ->
            let s = s.Trim().ToUpperInvariant()
            let scale, digits =
                match s[s.Length - 1] with
                | 'K' -> 1L <<< 10, s[.. s.Length - 2]
                | 'M' -> 1L <<< 20, s[.. s.Length - 2]
                | 'G' -> 1L <<< 30, s[.. s.Length - 2]
                | 'T' -> 1L <<< 40, s[.. s.Length - 2]
                | _ -> 1L, s
            match Int64.TryParse digits with
            | true, v when v >= 0L -> Some(try Checked.(*) v scale with :? OverflowException -> Int64.MaxValue)
            | _ -> None

    /// Bytes this process can still allocate: the smaller of MemAvailable and its cgroup's headroom
    /// on Linux, elsewhere what the runtime reports as available less what the process uses; and at
    /// most SEQNETS_MEMORY_LIMIT when that is set. None when nothing can be read.
    [<CompiledName("Available")>]
    let available () : int64 option =
        let machine =
            match [ memAvailable (); cgroupHeadroom () ] |> List.choose id with
            | [] ->
                let info = GC.GetGCMemoryInfo()
                if info.TotalAvailableMemoryBytes > 0L then
                    Some(max 0L (info.TotalAvailableMemoryBytes - Environment.WorkingSet))
                else None
            | xs -> Some(List.min xs)
        match machine, limit () with
        | Some m, Some l -> Some(min m l)
        | m, None -> m
        | None, l -> l

    /// The check of `check`, against a given amount (tests).
    let internal checkAgainst (available: int64 option) (what: string) (bytes: int64) =
        match available with
        | Some a when bytes > a ->
            raise (InsufficientMemoryException(
                $"{what}: needs about {show bytes}, but this machine has {show a} available "
                + "(MemAvailable, the cgroup's limit less its usage, or SEQNETS_MEMORY_LIMIT); use smaller sizes."))
        | _ -> ()

    /// Raises InsufficientMemoryException naming what, the bytes it needs and the bytes available,
    /// when bytes exceed what the machine has (Memory.available); does nothing when that is unknown.
    /// Call it before allocating: a process that asks for more than there is is killed by the
    /// kernel, without a word.
    [<CompiledName("Check")>]
    let check (what: string) (bytes: int64) : unit = checkAgainst (available ()) what bytes
