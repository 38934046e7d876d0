/// Benchmarks of the symbolic derivations and of verification at scale (bench/symbolic.sh runs
/// them; bench/peer_jacobian.py is the PyTorch side). Each mode prints JSON lines:
///   --mode jacobians     derived against hand-derived evaluation of c_t and b_t, every built-in cell
///   --mode sweep         ∂h_T/∂θ of one cell over one sequence: the closed form by one suffix sweep
///                        (structured b_t, and dense hand b_t), the full Bptt.jacobians + recurrence,
///                        and autodiff at T; --dump DIR writes the case for the peer
///   --mode memory        one route (--route sweep | autodiff-at | autodiff-all), its time and peak RSS
///   --mode verify-scale  Verify.identityAt for every built-in cell at the given sizes
module SeqNets.Bench.Symbolic

open System
open System.Diagnostics
open System.IO
open TorchSharp
open SeqNets

let private arg (argv: string[]) name (fallback: string) =
    match Array.tryFindIndex ((=) name) argv with
    | Some i when i + 1 < argv.Length -> argv[i + 1]
    | _ -> fallback

let private json (x: float) = if Double.IsNaN x then "null" else x.ToString("0.######", Globalization.CultureInfo.InvariantCulture)
let private sci (x: float) = x.ToString("0.00e+00", Globalization.CultureInfo.InvariantCulture)

/// Peak and current resident memory of this process, MB (VmHWM, VmRSS).
let private memory () =
    let read key =
        File.ReadAllLines "/proc/self/status"
        |> Array.tryFind (fun l -> l.StartsWith(key + ":"))
        |> Option.map (fun l -> float (l.Substring(key.Length + 1).Trim().Split(' ')[0]) / 1024.0)
        |> Option.defaultValue nan
    read "VmHWM", read "VmRSS"

let private seconds (f: unit -> 'a) =
    let sw = Stopwatch.StartNew()
    let r = f ()
    r, sw.Elapsed.TotalSeconds

let private median (xs: float list) =
    let s = List.sort xs
    let n = s.Length
    if n % 2 = 1 then s[n / 2] else (s[n / 2 - 1] + s[n / 2]) / 2.0

/// The built-in cells with their equations.
let private cellsWithEquations (I: int) (H: int) =
    [ Cells.Elman.create Cells.Tanh I H, Cells.Elman.equations Cells.Tanh I H
      Cells.Elman.create Cells.Relu I H, Cells.Elman.equations Cells.Relu I H
      Cells.Gru.create Cells.Lecture I H, Cells.Gru.equations Cells.Lecture I H
      Cells.Gru.create Cells.PyTorch I H, Cells.Gru.equations Cells.PyTorch I H
      Cells.Lstm.create I H, Cells.Lstm.equations I H
      Cells.MultiplicativeRnn.create I H (H + 1), Cells.MultiplicativeRnn.equations I H (H + 1) ]

let private cellNamed (name: string) (I: int) (H: int) =
    match cellsWithEquations I H |> List.tryFind (fun (c, _) -> c.Name = name) with
    | Some(c, _) -> c
    | None ->
        let known = String.Join(", ", cellsWithEquations I H |> List.map (fun (c, _) -> c.Name))
        failwith $"unknown cell {name}; expected one of {known}"

/// One sequence (B = 1): θ from the cell's initialisation, x standard normal, s_0 normal × 0.5.
let private case (cell: Cell) (T: int) (seed: uint64) =
    use g = new torch.Generator(seed)
    let theta = Cell.initParameters cell torch.float64 g
    let xs = torch.randn([| int64 T; 1L; int64 cell.InputSize |], dtype = torch.float64, generator = g)
    let s0 = torch.randn([| 1L; int64 cell.StateSize |], dtype = torch.float64, generator = g) * 0.5
    theta, xs, s0

let private writeRaw (path: string) (t: Tensor) =
    let a = t.contiguous().to_type(torch.float64).data<float>().ToArray()
    let bytes = Array.zeroCreate<byte> (a.Length * 8)
    Buffer.BlockCopy(a, 0, bytes, 0, bytes.Length)
    File.WriteAllBytes(path, bytes)

/// Derived against hand-derived c_t and b_t: B rows of one step (calls per run), and a whole
/// trajectory of T steps of one sequence (Bptt.jacobians); runs alternated, medians.
let private jacobians (argv: string[]) =
    let I, H = int (arg argv "--input" "16"), int (arg argv "--hidden" "32")
    let B, T = int (arg argv "--batch" "16"), int (arg argv "--steps" "128")
    let repeats, calls = int (arg argv "--repeats" "7"), int (arg argv "--calls" "10")
    for hand, equations in cellsWithEquations I H do
        let derived = Equations.cell equations
        use g = new torch.Generator(3UL)
        let theta = Cell.initParameters hand torch.float64 g
        let x = torch.randn([| int64 B; int64 I |], dtype = torch.float64, generator = g)
        let s = torch.randn([| int64 B; int64 hand.StateSize |], dtype = torch.float64, generator = g)
        let _, xs, s0 = case hand T 4UL
        let states = Recurrence.unroll hand theta xs s0
        let step (c: Cell) () =
            for _ in 1 .. calls do
                use _ = torch.NewDisposeScope()
                c.Jacobians.Value theta x s |> ignore
        let trajectory (c: Cell) () =
            use _ = torch.NewDisposeScope()
            Bptt.jacobians c theta xs states |> ignore
        let measure (f: unit -> unit) = snd (seconds f) * 1000.0
        for c in [ hand; derived ] do step c (); trajectory c () // warm-up
        let runs = [ for _ in 1 .. repeats -> measure (step hand), measure (step derived), measure (trajectory hand), measure (trajectory derived) ]
        let m f = median (runs |> List.map f)
        let hs, ds = m (fun (a, _, _, _) -> a) / float calls, m (fun (_, b, _, _) -> b) / float calls
        let ht, dt = m (fun (_, _, c, _) -> c), m (fun (_, _, _, d) -> d)
        printfn """{"system": "seqnets", "mode": "jacobians", "cell": "%s", "input": %d, "hidden": %d, "batch": %d, "steps": %d, "threads": %d, "repeats": %d, "hand_step_ms": %s, "derived_step_ms": %s, "step_ratio": %s, "hand_trajectory_ms": %s, "derived_trajectory_ms": %s, "trajectory_ratio": %s}"""
            hand.Name I H B T (torch.get_num_threads ()) repeats (json hs) (json ds) (json (ds / hs)) (json ht) (json dt) (json (dt / ht))

/// ∂h_T/∂θ of one cell over one sequence, every route, timed (median of repeats after a warm-up).
let private sweep (argv: string[]) =
    let name = arg argv "--cell" "lstm"
    let I, H, T = int (arg argv "--input" "16"), int (arg argv "--hidden" "32"), int (arg argv "--steps" "128")
    let repeats = int (arg argv "--repeats" "3")
    let cell = cellNamed name I H
    let dense = { cell with StructuredJacobians = None }
    let theta, xs, s0 = case cell T 1UL
    let timed (f: unit -> Tensor) =
        f () |> ignore
        let runs = [ for _ in 1 .. repeats -> seconds (fun () -> use _ = torch.NewDisposeScope() in f () |> ignore) |> snd ]
        median runs, List.min runs
    let structuredRoute () = Bptt.outputAtStep cell theta xs (Recurrence.unroll cell theta xs s0) T
    let denseRoute () = Bptt.outputAtStep dense theta xs (Recurrence.unroll cell theta xs s0) T
    let autodiffRoute () = Bptt.outputByAutodiffAt cell theta xs s0 T
    let structured, denseResult, autodiff = structuredRoute (), denseRoute (), autodiffRoute ()
    let ts, tsBest = timed structuredRoute
    let td, tdBest = timed denseRoute
    let ta, taBest = timed autodiffRoute
    // The full routes (every c_t, b_t, then every a_t) only while b_t for all steps fits in 2^26
    // entries (0.5 GB): for H = 64, T = 256 it alone would be 5.5 GB.
    let tj, tr =
        if int64 T * int64 cell.StateSize * int64 cell.ParameterCount > (1L <<< 26) then nan, nan
        else
            use _ = torch.NewDisposeScope()
            let states = Recurrence.unroll cell theta xs s0
            let j, tj = seconds (fun () -> Bptt.jacobians cell theta xs states)
            let _, tr = seconds (fun () -> Bptt.byRecurrence j)
            tj, tr
    match arg argv "--dump" "" with
    | "" -> ()
    | dir ->
        Directory.CreateDirectory dir |> ignore
        writeRaw (Path.Combine(dir, "theta.bin")) theta
        writeRaw (Path.Combine(dir, "xs.bin")) xs
        writeRaw (Path.Combine(dir, "s0.bin")) s0
        writeRaw (Path.Combine(dir, "dhdtheta.bin")) structured[0L]
    printfn """{"system": "seqnets", "mode": "sweep", "cell": "%s", "input": %d, "hidden": %d, "steps": %d, "parameters": %d, "threads": %d, "sweep_structured_s": %s, "sweep_structured_best_s": %s, "sweep_dense_s": %s, "sweep_dense_best_s": %s, "autodiff_at_s": %s, "autodiff_at_best_s": %s, "jacobians_all_s": %s, "recurrence_all_s": %s, "structured_vs_dense": %s, "structured_vs_autodiff": %s}"""
        name I H T cell.ParameterCount (torch.get_num_threads ()) (json ts) (json tsBest) (json td) (json tdBest) (json ta) (json taBest) (json tj) (json tr)
        (sci (Tensors.relativeError structured denseResult)) (sci (Tensors.relativeError structured autodiff))

/// One route in this process: its time and the process's peak resident memory.
let private memoryMode (argv: string[]) =
    let name, route = arg argv "--cell" "lstm", arg argv "--route" "autodiff-at"
    let I, H, T = int (arg argv "--input" "16"), int (arg argv "--hidden" "32"), int (arg argv "--steps" "128")
    let cell = cellNamed name I H
    let theta, xs, s0 = case cell T 1UL
    let _, before = memory ()
    let result, t =
        seconds (fun () ->
            match route with
            | "sweep" -> Bptt.outputAtStep cell theta xs (Recurrence.unroll cell theta xs s0) T
            | "autodiff-at" -> Bptt.outputByAutodiffAt cell theta xs s0 T
            | "autodiff-all" -> Bptt.byAutodiff cell theta xs s0
            | other -> failwith $"unknown route {other}; expected sweep, autodiff-at or autodiff-all")
    let peak, _ = memory ()
    printfn """{"system": "seqnets", "mode": "memory", "route": "%s", "cell": "%s", "input": %d, "hidden": %d, "steps": %d, "parameters": %d, "result_mb": %s, "seconds": %s, "rss_before_mb": %s, "peak_rss_mb": %s}"""
        route name I H T cell.ParameterCount (json (float (result.numel ()) * 8.0 / 1048576.0)) (json t) (json before) (json peak)

/// Verify.identityAt (closed form by the sweep against autodiff at T) for every built-in cell.
let private verifyScale (argv: string[]) =
    let I, H, T = int (arg argv "--input" "16"), int (arg argv "--hidden" "32"), int (arg argv "--steps" "128")
    for cell, _ in cellsWithEquations I H do
        let theta, xs, s0 = case cell T 2UL
        let r = Verify.identityAt cell { Theta = theta; Inputs = xs; InitialState = s0; Regime = Moderate } T
        let dense =
            use _ = torch.NewDisposeScope()
            let states = Recurrence.unroll cell theta xs s0
            Tensors.relativeError (Bptt.outputAtStep { cell with StructuredJacobians = None } theta xs states T) (Bptt.outputAtStep cell theta xs states T)
        printfn """{"system": "seqnets", "mode": "verify-scale", "cell": "%s", "input": %d, "hidden": %d, "steps": %d, "parameters": %d, "closed_vs_autodiff": %s, "hand_vs_derived": %s, "magnitude": %s, "closed_s": %s, "autodiff_s": %s}"""
            cell.Name I H T cell.ParameterCount (sci r.ClosedFormVsAutodiff) (sci dense) (sci r.Magnitude) (json r.ClosedFormTime.TotalSeconds) (json r.AutodiffTime.TotalSeconds)

/// Runs the mode named by --mode.
let run (argv: string[]) : int =
    torch.set_num_threads (int (arg argv "--threads" "2"))
    match arg argv "--mode" "" with
    | "jacobians" -> jacobians argv
    | "sweep" -> sweep argv
    | "memory" -> memoryMode argv
    | "verify-scale" -> verifyScale argv
    | other -> failwith $"unknown mode '{other}': expected jacobians, sweep, memory or verify-scale"
    0
