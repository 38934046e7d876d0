/// The gated recurrent unit (Cho et al. 2014) in two forms over one parameter layout,
/// PyTorch's nn.GRU: θ = [weight_ih [3H; I]; weight_hh [3H; H]; bias_ih [3H]; bias_hh [3H]] with
/// gate rows in the order (r, z, n). The state is h (S = H).
namespace SeqNets.Cells

open TorchSharp
open SeqNets

/// Where the reset gate acts on the candidate.
type GruForm =
    /// The lecture's (Cho 2014) form: ñ = φ(W_n x + b_in + U_n (r ⊙ h_{t−1}) + b_hn).
    | Lecture
    /// PyTorch's and cuDNN's form: n = tanh(W_n x + b_in + r ⊙ (U_n h_{t−1} + b_hn)).
    | PyTorch

/// The GRU, in the lecture's notation
///   z_t = σ(W_z x_t + U_z h_{t−1} + b_z)
///   r_t = σ(W_r x_t + U_r h_{t−1} + b_r)
///   h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ φ_h(W_h x_t + U_h (r_t ⊙ h_{t−1}) + b_h)
/// with b_z = b_iz + b_hz and b_r = b_ir + b_hr; in PyTorch's form the reset gate multiplies
/// U_h h_{t−1} + b_hn instead. Jacobians: docs/derivations.md.
[<RequireQualifiedAccess>]
module Gru =
    let private layout (I: int) (H: int) = ParameterLayout.Recurrent(3, I, H)

    /// The gate rows (r, z, n) of a [.., 3H] tensor.
    let private gates (H: int64) (g: Tensor) =
        g.narrow(-1L, 0L, H), g.narrow(-1L, H, H), g.narrow(-1L, 2L * H, H)

    /// The rows (r, z, n) of a [3H; K] or [R; 3H; K] weight.
    let private rows (H: int64) (W: Tensor) =
        let d = W.dim () - 2L
        W.narrow(d, 0L, H), W.narrow(d, H, H), W.narrow(d, 2L * H, H)

    /// The GRU as equations, in the same layout (gate rows r, z, n of PyTorch's blocks):
    ///   r_t = σ(W_r x_t + b_ir + U_r h_{t−1} + b_hr),   z_t = σ(W_z x_t + b_iz + U_z h_{t−1} + b_hz),
    ///   n_t = tanh(W_n x_t + b_in + U_n (r_t ⊙ h_{t−1}) + b_hn)        (lecture)
    ///   n_t = tanh(W_n x_t + b_in + r_t ⊙ (U_n h_{t−1} + b_hn))        (PyTorch)
    ///   h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ n_t.
    [<CompiledName("Equations")>]
    let equations (form: GruForm) (inputSize: int) (hiddenSize: int) : CellEquations =
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        let H = hiddenSize
        let x, h = Expr.input, Expr.previous "h"
        let gate block k (symbol: string) = Block.rows block (k * H) H symbol
        let W_r, W_z, W_n = gate "weight_ih" 0 "W_r", gate "weight_ih" 1 "W_z", gate "weight_ih" 2 "W_n"
        let U_r, U_z, U_n = gate "weight_hh" 0 "U_r", gate "weight_hh" 1 "U_z", gate "weight_hh" 2 "U_n"
        let bias block k symbol = Expr.parameter (gate block k symbol)
        let b_ir, b_iz, b_in = bias "bias_ih" 0 "b_ir", bias "bias_ih" 1 "b_iz", bias "bias_ih" 2 "b_in"
        let b_hr, b_hz, b_hn = bias "bias_hh" 0 "b_hr", bias "bias_hh" 1 "b_hz", bias "bias_hh" 2 "b_hn"
        let r = Expr.named "r" (Expr.sigmoid (W_r * x + b_ir + U_r * h + b_hr))
        let z = Expr.named "z" (Expr.sigmoid (W_z * x + b_iz + U_z * h + b_hz))
        let n =
            match form with
            | Lecture -> Expr.named "n" (Expr.tanh (W_n * x + b_in + U_n * (r * h) + b_hn))
            | PyTorch -> Expr.named "n" (Expr.tanh (W_n * x + b_in + r * (U_n * h + b_hn)))
        let name = match form with Lecture -> "gru-lecture" | PyTorch -> "gru-pytorch"
        Equations.create name inputSize [ "h", H ] (layout inputSize hiddenSize) [ "h", z * h + (1.0 - z) * n ]

    /// A GRU with input size I and hidden size H in the given form.
    [<CompiledName("Create")>]
    let create (form: GruForm) (inputSize: int) (hiddenSize: int) : Cell =
        Native.ensure ()
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        let L = layout inputSize hiddenSize
        let H = int64 hiddenSize
        let derived = Equations.cell (equations form inputSize hiddenSize) // b_t structured, for Bptt's sweeps

        /// Every intermediate of one step, named as in the equations.
        let forward (theta: Tensor) (x: Tensor) (h: Tensor) =
            let W, U = L.View(theta, "weight_ih"), L.View(theta, "weight_hh")
            let gi = Tensors.linear W x + L.View(theta, "bias_ih") // [B; 3H]
            let i_r, i_z, i_n = gates H gi
            let b_hr, b_hz, b_hn = gates H (L.View(theta, "bias_hh"))
            let U_r, U_z, U_n = rows H U
            let r = (i_r + Tensors.linear U_r h + b_hr).sigmoid () // [B; H]
            let z = (i_z + Tensors.linear U_z h + b_hz).sigmoid () // [B; H]
            let q, n =
                match form with
                | Lecture ->
                    let q = r * h // r ⊙ h_{t−1}, the input of U_n: [B; H]
                    q, (i_n + Tensors.linear U_n q + b_hn).tanh ()
                | PyTorch ->
                    let hn = Tensors.linear U_n h + b_hn // [B; H]
                    hn, (i_n + r * hn).tanh ()
            let hNext = z * h + (1.0 - z) * n // [B; H]
            r, z, q, n, hNext

        // The fast form of the same equations: the input half of every gate for all steps at
        // once, then per step one fused product with U and few element-wise calls.
        let project (theta: Tensor) : Tensor -> Tensor =
            let W, b_ih, b_hh = L.View(theta, "weight_ih"), L.View(theta, "bias_ih"), L.View(theta, "bias_hh") // once per θ
            fun x ->
                let gi = Tensors.linear W x + b_ih // [..; 3H]
                match form with
                | Lecture -> gi + b_hh // every b_hh sits outside r here
                | PyTorch -> gi

        // Staged: views of θ once per unroll (projected theta), not once per step.
        let projected (theta: Tensor) : Tensor -> Tensor -> Tensor =
          let U = L.View(theta, "weight_hh")
          let b_hh = L.View(theta, "bias_hh")
          let U_rz, U_n = Tensors.rows 0L (2L * H) U, Tensors.rows (2L * H) H U
          fun px h ->
            let split2 (t: Tensor) = let p = t.split([| 2L * H; H |], -1L) in p[0], p[1] // [B; 2H], [B; H]
            let halves (t: Tensor) = let p = t.chunk(2L, -1L) in p[0], p[1]
            let px_rz, px_n = split2 px
            match form with
            | Lecture ->
                let r, z = halves ((Tensors.affine px_rz h U_rz).sigmoid ())
                let n = (Tensors.affine px_n (r * h) U_n).tanh ()
                n + z * (h - n) // z ⊙ h + (1 − z) ⊙ n
            | PyTorch ->
                let gh_rz, gh_n = split2 (Tensors.affine b_hh h U) // U h + b_hh
                let r, z = halves ((px_rz + gh_rz).sigmoid ())
                let n = torch.addcmul(px_n, r, gh_n, 1.0.ToScalar()).tanh ()
                n + z * (h - n)


        let jacobians (theta: Tensor) (x: Tensor) (h: Tensor) =
            let r, z, q, n, _ = forward theta x h
            let U_r, U_z, U_n = rows H (L.View(theta, "weight_hh"))
            let dn = (1.0 - z) * (1.0 - n * n) // ∂h_t/∂(pre-activation of n), diagonal: [B; H]
            let dz = (h - n) * z * (1.0 - z) // ∂h_t/∂(pre-activation of z), diagonal: [B; H]
            let dr = r * (1.0 - r) // σ'(pre-activation of r): [B; H]
            let A = Tensors.diag dn // [B; H; H]
            let Jz = Tensors.diag dz // [B; H; H]
            match form with
            | Lecture ->
                // r reaches h_t only through q = r ⊙ h inside U_n q: ∂h_t/∂r = A U_n diag(h).
                let Jr = A.matmulChecked(U_n) * (h * dr).unsqueeze 1L // [B; H; H]
                let Jgi = torch.cat([| Jr; Jz; A |], 2L) // ∂h_t/∂(W x + b_ih): [B; H; 3H]
                let c = Tensors.diag z + Jr.matmulChecked U_r + Jz.matmulChecked U_z + A.matmulChecked(U_n) * r.unsqueeze 1L // [B; H; H]
                let bW_hh = torch.cat([| Tensors.wrtWeight (torch.cat([| Jr; Jz |], 2L)) h; Tensors.wrtWeight A q |], 2L)
                { State = c
                  Parameters = torch.cat([| Tensors.wrtWeight Jgi x; bW_hh; Jgi; Jgi |], 2L) } // [B; H; P]
            | PyTorch ->
                // q = U_n h + b_hn here; r scales it: ∂h_t/∂(pre r) = diag(dn ⊙ q ⊙ dr).
                let Jr = Tensors.diag (dn * q * dr) // [B; H; H]
                let Jgi = torch.cat([| Jr; Jz; A |], 2L) // [B; H; 3H]
                let Jgh = torch.cat([| Jr; Jz; Tensors.diag (dn * r) |], 2L) // ∂h_t/∂(U h + b_hh): [B; H; 3H]
                let c = Tensors.diag z + Jgh.matmulChecked (L.View(theta, "weight_hh")) // [B; H; H]
                { State = c
                  Parameters = torch.cat([| Tensors.wrtWeight Jgi x; Tensors.wrtWeight Jgh h; Jgi; Jgh |], 2L) }

        // ∂h_t/∂x_t = ∂h_t/∂(W x + b_ih) · W: the same gate Jacobian Jgi as in b_t, times W.
        let inputJacobian (theta: Tensor) (x: Tensor) (h: Tensor) =
            let r, z, q, n, _ = forward theta x h
            let dn = (1.0 - z) * (1.0 - n * n) // [B; H]
            let dz = (h - n) * z * (1.0 - z)
            let dr = r * (1.0 - r)
            let A = Tensors.diag dn
            let Jr =
                match form with
                | Lecture ->
                    let _, _, U_n = rows H (L.View(theta, "weight_hh"))
                    A.matmulChecked(U_n) * (h * dr).unsqueeze 1L // [B; H; H]
                | PyTorch -> Tensors.diag (dn * q * dr)
            let Jgi = torch.cat([| Jr; Tensors.diag dz; A |], 2L) // [B; H; 3H]
            Jgi.matmulChecked (L.View(theta, "weight_ih")) // [B; H; I]

        let name, equations =
            match form with
            | Lecture -> "gru-lecture", "h_t = z ⊙ h_(t-1) + (1 - z) ⊙ tanh(W_n x + b_in + U_n (r ⊙ h_(t-1)) + b_hn)"
            | PyTorch -> "gru-pytorch", "h_t = (1 - z) ⊙ tanh(W_n x + b_in + r ⊙ (U_n h_(t-1) + b_hn)) + z ⊙ h_(t-1)"
        { Cell.fromProjection name inputSize hiddenSize hiddenSize L equations project projected jacobians inputJacobian with
            StructuredJacobians = derived.StructuredJacobians }
