/// The derivative helpers against analytic derivatives (float64, explicit tolerances).
module SeqNets.FSharp.Tests.ADTests

open Expecto
open TorchSharp
open SeqNets
open SeqNets.FSharp
open SeqNets.FSharp.Tests.Common

/// f(x) = Σ (a ⊙ x³ + sin x): ∇f = 3 a ⊙ x² + cos x, ∇²f = diag(6 a ⊙ x − sin x).
let cubic (a: Tensor) (x: Tensor) = (a * x.pow(3.0.ToScalar()) + x.sin ()).sum ()

/// g(x) = A tanh x for A [m; n]: J = A diag(1 − tanh² x).
let tanhMap (A: Tensor) (x: Tensor) = A.matmul (x.tanh ())

let tanhJacobian (A: Tensor) (x: Tensor) = A * (1.0 - x.tanh().square ()).unsqueeze 0L // [m; n]

[<Tests>]
let tests =
    testList "Derivative helpers" [
        testList "against analytic derivatives" [
            property "grad of Σ (a x³ + sin x) is 3 a x² + cos x" (fun s ->
                let a, x = randn s.Seed [| int64 s.N |], randn (s.Seed + 1) [| int64 s.N |]
                close "∇f" exact (AD.grad (cubic a) x) (3.0 * a * x.square () + x.cos ()))

            property "gradv is the directional derivative ∇f · v" (fun s ->
                let a, x, v = randn s.Seed [| int64 s.N |], randn (s.Seed + 1) [| int64 s.N |], randn (s.Seed + 2) [| int64 s.N |]
                let expected = ((3.0 * a * x.square () + x.cos ()) * v).sum ()
                close "∇f · v" exact (AD.gradv (cubic a) x v) expected)

            property "the Jacobian of A tanh x is A diag(1 − tanh² x), built by rows (m < n) or by columns (m > n)" (fun s ->
                let A, x = randn s.Seed [| int64 s.M; int64 s.N |], randn (s.Seed + 1) [| int64 s.N |]
                close $"J [{s.M}; {s.N}]" exact (AD.jacobian (tanhMap A) x) (tanhJacobian A x))

            property "vjp is vᵀ J and jvp is J u" (fun s ->
                let A, x = randn s.Seed [| int64 s.M; int64 s.N |], randn (s.Seed + 1) [| int64 s.N |]
                let v, u = randn (s.Seed + 2) [| int64 s.M |], randn (s.Seed + 3) [| int64 s.N |]
                let J = tanhJacobian A x
                close "vᵀ J" exact (AD.vjp (tanhMap A) x v) (v.matmul J)
                close "J u" exact (AD.jvp (tanhMap A) x u) (J.matmul u))

            property "the Hessian of xᵀ A x is A + Aᵀ" (fun s ->
                let A, x = randn s.Seed [| int64 s.N; int64 s.N |], randn (s.Seed + 1) [| int64 s.N |]
                close "∇²(xᵀ A x)" exact (AD.hessian (fun x -> x.matmul(A).matmul x) x) (A + A.t ()))

            property "the Hessian of Σ (a x³ + sin x) is diag(6 a x − sin x)" (fun s ->
                let a, x = randn s.Seed [| int64 s.N |], randn (s.Seed + 1) [| int64 s.N |]
                close "∇²f" exact (AD.hessian (cubic a) x) (torch.diag (6.0 * a * x - x.sin ())))

            test "diff of sin is cos, and of x³ at 2 is 12" {
                let x = torch.tensor (0.7, dtype = torch.float64)
                close "sin'(0.7)" exact (AD.diff (fun x -> x.sin ()) x) (x.cos ())
                let d = AD.diff (fun x -> x.pow (3.0.ToScalar())) (torch.tensor (2.0, dtype = torch.float64))
                Expect.floatClose Accuracy.veryHigh (d.item<float> ()) 12.0 "(x³)' at 2"
            }

            test "the Jacobian of a matrix function has the output's shape, then the input's" {
                let x = randn 7 [| 2L; 3L |]
                let J = AD.jacobian (fun x -> x.exp().sum(1L)) x // [2] from [2; 3]
                Expect.sequenceEqual J.shape [| 2L; 2L; 3L |] "[2] @ [2; 3]"
                let expected = torch.stack([| for i in 0L .. 1L -> torch.zeros_like(x).index_put_(x.exp()[i], torch.TensorIndex.Single i) |], 0L)
                close "∂(Σ_j exp x_ij)/∂x" exact J expected
            }

            test "the identity's Jacobian is I and its jvp returns the direction" {
                let x, u = randn 3 [| 4L |], randn 4 [| 4L |]
                close "J" 0.0 (AD.jacobian id x) (torch.eye(4L, dtype = torch.float64))
                close "J u" 0.0 (AD.jvp id x u) u
            }

            test "float32 works and keeps its dtype" {
                let x = torch.tensor ([| 0.5f; -1.0f; 2.0f |])
                let g = AD.grad (fun x -> x.square().sum ()) x
                Expect.equal g.dtype torch.float32 "float32 in, float32 out"
                close "2x" 1e-6 g (x * 2.0)
            }
        ]

        testList "inputs f does not use" [
            test "f that ignores x gives zero derivatives, even when its value requires grad" {
                let x = randn 1 [| 3L |]
                let w = (randn 2 [| 2L |]).requires_grad_ true
                for name, f in [ "constant", (fun (_: Tensor) -> torch.ones([| 2L |], dtype = torch.float64))
                                 "depends on another leaf", (fun (_: Tensor) -> w * w) ] do
                    let scalar x = (f x).sum ()
                    close $"{name}: grad" 0.0 (AD.grad scalar x) (torch.zeros_like x)
                    close $"{name}: jacobian" 0.0 (AD.jacobian f x) (torch.zeros(2L, 3L, dtype = torch.float64))
                    close $"{name}: jvp" 0.0 (AD.jvp f x x) (torch.zeros(2L, dtype = torch.float64))
                    close $"{name}: vjp" 0.0 (AD.vjp f x (torch.ones(2L, dtype = torch.float64))) (torch.zeros_like x)
                    close $"{name}: hessian" 0.0 (AD.hessian scalar x) (torch.zeros(3L, 3L, dtype = torch.float64))
            }

            test "f that uses part of x gives zeros for the rest" {
                let x = randn 5 [| 4L |]
                let g = AD.grad (fun x -> x[1L].square ()) x
                close "∂(x₁²)/∂x" 0.0 g (torch.zeros_like(x).index_put_(x[1L] * 2.0, torch.TensorIndex.Single 1L))
            }

            test "a linear f has a zero Hessian" {
                let x = randn 6 [| 3L |]
                close "∇²(Σ 2x)" 0.0 (AD.hessian (fun x -> (x * 2.0).sum ()) x) (torch.zeros(3L, 3L, dtype = torch.float64))
            }
        ]

        testList "graphs" [
            test "a second call on the same graph neither crashes nor changes the answer" {
                let w = (randn 8 [| 3L |]).requires_grad_ true
                let z = w.exp () // an outer graph every call of f reaches
                let f (x: Tensor) = (z * x.square ()).sum ()
                let x = randn 9 [| 3L |]
                let expected = 2.0 * z.detach () * x
                let first = AD.grad f x
                let second = AD.grad f x
                close "first call" exact first expected
                close "second call" 0.0 second first
                close "Jacobian of the gradient map, twice" 0.0 (AD.hessian f x) (AD.hessian f x)
                Expect.isTrue (isNull w.grad || w.grad.IsInvalid) "the outer leaf's .grad is left alone"
            }

            test "x is neither modified nor required to need grad" {
                let x = randn 10 [| 3L |]
                let before = x.clone ()
                AD.grad (fun x -> x.square().sum ()) x |> ignore
                Expect.isFalse x.requires_grad "x still needs no grad"
                close "x unchanged" 0.0 x before
                let y = (randn 11 [| 3L |]).requires_grad_ true
                let x2 = y * 2.0 // x inside someone else's graph
                close "∇ Σ x² = 2x" exact (AD.grad (fun x -> x.square().sum ()) x2) (x2.detach () * 2.0)
            }

            test "results are detached" {
                let x = randn 12 [| 3L |]
                Expect.isFalse (AD.grad (cubic x) x).requires_grad "grad"
                Expect.isFalse (AD.jvp (tanhMap (randn 13 [| 2L; 3L |])) x x).requires_grad "jvp"
                Expect.isFalse (AD.hessian (cubic x) x).requires_grad "hessian"
            }
        ]

        testList "bad arguments" [
            test "a vector-valued f for grad, diff or hessian names f" {
                let x = randn 1 [| 3L |]
                throwsArg "f" (fun () -> AD.grad (fun x -> x.sin ()) x)
                throwsArg "f" (fun () -> AD.hessian (fun x -> x.sin ()) x)
                throwsArg "f" (fun () -> AD.grad (fun _ -> null) x)
            }
            test "a direction of the wrong shape or dtype names v" {
                let x = randn 1 [| 3L |]
                throwsArg "v" (fun () -> AD.vjp (fun x -> x.sin ()) x (randn 2 [| 4L |]))
                throwsArg "v" (fun () -> AD.jvp (fun x -> x.sin ()) x (randn 2 [| 2L |]))
                throwsArg "v" (fun () -> AD.gradv (fun x -> x.sum ()) x (torch.ones(3L, dtype = torch.float32)))
            }
            test "a non-float or non-scalar x names x" {
                throwsArg "x" (fun () -> AD.grad (fun x -> x.sum ()) (torch.ones(3L, dtype = torch.int64)))
                throwsArg "x" (fun () -> AD.diff (fun x -> x.sum ()) (randn 1 [| 2L |]))
            }
        ]
    ]
