/// `seqnets derive <cell>`: a built-in cell's equations, its c_t and b_t derived by rules and the
/// unrolled identity for t = 1, 2, 3, as Unicode text, LaTeX or a Markdown section (the sections
/// of docs/derivations.md are this command's output).
module SeqNets.Cli.DeriveCommand

open System
open SeqNets

/// Sizes with names that divide the page's shapes unambiguously (28 is 4H with H = 7).
let private I, H, F = 5, 7, 11
let private sizes = [ "I", I; "H", H; "F", F ]

/// name → (title, intro, equations).
let cells: (string * (string * string * CellEquations)) list =
    [ "elman-tanh",
      ("Elman (tanh)", "`Cells.Elman.equations Tanh I H`, the cell of `Cells.Elman.create Tanh I H` (PyTorch's `nn.RNN` layout).",
       Cells.Elman.equations Cells.Tanh I H)
      "elman-relu",
      ("Elman (ReLU)", "`Cells.Elman.equations Relu I H`, the cell of `Cells.Elman.create Relu I H`. $\\mathbb{1}[a > 0]$ is ReLU's derivative, 0 at $a = 0$ as in libtorch's autograd.",
       Cells.Elman.equations Cells.Relu I H)
      "gru-lecture",
      ("GRU, the lecture's form", "`Cells.Gru.equations Lecture I H` (Cho 2014: the reset gate acts on $h_{t-1}$ before $U_n$), the cell of `Cells.Gru.create Lecture I H`, in PyTorch's `nn.GRU` layout (gate rows $r, z, n$).",
       Cells.Gru.equations Cells.Lecture I H)
      "gru-pytorch",
      ("GRU, PyTorch's form", "`Cells.Gru.equations PyTorch I H` (the reset gate acts on $U_n h_{t-1} + b_{hn}$), the cell of `Cells.Gru.create PyTorch I H` and of `nn.GRU`.",
       Cells.Gru.equations Cells.PyTorch I H)
      "lstm",
      ("LSTM", "`Cells.Lstm.equations I H`, the cell of `Cells.Lstm.create I H` and of `nn.LSTM` (gate rows $i, f, g, o$; the $g$ rows are written $W_c, U_c$ and their candidate $\\tilde{c}_t$). Here $c_t$ is the memory, so the state Jacobian is written $\\mathcal{C}_t$ and the parameter Jacobian $\\mathcal{B}_t$.",
       Cells.Lstm.equations I H)
      "mrnn",
      ("Multiplicative RNN", "`Cells.MultiplicativeRnn.equations I H F` (Sutskever, Martens & Hinton 2011), the cell of `Cells.MultiplicativeRnn.create I H F`: the hidden-to-hidden matrix $W_{hf}\\,\\mathrm{diag}(W_{fx} x_t)\\,W_{fh}$ depends on the input through $F$ factors ($f_t$ is the factor vector, not a forget gate).",
       Cells.MultiplicativeRnn.equations I H F)
      "multiplicative-module",
      ("The multiplicative module as a cell", "`Cells.Multiplicative.equations I H`: the lecture's module $s = W(z)\\,x$, $w_{ij} = u_{ij}^\\top z$, with $z = x_t$ and $x = h_{t-1}$; $U(x_t)$ is the matrix $\\sum_k U_{:,:,k}\\, x_{t,k}$ and $U(\\cdot)\\,h_{t-1}$ the matrix $\\sum_j U_{:,j,:}\\, h_{t-1,j}$.",
       Cells.Multiplicative.equations I H) ]

/// Prints the derivation of the cell called name: Unicode text, LaTeX or a Markdown section.
let run (name: string) (latex: bool) (markdown: bool) : int =
    let key = if name = "gru" then "gru-pytorch" else name
    match cells |> List.tryFind (fun (n, _) -> n = key) with
    | None ->
        let known = String.Join(", ", cells |> List.map fst)
        raise (ArgumentException($"cell: expected one of {known}, but got '{name}'.", "cell"))
    | Some(_, (title, intro, equations)) ->
        let d = Equations.derive equations
        let text =
            if markdown then Derivation.markdown title intro sizes d
            elif latex then Derivation.latex d
            else Derivation.text d
        let stdout = Console.OpenStandardOutput()
        let bytes = Text.UTF8Encoding(false).GetBytes(text)
        stdout.Write(bytes, 0, bytes.Length)
        stdout.Flush()
        0
