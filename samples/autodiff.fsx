// The derivative helpers of SeqNets.FSharp on small functions, each checked against its
// derivative worked out by hand. The script exits with 1 if any disagrees.
//
//   AD.grad f x       ∇f(x)            AD.jacobian f x   ∂f/∂x
//   AD.gradv f x v    ∇f(x) · v        AD.jvp f x v      J v
//   AD.diff f x       f'(x)            AD.vjp f x v      vᵀ J
//   AD.hessian f x    ∇²f(x)
//
// Run from the repository root after `dotnet build SeqNets.slnx -c Release`:
//     dotnet fsi samples/autodiff.fsx
#r "../SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.FSharp.dll"

// Load libtorch before anything touches TorchSharp (TorchSharp remembers a failed start).
SeqNets.Native.ensure ()

open TorchSharp
open SeqNets
open SeqNets.FSharp

/// Largest relative disagreement allowed with the answer worked out by hand (float64).
let tolerance = 1e-12

let vec (xs: float list) = torch.tensor(Array.ofList xs, dtype = torch.float64)
let mat (rows: float list list) = torch.tensor(array2D rows, dtype = torch.float64)

let mutable failures = 0

/// Prints the helper's answer and its relative error against the analytic one.
let check (what: string) (actual: Tensor) (expected: Tensor) =
    let error =
        if actual.shape <> expected.shape then infinity else Tensors.relativeError actual expected
    let verdict = if error <= tolerance then "ok" else (failures <- failures + 1; "FAILED")
    printfn "%-44s %-52s %.1e %s" what (Show.tensor actual) error verdict

// Rosenbrock's function f(x, y) = (1 − x)² + 100 (y − x²)².
let rosenbrock (p: Tensor) =
    let x, y = p[0L], p[1L]
    (1.0 - x).square () + 100.0 * (y - x.square ()).square ()

let p = vec [ -0.5; 1.5 ]
let x, y = -0.5, 1.5
let v = vec [ 0.6; -0.8 ]

check "grad rosenbrock"
    (AD.grad rosenbrock p)
    (vec [ -2.0 * (1.0 - x) - 400.0 * x * (y - x * x); 200.0 * (y - x * x) ])
check "gradv rosenbrock along v"
    (AD.gradv rosenbrock p v)
    (torch.tensor((-2.0 * (1.0 - x) - 400.0 * x * (y - x * x)) * 0.6 + 200.0 * (y - x * x) * -0.8, dtype = torch.float64))
check "hessian rosenbrock"
    (AD.hessian rosenbrock p)
    (mat [ [ 2.0 - 400.0 * (y - x * x) + 800.0 * x * x; -400.0 * x ]; [ -400.0 * x; 200.0 ] ])

// Polar to Cartesian coordinates, (r, φ) ↦ (r cos φ, r sin φ).
let polar (q: Tensor) = torch.stack([| q[0L] * q[1L].cos (); q[0L] * q[1L].sin () |], 0L)
let r, phi = 2.0, 0.3
let q = vec [ r; phi ]
let J = mat [ [ cos phi; -r * sin phi ]; [ sin phi; r * cos phi ] ]
let u = vec [ 1.0; -2.0 ]

check "jacobian polar" (AD.jacobian polar q) J
check "jvp polar (J u)" (AD.jvp polar q u) (J.matmul u)
check "vjp polar (uᵀ J)" (AD.vjp polar q u) (u.matmul J)

// A map from 2 inputs to 3 outputs: the Jacobian is built column by column.
let lift (q: Tensor) = torch.stack([| q[0L] * q[1L]; q[0L].exp (); q[1L].square () |], 0L)
check "jacobian of (ab, eᵃ, b²), 3 × 2"
    (AD.jacobian lift q)
    (mat [ [ phi; r ]; [ exp r; 0.0 ]; [ 0.0; 2.0 * phi ] ])

// Scalar to scalar.
let t = torch.tensor(0.5, dtype = torch.float64)
check "diff tanh at 0.5" (AD.diff (fun t -> t.tanh ()) t) (torch.tensor(1.0 - tanh 0.5 ** 2.0, dtype = torch.float64))
check "diff t ↦ t sin t at 0.5" (AD.diff (fun t -> t * t.sin ()) t) (torch.tensor(sin 0.5 + 0.5 * cos 0.5, dtype = torch.float64))

// A function that ignores its input: zero derivatives rather than TorchSharp's native abort.
let w = (vec [ 1.0; 2.0 ]).requires_grad_ true
check "grad of a function of another leaf" (AD.grad (fun _ -> (w * w).sum ()) p) (vec [ 0.0; 0.0 ])
check "jvp of a constant" (AD.jvp (fun _ -> w * 3.0) p v) (vec [ 0.0; 0.0 ])

if failures > 0 then
    eprintfn "%d of the checks above disagree with the analytic answer by more than %g" failures tolerance
    exit 1
printfn "every helper agrees with the analytic answer within %g" tolerance
