/// Batch-1 inference in .NET arrays, for sampling one character at a time. At batch 1 a step is a
/// handful of matrix-vector products and element-wise operations on a few hundred numbers, where
/// the fixed cost of each libtorch call dominates; here each step is plain SIMD loops
/// (TensorPrimitives) over float32 copies of the parameters. The equations are the cells' own
/// projected transitions (Cells.*.fs); tests compare the logits with CharModel.Forward.
/// Legend: V vocabulary, I layer input, H hidden, G pre-activation rows, F factors.
namespace SeqNets

open System
open System.Numerics
open System.Numerics.Tensors
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open TorchSharp

/// The parameters of one layer as float32 arrays, and its state.
type internal FastLayer =
    { Kind: CellKind
      H: int
      /// Layer 0: the projected input of every character, [V; G] row-major. Other layers: A of
      /// the affine input projection px = A x + a0, [G; I] row-major.
      Input: float32[]
      /// a0 of the affine input projection (layers ≥ 1), [G].
      InputBias: float32[]
      InputWidth: int
      /// weight_hh [G_h; H] (mRNN: W_fh [F; H]).
      U: float32[]
      /// bias_hh (GRU, PyTorch form) [3H]; mRNN: W_hf [H; F].
      Extra: float32[]
      G: int
      /// The state s = h, or [h; c] for the LSTM.
      State: float32[] }

/// A model's layers in .NET arrays, stepped one character at a time.
type internal FastSampler(layers: FastLayer[], outWeight: float32[], outBias: float32[], vocabulary: int) =
    let px = layers |> Array.map (fun l -> Array.zeroCreate<float32> l.G)
    let gh = layers |> Array.map (fun l -> Array.zeroCreate<float32> (max l.G (l.U.Length / max 1 l.H)))
    let tmp = layers |> Array.map (fun l -> Array.zeroCreate<float32> (2 * l.H + l.G))
    let logits = Array.zeroCreate<float32> vocabulary

    /// y = M x (+ y when accumulate) for M [rows; cols] row-major: four rows at a time, so that
    /// each SIMD load of x serves four rows (the matrix streams from cache once per step).
    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    static member MatVec(m: ReadOnlySpan<float32>, rows: int, cols: int, x: ReadOnlySpan<float32>, y: Span<float32>, accumulate: bool) =
        let w = Vector<float32>.Count
        let vectorCols = cols - cols % w
        let xv = MemoryMarshal.Cast<float32, Vector<float32>>(x.Slice(0, vectorCols))
        let mutable r = 0
        while r + 4 <= rows do
            let m0 = MemoryMarshal.Cast<float32, Vector<float32>>(m.Slice(r * cols, vectorCols))
            let m1 = MemoryMarshal.Cast<float32, Vector<float32>>(m.Slice((r + 1) * cols, vectorCols))
            let m2 = MemoryMarshal.Cast<float32, Vector<float32>>(m.Slice((r + 2) * cols, vectorCols))
            let m3 = MemoryMarshal.Cast<float32, Vector<float32>>(m.Slice((r + 3) * cols, vectorCols))
            let mutable a0 = Vector<float32>.Zero
            let mutable a1 = Vector<float32>.Zero
            let mutable a2 = Vector<float32>.Zero
            let mutable a3 = Vector<float32>.Zero
            for j in 0 .. xv.Length - 1 do
                let v = xv[j]
                a0 <- a0 + m0[j] * v
                a1 <- a1 + m1[j] * v
                a2 <- a2 + m2[j] * v
                a3 <- a3 + m3[j] * v
            let mutable d0 = Vector.Sum a0
            let mutable d1 = Vector.Sum a1
            let mutable d2 = Vector.Sum a2
            let mutable d3 = Vector.Sum a3
            for k in vectorCols .. cols - 1 do
                d0 <- d0 + m[r * cols + k] * x[k]
                d1 <- d1 + m[(r + 1) * cols + k] * x[k]
                d2 <- d2 + m[(r + 2) * cols + k] * x[k]
                d3 <- d3 + m[(r + 3) * cols + k] * x[k]
            if accumulate then
                y[r] <- y[r] + d0; y[r + 1] <- y[r + 1] + d1; y[r + 2] <- y[r + 2] + d2; y[r + 3] <- y[r + 3] + d3
            else
                y[r] <- d0; y[r + 1] <- d1; y[r + 2] <- d2; y[r + 3] <- d3
            r <- r + 4
        while r < rows do
            let d = TensorPrimitives.Dot(m.Slice(r * cols, cols), x)
            y[r] <- if accumulate then y[r] + d else d
            r <- r + 1

    /// One step of every layer for character id; returns the logits [V] (valid until the next step).
    // Optimised from the first call: a sampling run is a few thousand calls, too few for the
    // tiered JIT to reach its optimised code in time.
    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    member _.Step(id: int) : float32[] =
        let mutable input = ReadOnlySpan<float32>()
        for l in 0 .. layers.Length - 1 do
            let L = layers[l]
            let H = L.H
            let p = px[l].AsSpan()
            if l = 0 then ReadOnlySpan<float32>(L.Input, id * L.G, L.G).CopyTo p
            else
                L.InputBias.AsSpan().CopyTo p
                FastSampler.MatVec(ReadOnlySpan<float32>(L.Input), L.G, L.InputWidth, input, p, true)
            let s = L.State.AsSpan()
            let h = s.Slice(0, H)
            match L.Kind with
            | ElmanTanh | ElmanRelu ->
                FastSampler.MatVec(ReadOnlySpan<float32>(L.U), H, H, h, p, true) // a = px + U h
                if L.Kind = ElmanTanh then TensorPrimitives.Tanh(ReadOnlySpan<float32>(px[l]), h)
                else TensorPrimitives.Max(ReadOnlySpan<float32>(px[l]), 0.0f, h)
            | Lstm ->
                FastSampler.MatVec(ReadOnlySpan<float32>(L.U), 4 * H, H, h, p, true) // pre = px + U h, rows (i, f, g, o)
                let c = s.Slice(H, H)
                let pre = px[l]
                for k in 0 .. H - 1 do
                    let i = 1.0f / (1.0f + MathF.Exp(-pre[k]))
                    let f = 1.0f / (1.0f + MathF.Exp(-pre[H + k]))
                    let g = MathF.Tanh(pre[2 * H + k])
                    let o = 1.0f / (1.0f + MathF.Exp(-pre[3 * H + k]))
                    let cNew = f * c[k] + i * g // f ⊙ c_{t−1} + i ⊙ g
                    c[k] <- cNew
                    h[k] <- o * MathF.Tanh cNew // h_t = o ⊙ tanh(c_t)
            | GruPyTorch ->
                let g = gh[l].AsSpan(0, 3 * H)
                L.Extra.AsSpan().CopyTo g // b_hh
                FastSampler.MatVec(ReadOnlySpan<float32>(L.U), 3 * H, H, h, g, true) // U h + b_hh
                let pre = px[l]
                for k in 0 .. H - 1 do
                    let r = 1.0f / (1.0f + MathF.Exp(-(pre[k] + g[k])))
                    let z = 1.0f / (1.0f + MathF.Exp(-(pre[H + k] + g[H + k])))
                    let n = MathF.Tanh(pre[2 * H + k] + r * g[2 * H + k])
                    h[k] <- n + z * (h[k] - n)
            | GruLecture ->
                let g = gh[l].AsSpan(0, 3 * H)
                FastSampler.MatVec(ReadOnlySpan<float32>(L.U), 2 * H, H, h, g.Slice(0, 2 * H), false) // U_rz h
                let pre = px[l]
                let rh = tmp[l].AsSpan(0, H)
                let z = tmp[l].AsSpan(H, H)
                for k in 0 .. H - 1 do
                    let r = 1.0f / (1.0f + MathF.Exp(-(pre[k] + g[k])))
                    z[k] <- 1.0f / (1.0f + MathF.Exp(-(pre[H + k] + g[H + k])))
                    rh[k] <- r * h[k]
                let un = g.Slice(2 * H, H)
                FastSampler.MatVec(ReadOnlySpan<float32>(L.U, 2 * H * H, H * H), H, H, rh, un, false) // U_n (r ⊙ h)
                for k in 0 .. H - 1 do
                    let n = MathF.Tanh(pre[2 * H + k] + un[k])
                    h[k] <- n + z[k] * (h[k] - n)
            | MultiplicativeRnn factors ->
                let u = gh[l].AsSpan(0, factors)
                FastSampler.MatVec(ReadOnlySpan<float32>(L.U), factors, H, h, u, false) // W_fh h
                let pre = px[l]
                let m = tmp[l].AsSpan(0, factors)
                for k in 0 .. factors - 1 do m[k] <- pre[H + k] * u[k] // f ⊙ (W_fh h), f = W_fx x
                let a = pre.AsSpan(0, H)
                FastSampler.MatVec(ReadOnlySpan<float32>(L.Extra), H, factors, m, a, true) // + W_hf m
                TensorPrimitives.Tanh(ReadOnlySpan<float32>(pre, 0, H), h)
            input <- ReadOnlySpan<float32>(L.State, 0, H)
        outBias.AsSpan().CopyTo(logits.AsSpan())
        FastSampler.MatVec(ReadOnlySpan<float32>(outWeight), vocabulary, layers[layers.Length - 1].H, input, logits.AsSpan(), true)
        logits

    /// Sets every layer's state from tensors [1; S].
    member _.SetState(states: torch.Tensor[]) =
        for l in 0 .. layers.Length - 1 do
            let values = (use s = states[l].to_type torch.float32 in s.data<float32>().ToArray())
            values.CopyTo(layers[l].State, 0)

    /// Whether a network can be sampled here: token inputs, layers of built-in cells with a fast
    /// form reading left to right (any mix of families).
    static member Supports(net: Network) =
        InputLayer.takesTokens net.Spec.Input
        && net.Spec.Layers |> List.forall (fun l ->
            l.Direction = Forward && l.Cell.InputProjection.IsSome && (CellKind.ofCell l.Cell).IsSome)

    /// Copies a float32 network's parameters into arrays.
    static member Create(net: Network) : FastSampler =
        use _ = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let arr (t: torch.Tensor) = t.contiguous().to_type(torch.float32).data<float32>().ToArray()
        let dtype = net.DType
        let layers =
            net.Cells
            |> Array.mapi (fun l cell ->
                let kind = (CellKind.ofCell cell).Value
                let theta = net.LayerParameters l
                let view name = arr (cell.Layout.View(theta, name))
                let project = cell.InputProjection.Value theta
                let I = cell.InputSize
                let input, bias =
                    if l = 0 then
                        // The projected input of every token: of the unit vectors (one-hot) or of the
                        // embedding table's rows.
                        let tokens =
                            match net.Spec.Input with
                            | Embedding _ -> net.View "input.weight"
                            | _ -> torch.eye(int64 I, dtype = dtype)
                        arr (project tokens), [||]
                    else
                        let a0 = project (torch.zeros([| 1L; int64 I |], dtype = dtype)) // [1; G]
                        let columns = project (torch.eye(int64 I, dtype = dtype)) - a0 // [I; G]: row k = A e_k
                        arr (columns.t ()), arr a0
                let tokens = match net.Spec.Input with Embedding(v, _) | OneHot v -> v | _ -> I
                let G = (if l = 0 then input.Length / tokens else bias.Length)
                let U, extra =
                    match kind with
                    | MultiplicativeRnn _ -> view "W_fh", view "W_hf"
                    | GruPyTorch -> view "weight_hh", view "bias_hh"
                    | _ -> view "weight_hh", [||]
                { Kind = kind
                  H = cell.HiddenSize
                  Input = input
                  InputBias = bias
                  InputWidth = I
                  U = U
                  Extra = extra
                  G = G
                  State = Array.zeroCreate cell.StateSize })
        FastSampler(layers, arr (net.Readout.Layout.View(net.ReadoutParameters, "weight")),
                    arr (net.Readout.Layout.View(net.ReadoutParameters, "bias")), net.Spec.Output)
