/// Small tensor helpers shared by the cells. Legend: B batch, R replicated rows, I input,
/// H hidden, G gate rows, K a layer's input width, S state, P parameters.
namespace SeqNets

open TorchSharp
type Tensor = torch.Tensor

/// TorchSharp 0.107's native `THSTensor_matmul` is the one arithmetic entry point that does not
/// catch libtorch's errors: a shape mismatch there ends the process (std::terminate) instead of
/// raising a .NET exception. Every product in SeqNets goes through `t.matmulChecked`, which checks
/// what libtorch would refuse first and raises an ArgumentException naming both shapes.
[<AutoOpen>]
module CheckedProducts =
    /// Why torch.matmul would refuse a · b, or None when it accepts them.
    let matmulProblem (a: Tensor) (b: Tensor) : string option =
        let sa, sb = a.shape, b.shape
        let shapeText = Check.shapeText
        let mismatch () = Some $"matmul: the inner sizes differ: {shapeText a} · {shapeText b}."
        if sa.Length = 0 || sb.Length = 0 then Some $"matmul: expected tensors of rank at least 1, but got {shapeText a} · {shapeText b}."
        elif a.dtype <> b.dtype then Some $"matmul: expected tensors of one dtype, but got {a.dtype} · {b.dtype}."
        elif sb.Length = 1 then (if sa[sa.Length - 1] = sb[0] then None else mismatch ())
        elif sa.Length = 1 then (if sa[0] = sb[sb.Length - 2] then None else mismatch ())
        elif sa[sa.Length - 1] <> sb[sb.Length - 2] then mismatch ()
        else
            // The batch dimensions broadcast: aligned from the right, each pair equal or one of them 1.
            let ba, bb = sa[.. sa.Length - 3], sb[.. sb.Length - 3]
            let n = max ba.Length bb.Length
            let at (d: int64[]) i = let k = i - (n - d.Length) in if k < 0 then 1L else d[k]
            if Seq.forall (fun i -> let x, y = at ba i, at bb i in x = y || x = 1L || y = 1L) (seq { 0 .. n - 1 }) then None
            else Some $"matmul: the batch dimensions of {shapeText a} and {shapeText b} do not broadcast."

    type torch.Tensor with
        /// torch.matmul, with libtorch's refusals raised as an ArgumentException instead of ending
        /// the process.
        member a.matmulChecked(b: Tensor) : Tensor =
            match matmulProblem a b with
            | Some why -> Check.fail "b" why
            | None -> a.matmul b

[<RequireQualifiedAccess>]
module Tensors =
    /// W x for every row: W is [G; K] (shared by the batch) or [B; G; K] (one matrix per row,
    /// used when each row carries its own copy of the parameters); x is [B; K]. Returns [B; G].
    let linear (W: Tensor) (x: Tensor) : Tensor =
        if W.dim () = 2L then x.matmulChecked (W.t ())
        else torch.bmm(W, x.unsqueeze -1L).squeeze -1L

    /// b + W x for every row in one fused call (addmm): W is [G; K] (shared) or [B; G; K] (one
    /// matrix per row), x is [B; K], b broadcasts to [B; G].
    let affine (b: Tensor) (x: Tensor) (W: Tensor) : Tensor =
        if W.dim () = 2L then torch.addmm(b, x, W.t (), 1.0f, 1.0f)
        else b + torch.bmm(W, x.unsqueeze -1L).squeeze -1L

    /// Rows [start, start + count) of a [G; K] or [B; G; K] weight.
    let rows (start: int64) (count: int64) (W: Tensor) : Tensor = W.narrow(W.dim () - 2L, start, count)

    /// The Jacobian of y = W x with respect to W's entries, chained through J = ∂s/∂y:
    /// ∂s_i/∂W_jk = J_ij x_k. J is [B; S; G], x is [B; K]; returns [B; S; G·K] in W's row-major order.
    let wrtWeight (J: Tensor) (x: Tensor) : Tensor =
        let B, S, G, K = J.shape[0], J.shape[1], J.shape[2], x.shape[1]
        (J.unsqueeze -1L * x.unsqueeze(1L).unsqueeze 1L).reshape (B, S, G * K) // [B; S; G·K]

    /// diag(d) for every row: d is [B; H], result [B; H; H].
    let diag (d: Tensor) : Tensor = torch.diag_embed d

    /// M · W for every row, where M is [B; S; G] and W is [G; K] (shared): [B; S; K].
    let rightMul (M: Tensor) (W: Tensor) : Tensor = M.matmulChecked W

    /// Largest absolute entry, as a float.
    let maxAbs (t: Tensor) : float =
        use _ = torch.no_grad ()
        if t.numel () = 0L then 0.0 else (use m = t.abs().max() in m.to_type(torch.float64).item<float> ())

    /// Largest |x − y| divided by the largest |y| (the reference), 0 when both vanish.
    let relativeError (x: Tensor) (reference: Tensor) : float =
        use _ = torch.no_grad ()
        let d = (use diff = x - reference in maxAbs diff)
        let r = maxAbs reference
        if d = 0.0 then 0.0 elif r = 0.0 then infinity else d / r

    /// Column vector of floats as a 1-D tensor.
    let ofArray (dtype: torch.ScalarType) (xs: float[]) = torch.tensor(xs, dtype = dtype)
