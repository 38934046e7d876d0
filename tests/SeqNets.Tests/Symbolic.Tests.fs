/// Cells written as equations: the derived c_t and b_t of every built-in cell against its
/// hand-derived Jacobians and autodiff; the conventions (numerator layout, θ row-major, ReLU'(0));
/// user cells (MGU, IndRNN, peephole LSTM) through every BPTT route with no hand-written Jacobian;
/// bad equations; and the rendering.
module SeqNets.Tests.SymbolicTests

open System
open Expecto
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

/// 1e-12 relative, as the derived Jacobians must agree with the hand-derived ones.
let derivedTolerance = 1e-12

/// The equations of the built-in cell called name, at the spec's sizes (the same sizes as cellNamed).
let equationsNamed (name: string) (s: CaseSpec) : CellEquations =
    match name with
    | "elman-tanh" -> Cells.Elman.equations Cells.Tanh s.Input s.Hidden
    | "elman-relu" -> Cells.Elman.equations Cells.Relu s.Input s.Hidden
    | "gru-lecture" -> Cells.Gru.equations Cells.Lecture s.Input s.Hidden
    | "gru-pytorch" -> Cells.Gru.equations Cells.PyTorch s.Input s.Hidden
    | "lstm" -> Cells.Lstm.equations s.Input s.Hidden
    | "mrnn" -> Cells.MultiplicativeRnn.equations s.Input s.Hidden (s.Hidden + 1)
    | other -> failwith $"no equations for {other}"

/// The lecture's multiplicative module as a cell (Cells.Multiplicative.equations).
let moduleEquations (s: CaseSpec) = Cells.Multiplicative.equations s.Input s.Hidden

/// The module cell's hand-derived oracle: Multiplicative.apply for the step, and with
/// D = diag(1 − h_t²): c_t = D U(x_t), ∂h/∂U = D ⊗ h_{t−1} ⊗ x_t, ∂h/∂W = D ⊗ x_t, ∂h/∂b = D.
let moduleByHand (s: CaseSpec) =
    let eq = moduleEquations s
    let L = eq.Layout
    let step (theta: torch.Tensor) (x: torch.Tensor) (h: torch.Tensor) =
        (Cells.Multiplicative.apply (L.View(theta, "U")) h x + Tensors.linear (L.View(theta, "W")) x + L.View(theta, "b")).tanh ()
    Cell.custom "multiplicative-module (by hand)" s.Input s.Hidden s.Hidden L step
    |> Cell.withJacobians (fun theta x h ->
        let hNext = step theta x h
        let D = Tensors.diag (1.0 - hNext * hNext) // [B; H; H]
        let Wx = torch.einsum("ijk,bk->bij", L.View(theta, "U"), x) // U(x_t): [B; H; H]
        let B, H = x.shape[0], int64 s.Hidden
        let dU = (D.unsqueeze(-1L).unsqueeze(-1L) * h.view(B, 1L, 1L, H, 1L) * x.view(B, 1L, 1L, 1L, x.shape[1])).reshape(B, H, -1L) // [B; H; H·H·I]
        { State = D.matmul Wx; Parameters = torch.cat([| dU; Tensors.wrtWeight D x; D |], 2L) })

/// Derived c_t, b_t along a random trajectory = the hand-derived ones (1e-12) and autodiff's (1e-12);
/// the equations' unroll = the hand cell's.
let derivedEqualsHandWith (hand: Cell) (symbolic: Cell) (reference: Cell) (s: CaseSpec) =
    use _ = torch.NewDisposeScope()
    let case = Verify.randomCase hand torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
    let states = Recurrence.unroll hand case.Theta case.Inputs case.InitialState
    // Over T steps rounding differences grow with the trajectory (exploding regime): the route tolerance.
    close $"{hand.Name} unroll from the equations, {s}" exact (Recurrence.unroll symbolic case.Theta case.Inputs case.InitialState) states
    let byHand = Bptt.jacobians hand case.Theta case.Inputs states
    let derived = Bptt.jacobians symbolic case.Theta case.Inputs states
    let auto = Bptt.jacobiansByAutodiff reference case.Theta case.Inputs states
    close $"{hand.Name} derived c_t vs hand, {s}" derivedTolerance derived.State byHand.State
    close $"{hand.Name} derived b_t vs hand, {s}" derivedTolerance derived.Parameters byHand.Parameters
    close $"{hand.Name} derived c_t vs autodiff, {s}" derivedTolerance derived.State auto.State
    close $"{hand.Name} derived b_t vs autodiff, {s}" derivedTolerance derived.Parameters auto.Parameters

/// The same, with autodiff through the hand cell's transition.
let derivedEqualsHand (hand: Cell) (symbolic: Cell) (s: CaseSpec) = derivedEqualsHandWith hand symbolic hand s

// ---- user cells written as equations, no hand-written Jacobian ----

/// The minimal gated unit (Zhou et al. 2016):
///   f_t = σ(W_f x_t + U_f h_{t−1} + b_f),  h̃_t = tanh(W_h x_t + U_h (f_t ⊙ h_{t−1}) + b_h),
///   h_t = (1 − f_t) ⊙ h_{t−1} + f_t ⊙ h̃_t.
let mgu (I: int) (H: int) =
    let I', H' = int64 I, int64 H
    let L = ParameterLayout [ "W_f", [ H'; I' ]; "U_f", [ H'; H' ]; "b_f", [ H' ]; "W_h", [ H'; I' ]; "U_h", [ H'; H' ]; "b_h", [ H' ] ]
    let x, h = Expr.input, Expr.previous "h"
    let W_f, U_f, W_h, U_h = Block.named "W_f", Block.named "U_f", Block.named "W_h", Block.named "U_h"
    let f = Expr.named "f" (Expr.sigmoid (W_f * x + U_f * h + Expr.vector "b_f"))
    let hTilde = Expr.named "h~" (Expr.tanh (W_h * x + U_h * (f * h) + Expr.vector "b_h"))
    Equations.create "mgu" I [ "h", H ] L [ "h", (1.0 - f) * h + f * hTilde ]

/// IndRNN (Li et al. 2018): h_t = ReLU(W x_t + u ⊙ h_{t−1} + b), u a vector.
let indRnn (I: int) (H: int) =
    let L = ParameterLayout [ "W", [ int64 H; int64 I ]; "u", [ int64 H ]; "b", [ int64 H ] ]
    let hNext = Expr.relu (Block.named "W" * Expr.input + Expr.vector "u" * Expr.previous "h" + Expr.vector "b")
    Equations.create "indrnn" I [ "h", H ] L [ "h", hNext ]

/// The peephole LSTM (Gers & Schmidhuber 2000): the gates also see the memory,
///   i_t = σ(W_i x_t + U_i h_{t−1} + p_i ⊙ c_{t−1} + b_i),  f_t likewise with p_f,
///   c_t = f_t ⊙ c_{t−1} + i_t ⊙ tanh(W_c x_t + U_c h_{t−1} + b_c),
///   o_t = σ(W_o x_t + U_o h_{t−1} + p_o ⊙ c_t + b_o),  h_t = o_t ⊙ tanh(c_t).
let peepholeLstm (I: int) (H: int) =
    let I', H' = int64 I, int64 H
    let L =
        ParameterLayout [ "W", [ 4L * H'; I' ]; "U", [ 4L * H'; H' ]; "b", [ 4L * H' ]; "p_i", [ H' ]; "p_f", [ H' ]; "p_o", [ H' ] ]
    let x, h, c = Expr.input, Expr.previous "h", Expr.previous "c"
    let rows k (name: string) = Block.rows "W" (k * H) H $"W_{name}", Block.rows "U" (k * H) H $"U_{name}", Expr.parameter (Block.rows "b" (k * H) H $"b_{name}")
    let W_i, U_i, b_i = rows 0 "i"
    let W_f, U_f, b_f = rows 1 "f"
    let W_c, U_c, b_c = rows 2 "c"
    let W_o, U_o, b_o = rows 3 "o"
    let i = Expr.named "i" (Expr.sigmoid (W_i * x + U_i * h + Expr.vector "p_i" * c + b_i))
    let f = Expr.named "f" (Expr.sigmoid (W_f * x + U_f * h + Expr.vector "p_f" * c + b_f))
    let cNext = f * c + i * Expr.tanh (W_c * x + U_c * h + b_c)
    let o = Expr.named "o" (Expr.sigmoid (W_o * x + U_o * h + Expr.vector "p_o" * cNext + b_o))
    Equations.create "peephole-lstm" I [ "h", H; "c", H ] L [ "c", cNext; "h", o * Expr.tanh cNext ]

let userCells = [ "mgu", mgu; "indrnn", indRnn; "peephole-lstm", peepholeLstm ]

let peepholeLstmOf (s: CaseSpec) = peepholeLstm s.Input s.Hidden

/// Central differences of s_T along a random unit direction v in θ, Richardson-extrapolated from
/// ε = 1e-6 and 5e-7, against the closed form a_T v; tolerance 1e-6 of a_T's scale plus the
/// differences' own uncertainty (ReLU kinks and exploding trajectories enlarge it).
let finiteDifferences (cell: Cell) (case: VerificationCase) (closed: torch.Tensor) (g: torch.Generator) (what: string) =
    use _ = torch.no_grad ()
    let T = int case.Inputs.shape[0]
    let v = torch.randn([| int64 cell.ParameterCount |], dtype = torch.float64, generator = g)
    let v = v / v.norm()
    let last (theta: torch.Tensor) = (Recurrence.unroll cell theta case.Inputs case.InitialState)[int64 T] // [B; S]
    let D (eps: float) = (last (case.Theta + v * eps) - last (case.Theta - v * eps)) / (2.0 * eps)
    let d1, d2 = D 1e-6, D 5e-7
    let fd = (d2 * 4.0 - d1) / 3.0 // [B; S]
    let analytic = closed[int64 (T - 1)].matmul v // a_T v: [B; S]
    let scale = max (Tensors.maxAbs closed[int64 (T - 1)]) 1e-3
    let tolerance = 1e-6 * scale + 8.0 * Tensors.maxAbs (d1 - d2)
    let err = Tensors.maxAbs (fd - analytic)
    if err > tolerance then failtest $"{what}: finite differences differ from the closed form by {err:E3} > {tolerance:E2}"

let private spec = { Steps = 6; Batch = 2; Input = 4; Hidden = 7; Regime = Moderate; Seed = 5 }

let private message (f: unit -> 'a) =
    try
        f () |> ignore
        failtest "expected an ArgumentException"
    with :? ArgumentException as e -> e.ParamName, e.Message

[<Tests>]
let tests =
    testList "Symbolic" [
        testList "every built-in cell's derived c_t and b_t equal the hand-derived ones and autodiff" [
            for name in cellNames ->
                property $"{name}" (fun s -> derivedEqualsHand (cellNamed name s) (Equations.cell (equationsNamed name s)) s)
            // Autodiff through the equations' transition here: the hand oracle has no row parameters.
            yield property "the multiplicative module (Multiplicative.apply, hand oracle in the test)" (fun s ->
                let symbolic = Equations.cell (moduleEquations s)
                derivedEqualsHandWith (moduleByHand s) symbolic symbolic s)
        ]

        testList "conventions" [
            test "numerator layout: c_t = ∂s_t/∂s_{t−1} with rows for s_t (U, not Uᵀ)" {
                use _ = torch.NewDisposeScope()
                let L = ParameterLayout [ "U", [ 3L; 3L ] ]
                let cell = Equations.cell (Equations.create "linear" 2 [ "h", 3 ] L [ "h", Block.named "U" * Expr.previous "h" ])
                let theta = torch.arange(9L, dtype = torch.float64) + 1.0 // U = [[1 2 3]; [4 5 6]; [7 8 9]]
                let x, h = torch.zeros([| 1L; 2L |], dtype = torch.float64), torch.ones([| 1L; 3L |], dtype = torch.float64)
                let j = Cell.jacobians cell theta x h
                close "c_t = U" 0.0 j.State[0L] (theta.view(3L, 3L))
            }
            test "θ row-major as PyTorch stores it: ∂(W x)/∂vec(W) = I ⊗ xᵀ" {
                use _ = torch.NewDisposeScope()
                let H, I = 3L, 2L
                let L = ParameterLayout [ "W", [ H; I ] ]
                let d = Equations.derive (Equations.create "projection" (int I) [ "h", int H ] L [ "h", Block.named "W" * Expr.input ])
                let cell = Equations.cellOf d
                let x = torch.tensor([| 5.0; 7.0 |], dtype = torch.float64).view(1L, I)
                let j = Cell.jacobians cell (torch.randn([| H * I |], dtype = torch.float64)) x (torch.zeros([| 1L; H |], dtype = torch.float64))
                close "b_t = I ⊗ xᵀ" 0.0 j.Parameters[0L] (torch.kron(torch.eye(H, dtype = torch.float64), x))
                Expect.exists d.Warnings (fun w -> w.Contains "c_t ≡ 0") "the state never feeds back: a warning"
            }
            test "ReLU'(0) = 0, as libtorch's autograd" {
                use _ = torch.NewDisposeScope()
                let z = torch.zeros([| 4L |], dtype = torch.float64).requires_grad_ true
                let autograd = (Autodiff.grad [ z.relu().sum () ] [ z ]).Head
                close "autograd's ReLU'(0)" 0.0 autograd (torch.zeros_like autograd)
                // An Elman ReLU cell at θ = 0 has every pre-activation at exactly 0.
                let s = { spec with Input = 4; Hidden = 7 }
                let cell = Equations.cell (equationsNamed "elman-relu" s)
                let theta = torch.zeros([| int64 cell.ParameterCount |], dtype = torch.float64)
                let xs = torch.randn([| 3L; 2L; 4L |], dtype = torch.float64, generator = generator 1)
                let states = Recurrence.unroll cell theta xs (torch.zeros([| 2L; 7L |], dtype = torch.float64))
                let derived = Bptt.jacobians cell theta xs states
                let auto = Bptt.jacobiansByAutodiff cell theta xs states
                close "b_t at a = 0" 0.0 derived.Parameters auto.Parameters
                close "c_t at a = 0" 0.0 derived.State auto.State
            }
            property "the input projection for all steps at once, then the projected step, is the transition" (fun s ->
                use _ = torch.NewDisposeScope()
                for make in (cellNames |> List.map equationsNamed) @ [ moduleEquations; (fun s -> peepholeLstmOf s) ] do
                    let cell = Equations.cell (make s)
                    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
                    let project, projected = cell.InputProjection.Value, cell.ProjectedTransition.Value
                    let px = project case.Theta case.Inputs // [T; B; G], every step at once
                    let step = projected case.Theta
                    let plain = Compile.transition (Derive.derive (make s)).Graph (make s).Layout case.Theta
                    let mutable a, b = case.InitialState, case.InitialState
                    for t in 0L .. int64 s.Steps - 1L do
                        a <- step px[t] a
                        b <- plain case.Inputs[t] b
                    close $"{cell.Name}, {s}" exact a b) // a trajectory: rounding grows with T (exploding regime)
            property "b_t from the structured terms = the dense b_t" (fun s ->
                use _ = torch.NewDisposeScope()
                for name in cellNames do
                    let cell = Equations.cell (equationsNamed name s)
                    let case = Verify.randomCase cell torch.float64 s.Regime 1 s.Batch (generator s.Seed)
                    let x, s0 = case.Inputs[0L], case.InitialState
                    let dense = cell.Jacobians.Value case.Theta x s0
                    let st = cell.StructuredJacobians.Value case.Theta x s0
                    close $"{name} c_t" 0.0 st.State dense.State
                    let b = torch.zeros_like dense.Parameters
                    for term in st.Parameters do
                        let piece = Compile.Jacobians.Outer term
                        b.narrow(2L, term.Offset, term.Count).add_ piece |> ignore
                    close $"{name} b_t" 0.0 b dense.Parameters)
        ]

        testList "user cells written as equations get every route with no hand-written Jacobian" [
            for name, make in userCells do
                yield property $"{name}: c_t, b_t = autodiff's and (a) recurrence = (b) closed form = (c) autodiff" (fun s ->
                    CellsTests.identityProperty (fun s -> Equations.cell (make s.Input s.Hidden)) s)
                yield property $"{name}: the closed form = central finite differences" (fun s ->
                    use _ = torch.NewDisposeScope()
                    let cell = Equations.cell (make s.Input s.Hidden)
                    let g = generator s.Seed
                    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch g
                    let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
                    let closed = Bptt.byClosedForm (Bptt.jacobians cell case.Theta case.Inputs states)
                    finiteDifferences cell case closed g $"{name}, {s}")
                yield property $"{name}: ∂L/∂θ in closed form = autograd and finite differences" (fun s ->
                    BpttTests.lossGradientProperty CrossEntropy (fun s -> Equations.cell (make s.Input s.Hidden)) s)
                yield test $"{name}: truncation to τ = T is the closed form, τ = 1 is b_t" {
                    use _ = torch.NewDisposeScope()
                    let cell = Equations.cell (make spec.Input spec.Hidden)
                    let case = Verify.randomCase cell torch.float64 Moderate spec.Steps spec.Batch (generator 8)
                    let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
                    let j = Bptt.jacobians cell case.Theta case.Inputs states
                    close "τ = T" exact (Bptt.byTruncatedSum spec.Steps j) (Bptt.byClosedForm j)
                    close "τ = 1" 0.0 (Bptt.byTruncatedSum 1 j) j.Parameters
                }
        ]

        testList "bad equations are refused when the cell is built, saying what and where" [
            test "an undeclared block names the block and the declared ones" {
                let L = ParameterLayout [ "W", [ 7L; 4L ] ]
                let eq = Equations.create "bad" 4 [ "h", 7 ] L [ "h", Expr.tanh (Block.named "W" * Expr.input + Block.named "W_q" * Expr.previous "h") ]
                let name, msg = message (fun () -> Equations.cell eq)
                Expect.equal name "equations" "the argument"
                Expect.stringContains msg "undeclared parameter block 'W_q'" "the block"
                Expect.stringContains msg "declares W" "the declared blocks"
            }
            test "a matrix–vector product of mismatched sizes names the sub-expression and both shapes" {
                let L = ParameterLayout [ "W", [ 7L; 4L ] ]
                let eq = Equations.create "bad" 4 [ "h", 7 ] L [ "h", Expr.tanh (Block.named "W" * Expr.previous "h") ]
                let _, msg = message (fun () -> Equations.derive eq)
                Expect.stringContains msg "W h_(t−1)" "the sub-expression"
                Expect.stringContains msg "[7; 4]" "the matrix's shape"
                Expect.stringContains msg "[7]" "the vector's shape"
            }
            test "a Hadamard product of mismatched sizes names both sides" {
                let L = ParameterLayout [ "W", [ 7L; 4L ] ]
                let eq = Equations.create "bad" 4 [ "h", 7 ] L [ "h", Block.named "W" * Expr.input * Expr.input ]
                let _, msg = message (fun () -> Equations.cell eq)
                Expect.stringContains msg "'W x_t' is [7] but 'x_t' is [4]" "both sides and shapes"
            }
            test "a nonlinearity the rules do not know: use the autodiff route, which works" {
                use _ = torch.NewDisposeScope()
                let softplus = ElementwiseFunction("softplus", (fun t -> torch.nn.functional.softplus t), None)
                let L = ParameterLayout [ "W", [ 7L; 4L ]; "U", [ 7L; 7L ] ]
                let eq = Equations.create "soft" 4 [ "h", 7 ] L [ "h", Expr.map softplus (Block.named "W" * Expr.input + Block.named "U" * Expr.previous "h") ]
                let _, msg = message (fun () -> Equations.cell eq)
                Expect.stringContains msg "'softplus' is not differentiable by the rules; give Jacobians" "what to do"
                Expect.stringContains msg "use the autodiff route" "the other way"
                let cell = Equations.autodiffCell eq
                Expect.isNone cell.Jacobians "no derived Jacobians"
                let case = Verify.randomCase cell torch.float64 Moderate 3 1 (generator 2)
                let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
                close "autodiff route: recurrence over autodiff c_t, b_t = reverse mode" exact
                    (Bptt.byRecurrence (Bptt.jacobiansByAutodiff cell case.Theta case.Inputs states)) (Bptt.byAutodiff cell case.Theta case.Inputs case.InitialState)
            }
            test "a function with its derivative given is differentiated by the rules" {
                use _ = torch.NewDisposeScope()
                let softplus = ElementwiseFunction("softplus", (fun t -> torch.nn.functional.softplus t), Some(fun t -> t.sigmoid ()))
                let L = ParameterLayout [ "W", [ 7L; 4L ]; "U", [ 7L; 7L ] ]
                let eq = Equations.create "soft" 4 [ "h", 7 ] L [ "h", Expr.map softplus (Block.named "W" * Expr.input + Block.named "U" * Expr.previous "h") ]
                CellsTests.identityProperty (fun _ -> Equations.cell eq) { spec with Input = 4; Hidden = 7 }
            }
            test "a state that never feeds back is a warning, not an error, and its identity holds" {
                use _ = torch.NewDisposeScope()
                let L = ParameterLayout [ "W", [ 7L; 4L ]; "b", [ 7L ] ]
                let eq = Equations.create "feedforward" 4 [ "h", 7 ] L [ "h", Expr.tanh (Block.named "W" * Expr.input + Expr.vector "b") ]
                let d = Equations.derive eq
                Expect.exists d.Warnings (fun w -> w.Contains "never feeds back" && w.Contains "c_t ≡ 0") $"a warning: {d.Warnings}"
                CellsTests.identityProperty (fun _ -> Equations.cellOf d) spec
            }
            test "an unused parameter block is a warning" {
                let L = ParameterLayout [ "W", [ 7L; 4L ]; "U", [ 7L; 7L ]; "spare", [ 3L ] ]
                let eq = Equations.create "spare" 4 [ "h", 7 ] L [ "h", Expr.tanh (Block.named "W" * Expr.input + Block.named "U" * Expr.previous "h") ]
                Expect.exists (Equations.derive eq).Warnings (fun w -> w.Contains "'spare' is not used") "the block"
            }
            test "a state part without an update, an update of no part, and an update of the wrong size" {
                let L = ParameterLayout [ "W", [ 7L; 4L ] ]
                let W = Block.named "W"
                let _, missing = message (fun () -> Equations.derive (Equations.create "bad" 4 [ "h", 7; "c", 7 ] L [ "h", W * Expr.input ]))
                Expect.stringContains missing "'c' has no update" "missing update"
                let _, unknown = message (fun () -> Equations.derive (Equations.create "bad" 4 [ "h", 7 ] L [ "h", W * Expr.input; "q", W * Expr.input ]))
                Expect.stringContains unknown "'q', which is not a state part" "unknown part"
                let _, size = message (fun () -> Equations.derive (Equations.create "bad" 4 [ "h", 4 ] L [ "h", W * Expr.input ]))
                Expect.stringContains size "is [7], but the part is [4]" "wrong size"
                let _, prev = message (fun () -> Equations.derive (Equations.create "bad" 4 [ "h", 7 ] L [ "h", W * Expr.input + Expr.previous "c" ]))
                Expect.stringContains prev "reads the state part 'c'" "unknown previous part"
            }
        ]

        testList "rendering" [
            test "Elman: c_t, b_t and the identity in the cell's own terms (Unicode)" {
                let text = Derivation.text (Equations.derive (Cells.Elman.equations Cells.Tanh 5 7))
                Expect.stringContains text "a_t = W x_t + b_ih + U h_(t−1) + b_hh" "the equations"
                Expect.stringContains text "∂h_t/∂h_(t−1) = diag(1 − h_t²) U" "c_t"
                Expect.stringContains text "b_t dθ = diag(1 − h_t²) (dW x_t + dU h_(t−1) + db_ih + db_hh)" "b_t as a differential"
                Expect.stringContains text "∂h_3/∂θ = b_3 + c_3 b_2 + c_3 c_2 b_1" "the identity at t = 3"
                Expect.stringContains text "∂h_3/∂θ = b_3 + diag(1 − h_3²) U b_2 + diag(1 − h_3²) U diag(1 − h_2²) U b_1" "with the cell's terms"
            }
            test "LSTM in LaTeX: ⊙ as \\odot, σ as \\sigma, the state Jacobian renamed since c is the memory" {
                let latex = Derivation.latex (Equations.derive (Cells.Lstm.equations 5 7))
                Expect.stringContains latex "c_{t} &= f_{t} \\odot c_{t-1} + i_{t} \\odot \\tilde{c}_{t}" "the memory"
                Expect.stringContains latex "\\frac{\\partial c_{t}}{\\partial c_{t-1}} &= \\mathrm{diag}\\left(f_{t}\\right)" "a block of c_t"
                Expect.stringContains latex "\\mathcal{C}_{3}\\, \\mathcal{C}_{2}\\, \\mathcal{B}_{1}" "the identity"
            }
            test "the markdown section writes sizes with their names" {
                let md = Derivation.markdown "LSTM" "" [ "I", 5; "H", 7 ] (Equations.derive (Cells.Lstm.equations 5 7))
                Expect.stringStarts md "## LSTM\n" "the heading"
                Expect.stringContains md "| `weight_ih` | $[4H; I]$ | $0..H$: $W_{i}$, $H..2H$: $W_{f}$" "the layout"
            }
        ]
    ]
