"""The PyTorch peer of bench/SeqNets.Bench: the same character model, data, batching, optimizer
and measurements, with PyTorch's fused nn.LSTM / nn.GRU. Prints one JSON line.

Run with Debian's PyTorch and OpenBLAS (see docs/benchmarks.md):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_charlm.py \
      --text ../shared/data/tinyshakespeare.txt --cell lstm --hidden 256 --layers 1
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def sgemm_gflops(n=1024, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


class CharModel(nn.Module):
    def __init__(self, kind, vocab, hidden, layers):
        super().__init__()
        self.vocab = vocab
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = rnn(vocab, hidden, layers)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids, state):
        x = F.one_hot(ids, self.vocab).float()  # [T; B; V]
        h, state = self.rnn(x, state)
        return self.out(h), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def batches(ids, B, T):
    per = (len(ids) - 1) // B
    streams = torch.tensor([ids[b * per: b * per + per + 1] for b in range(B)]).t()  # [L+1; B]
    for k in range(per // T):
        yield streams[k * T: k * T + T], streams[k * T + 1: k * T + T + 1]


def evaluate(model, ids, B, T, max_batches=20):
    with torch.no_grad():
        state, total, n = None, 0.0, 0
        for x, y in batches(ids, B, T):
            logits, state = model(x, state)
            total += F.cross_entropy(logits.reshape(-1, model.vocab), y.reshape(-1)).item()
            n += 1
            if n == max_batches:
                break
        return total / n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--text", required=True)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--timed-steps", type=int, default=50)
    p.add_argument("--loss-steps", type=int, default=1500)
    p.add_argument("--sample-chars", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = open(a.text).read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in text]
    n = int(len(ids) * 0.9)
    train, val = ids[:n], ids[n:]
    model = CharModel(a.cell, len(chars), a.hidden, a.layers)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)

    def step(x, y, state):
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, model.vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        return loss.item(), detach(state)

    def stream():
        while True:
            yield from batches(train, a.batch, a.seq)

    data = stream()
    state = None
    for _ in range(5):  # warm-up
        x, y = next(data)
        _, state = step(x, y, state)
    t = time.perf_counter()
    for _ in range(a.timed_steps):
        x, y = next(data)
        _, state = step(x, y, state)
    train_rate = a.timed_steps * a.batch * a.seq / (time.perf_counter() - t)

    # Sampling at batch 1, one character at a time, after a warm-up of twice the length (as the
    # SeqNets side, whose JIT reaches its optimised code after a few thousand characters).
    def sample(n):
        with torch.no_grad():
            s, c = None, torch.tensor([[0]])
            g = torch.Generator().manual_seed(a.seed)
            for _ in range(n):
                logits, s = model(c, s)
                probs = F.softmax(logits[-1, 0] / 0.8, dim=-1)
                c = torch.multinomial(probs, 1, generator=g).view(1, 1)
    sample(2 * a.sample_chars)
    t = time.perf_counter()
    sample(a.sample_chars)
    sample_rate = a.sample_chars / (time.perf_counter() - t)

    val_loss = None
    if a.loss_steps > 0:
        torch.manual_seed(a.seed)
        model = CharModel(a.cell, len(chars), a.hidden, a.layers)
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        data, state = stream(), None
        for _ in range(a.loss_steps):
            x, y = next(data)
            _, state = step(x, y, state)
        val_loss = evaluate(model, val, a.batch, a.seq)

    print(json.dumps({"system": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
                      "sgemm_gflops": round(sgemm_gflops(), 1), "cell": a.cell, "hidden": a.hidden, "layers": a.layers,
                      "train_chars_per_s": round(train_rate), "sample_chars_per_s": round(sample_rate),
                      "val_loss": val_loss}))


if __name__ == "__main__":
    main()
