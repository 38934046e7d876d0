/// Every built-in cell: its hand-derived Jacobians against autodiff, the three routes to
/// ∂h_t/∂θ against each other, and the PyTorch-form cells against TorchSharp's fused modules.
module SeqNets.Tests.CellsTests

open System
open Expecto
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

/// c_t, b_t = autodiff's; (a) recurrence = (b) closed form = (c) autodiff, all to 1e-9 relative.
let identityProperty (makeCell: CaseSpec -> Cell) (s: CaseSpec) =
    use _ = torch.NewDisposeScope()
    let cell = makeCell s
    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
    let r = Verify.identity cell case
    let check what err =
        if not (err <= exact) then failtest $"{cell.Name}, {s}: {what} relative error {err:E3} > {exact:E1} (|∂h/∂θ| up to {r.Magnitude:E2})"
    check "c_t vs autodiff" r.StateJacobianError
    check "b_t vs autodiff" r.ParameterJacobianError
    check "(a) recurrence vs (b) closed form" r.RecurrenceVsClosedForm
    check "(b) closed form vs (c) autodiff" r.ClosedFormVsAutodiff

/// Copies a cell's θ into a TorchSharp recurrent module (PyTorch's names, layer 0).
let loadInto (cell: Cell) (theta: torch.Tensor) (m: torch.nn.Module) =
    use _ = torch.no_grad ()
    for struct (name, p) in m.named_parameters () do
        let block = name.Replace("_l0", "")
        p.copy_ (cell.Layout.View(theta, block)) |> ignore

let private torchParity (makeModule: CaseSpec -> torch.nn.Module) (run: torch.nn.Module -> torch.Tensor -> torch.Tensor -> torch.Tensor) (makeCell: CaseSpec -> Cell) (s: CaseSpec) =
    use _ = torch.NewDisposeScope()
    let cell = makeCell s
    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
    let m = makeModule s
    loadInto cell case.Theta m
    let ours = Recurrence.outputs cell (Recurrence.unroll cell case.Theta case.Inputs case.InitialState) // [T; B; H]
    let theirs = run m case.Inputs case.InitialState
    close $"{cell.Name} vs TorchSharp, {s}" 1e-12 ours theirs

let private f64 = Nullable<torch.ScalarType> torch.float64

[<Tests>]
let tests =
    testList "Cells" [
        testList "closed-form BPTT identity equals autodiff" [
            for name in cellNames -> property $"{name}: c_t, b_t and (a) = (b) = (c)" (identityProperty (cellNamed name))
        ]

        testList "PyTorch-form cells equal TorchSharp's fused modules" [
            property "elman-tanh = nn.RNN(tanh)" (torchParity
                (fun s -> torch.nn.RNN(int64 s.Input, int64 s.Hidden, nonLinearity = torch.nn.NonLinearities.Tanh, dtype = f64))
                (fun m xs s0 -> let struct (y, _) = (m :?> Modules.RNN).forward(xs, s0.unsqueeze 0L) in y)
                (cellNamed "elman-tanh"))
            property "elman-relu = nn.RNN(relu)" (torchParity
                (fun s -> torch.nn.RNN(int64 s.Input, int64 s.Hidden, nonLinearity = torch.nn.NonLinearities.ReLU, dtype = f64))
                (fun m xs s0 -> let struct (y, _) = (m :?> Modules.RNN).forward(xs, s0.unsqueeze 0L) in y)
                (cellNamed "elman-relu"))
            property "gru-pytorch = nn.GRU" (torchParity
                (fun s -> torch.nn.GRU(int64 s.Input, int64 s.Hidden, dtype = f64))
                (fun m xs s0 -> let struct (y, _) = (m :?> Modules.GRU).forward(xs, s0.unsqueeze 0L) in y)
                (cellNamed "gru-pytorch"))
            property "lstm = nn.LSTM" (torchParity
                (fun s -> torch.nn.LSTM(int64 s.Input, int64 s.Hidden, dtype = f64))
                (fun m xs s0 ->
                    let H = s0.shape[1] / 2L
                    let h0, c0 = s0.narrow(1L, 0L, H).unsqueeze 0L, s0.narrow(1L, H, H).unsqueeze 0L
                    let struct (y, _, _) = (m :?> Modules.LSTM).forward(xs, Nullable<struct (torch.Tensor * torch.Tensor)>(struct (h0, c0)))
                    y)
                (cellNamed "lstm"))
        ]

        test "the two GRU forms share θ but differ where the reset gate acts" {
            use _ = torch.NewDisposeScope()
            let lecture, pytorch = Cells.Gru.create Cells.Lecture 4 7, Cells.Gru.create Cells.PyTorch 4 7
            let case = Verify.randomCase lecture torch.float64 Moderate 5 2 (generator 3)
            let run cell = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
            Expect.equal lecture.ParameterCount pytorch.ParameterCount "one layout"
            Expect.isGreaterThan (Tensors.relativeError (run lecture) (run pytorch)) 1e-3 "different functions"
        }

        test "the multiplicative module computes w_ij = u_ijᵀ z, s = W x" {
            use _ = torch.NewDisposeScope()
            let g = generator 5
            let U = torch.randn([| 3L; 4L; 2L |], dtype = torch.float64, generator = g) // [m; n; d]
            let x = torch.randn([| 5L; 4L |], dtype = torch.float64, generator = g) // [B; n]
            let z = torch.randn([| 5L; 2L |], dtype = torch.float64, generator = g) // [B; d]
            let s = Cells.Multiplicative.apply U x z
            for b in 0L .. 4L do
                let W = torch.zeros([| 3L; 4L |], dtype = torch.float64)
                for i in 0L .. 2L do
                    for j in 0L .. 3L do
                        W[i, j] <- (U[i, j] * z[b]).sum ()
                close $"row {b}" 1e-14 s[b] (W.matmul x[b])
        }

        test "the multiplicative RNN's transition matrix is W_hf diag(W_fx x) W_fh" {
            use _ = torch.NewDisposeScope()
            let cell = Cells.MultiplicativeRnn.create 4 7 9
            let case = Verify.randomCase cell torch.float64 Moderate 1 1 (generator 11)
            let L = cell.Layout
            let v name = L.View(case.Theta, name)
            let x, h = case.Inputs[0L], case.InitialState
            let Whh = v("W_hf").matmul(torch.diag((v("W_fx").matmul(x[0L])))).matmul (v "W_fh") // [H; H]
            let expected = (v("W_hx").matmul(x[0L]) + Whh.matmul(h[0L]) + v "b_h").tanh ()
            let _, next = Cell.step cell case.Theta x h
            close "one step" 1e-14 next[0L] expected
        }
    ]
