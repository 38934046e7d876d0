"""The PyTorch peer of `SeqNets.Bench --mode sweep`: the whole ∂h_T/∂θ of one cell over one
sequence by torch.autograd.functional.jacobian (reverse mode, one backward pass per output, or
vectorised), float64, the cell's equations written over one flat θ in PyTorch's layout. Prints one
JSON line with the median and best times of each variant.

With --load DIR it reads the case SeqNets wrote there (theta.bin, xs.bin, s0.bin: raw float64,
and its closed-form result dhdtheta.bin [H; P]) and reports how far PyTorch's Jacobian is from it.

  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_jacobian.py \
      --cell lstm --input 16 --hidden 32 --steps 128
"""
import argparse, json, os, statistics, time
import torch


def views(theta, blocks):
    out, at = {}, 0
    for name, shape in blocks:
        n = 1
        for d in shape:
            n *= d
        out[name] = theta[at:at + n].view(*shape)
        at += n
    return out


def recurrent_blocks(gates, I, H):
    return [("weight_ih", (gates * H, I)), ("weight_hh", (gates * H, H)), ("bias_ih", (gates * H,)), ("bias_hh", (gates * H,))]


def make(cell, I, H):
    """(P, S, step(θ views, x [I], s [S]) -> s', blocks)."""
    if cell in ("elman-tanh", "elman-relu"):
        blocks = recurrent_blocks(1, I, H)
        phi = torch.tanh if cell == "elman-tanh" else torch.relu

        def step(v, x, s):
            return phi(v["weight_ih"] @ x + v["bias_ih"] + v["weight_hh"] @ s + v["bias_hh"])
        return blocks, H, step
    if cell in ("gru-pytorch", "gru-lecture"):
        blocks = recurrent_blocks(3, I, H)

        def step(v, x, h):
            W, U, bi, bh = v["weight_ih"], v["weight_hh"], v["bias_ih"], v["bias_hh"]
            gi = W @ x + bi
            r = torch.sigmoid(gi[:H] + U[:H] @ h + bh[:H])
            z = torch.sigmoid(gi[H:2 * H] + U[H:2 * H] @ h + bh[H:2 * H])
            if cell == "gru-pytorch":
                n = torch.tanh(gi[2 * H:] + r * (U[2 * H:] @ h + bh[2 * H:]))
            else:
                n = torch.tanh(gi[2 * H:] + U[2 * H:] @ (r * h) + bh[2 * H:])
            return z * h + (1 - z) * n
        return blocks, H, step
    if cell == "lstm":
        blocks = recurrent_blocks(4, I, H)

        def step(v, x, s):
            h, c = s[:H], s[H:]
            pre = v["weight_ih"] @ x + v["bias_ih"] + v["weight_hh"] @ h + v["bias_hh"]
            i, f, g, o = torch.sigmoid(pre[:H]), torch.sigmoid(pre[H:2 * H]), torch.tanh(pre[2 * H:3 * H]), torch.sigmoid(pre[3 * H:])
            c = f * c + i * g
            return torch.cat([o * torch.tanh(c), c])
        return blocks, 2 * H, step
    if cell == "mrnn":
        F = H + 1
        blocks = [("W_hx", (H, I)), ("W_fx", (F, I)), ("W_fh", (F, H)), ("W_hf", (H, F)), ("b_h", (H,))]

        def step(v, x, h):
            f = v["W_fx"] @ x
            return torch.tanh(v["W_hx"] @ x + v["W_hf"] @ (f * (v["W_fh"] @ h)) + v["b_h"])
        return blocks, H, step
    raise SystemExit(f"unknown cell {cell}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cell", default="lstm")
    p.add_argument("--input", type=int, default=16)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--load", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    I, H, T = a.input, a.hidden, a.steps
    blocks, S, step = make(a.cell, I, H)
    P = sum(torch.Size(shape).numel() for _, shape in blocks)
    if a.load:
        read = lambda name, *shape: torch.from_numpy(__import__("numpy").fromfile(os.path.join(a.load, name), dtype="<f8")).view(*shape)
        theta, xs, s0 = read("theta.bin", P), read("xs.bin", T, I), read("s0.bin", S)
        ours = read("dhdtheta.bin", H, P)
    else:
        g = torch.Generator().manual_seed(1)
        theta = (torch.rand(P, generator=g, dtype=torch.float64) * 2 - 1) / H ** 0.5
        xs = torch.randn(T, I, generator=g, dtype=torch.float64)
        s0 = torch.randn(S, generator=g, dtype=torch.float64) * 0.5
        ours = None

    def h_T(th):
        v = views(th, blocks)
        s = s0
        for t in range(T):
            s = step(v, xs[t], s)
        return s[:H]

    result = {"system": "pytorch", "version": torch.__version__, "mode": "sweep", "cell": a.cell,
              "input": I, "hidden": H, "steps": T, "parameters": P, "threads": torch.get_num_threads()}
    for vectorize in (False, True):
        times, jac = [], None
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            jac = torch.autograd.functional.jacobian(h_T, theta, vectorize=vectorize)  # [H; P]
            times.append(time.perf_counter() - t0)
        key = "vectorized" if vectorize else "jacobian"
        result[key + "_s"] = round(statistics.median(times), 4)
        result[key + "_best_s"] = round(min(times), 4)
        if ours is not None:
            result[key + "_vs_seqnets"] = float((jac - ours).abs().max() / ours.abs().max())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
