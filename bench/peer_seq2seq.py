"""The PyTorch peer of `SeqNets.Bench --seq2seq`: the same attention seq2seq model, data, batching,
optimizer and measurements. Prints one JSON line.

Model (as SeqNets' Seq2Seq.spec with Luong attention, general score, input feeding): embeddings of E
for source and target tokens (15 each: <pad> <bos> <eos> a..l), a bidirectional LSTM encoder of H per
direction over packed sources, a projection bridge z = [h_fwd; c_fwd; h_bwd; c_bwd] ->
tanh(W z + b) = [h_0; c_0] of the decoder, an LSTM decoder cell fed [embedding; h~_{t-1}], attention
scores h_t^T W_a m_i over the encoder's outputs (padding masked), h~_t = tanh(W_c [ctx_t; h_t]), a
readout over the target tokens; cross-entropy over real target steps; Adam 2e-3, clipping by norm 5.

  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_seq2seq.py
"""
import argparse, json, random, time
import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_charlm import sgemm_gflops  # the same proof that the peer is not on reference BLAS

PAD, BOS, EOS = 0, 1, 2
V = 15  # <pad> <bos> <eos> and 12 letters


def pairs(rng, count):
    out = []
    for _ in range(count):
        n = rng.randint(5, 15)
        s = [3 + rng.randint(0, 11) for _ in range(n)]
        out.append((s, list(reversed(s))))
    return out


def batch(rows):
    src = [s for s, _ in rows]
    tgt = [t + [EOS] for _, t in rows]
    S, T, B = max(map(len, src)), max(map(len, tgt)), len(rows)
    x = torch.full((S, B), PAD, dtype=torch.long)
    y = torch.full((T, B), PAD, dtype=torch.long)
    for b, (s, t) in enumerate(zip(src, tgt)):
        x[: len(s), b] = torch.tensor(s)
        y[: len(t), b] = torch.tensor(t)
    return x, torch.tensor([len(s) for s in src]), y, torch.tensor([len(t) for t in tgt])


class Seq2Seq(nn.Module):
    def __init__(self, E, H):
        super().__init__()
        self.H = H
        self.src = nn.Embedding(V, E)
        self.enc = nn.LSTM(E, H, bidirectional=True)
        self.bridge = nn.Linear(4 * H, 2 * H)
        self.tgt = nn.Embedding(V, E)
        self.dec = nn.LSTMCell(E + H, H)
        self.W_a = nn.Linear(2 * H, H, bias=False)  # h^T W_a m
        self.W_c = nn.Linear(2 * H + H, H, bias=False)
        self.out = nn.Linear(H, V)

    def encode(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.src(x), lengths, enforce_sorted=False)
        m, (h, c) = self.enc(packed)
        m, _ = nn.utils.rnn.pad_packed_sequence(m, total_length=x.shape[0])  # [S; B; 2H]
        z = torch.cat([h[0], c[0], h[1], c[1]], -1)
        s0 = torch.tanh(self.bridge(z))
        mask = torch.arange(x.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)  # [S; B]
        return m.transpose(0, 1), mask.t(), (s0[:, : self.H].contiguous(), s0[:, self.H:].contiguous())

    def step(self, memory, keys, mask, state, h_tilde, token):
        h, c = self.dec(torch.cat([self.tgt(token), h_tilde], -1), state)
        e = torch.bmm(keys, h.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, float("-inf"))  # [B; S]
        alpha = torch.softmax(e, -1)
        ctx = torch.bmm(alpha.unsqueeze(1), memory).squeeze(1)
        h_tilde = torch.tanh(self.W_c(torch.cat([ctx, h], -1)))
        return self.out(h_tilde), (h, c), h_tilde, alpha

    def start(self, x, lengths):
        memory, mask, state = self.encode(x, lengths)
        keys = torch.matmul(memory, self.W_a.weight.t())  # W_a m_i: [B; S; H], so e_i = h^T W_a m_i
        return memory, keys, mask, state, torch.zeros(x.shape[1], self.H)

    def loss(self, x, lengths, y, ylengths):
        memory, keys, mask, state, h_tilde = self.start(x, lengths)
        T, B = y.shape
        inputs = torch.cat([torch.full((1, B), BOS, dtype=torch.long), y[:-1]], 0)
        logits = []
        for t in range(T):
            out, state, h_tilde, _ = self.step(memory, keys, mask, state, h_tilde, inputs[t])
            logits.append(out)
        logits = torch.stack(logits)  # [T; B; V]
        real = (torch.arange(T).unsqueeze(1) < ylengths.unsqueeze(0)).float()
        ce = F.cross_entropy(logits.reshape(T * B, V), y.reshape(T * B), reduction="none").reshape(T, B)
        return (ce * real).sum() / real.sum()

    @torch.no_grad()
    def greedy(self, x, lengths, max_length=17):
        memory, keys, mask, state, h_tilde = self.start(x, lengths)
        B = x.shape[1]
        token = torch.full((B,), BOS, dtype=torch.long)
        ended = torch.zeros(B, dtype=torch.bool)
        out = []
        for _ in range(max_length):
            logits, state, h_tilde, _ = self.step(memory, keys, mask, state, h_tilde, token)
            token = logits.argmax(-1)
            out.append(token)
            ended |= token == EOS
            if bool(ended.all()):
                break
        return torch.stack(out)

    @torch.no_grad()
    def beam(self, x, lengths, k, max_length=17):
        """Beam search row by row, as SeqNets' Heads.beam: the 2k best extensions, an <eos> among the
        best k finishes and leaves the beam, stop when k have finished; GNMT length normalisation."""
        results = []
        for b in range(x.shape[1]):
            n = int(lengths[b])
            memory, keys, mask, state, h_tilde = self.start(x[:n, b : b + 1], lengths[b : b + 1])
            expand = lambda t: t.expand(k, *t.shape[1:]).contiguous()
            memory, keys, mask = expand(memory), expand(keys), expand(mask)
            state, h_tilde = (expand(state[0]), expand(state[1])), expand(h_tilde)
            live = [([], 0.0)]
            finished = []
            for t in range(max_length):
                if not live or len(finished) >= k:
                    break
                last = torch.tensor([live[i][0][-1] if i < len(live) and live[i][0] else BOS for i in range(k)])
                logits, state, h_tilde, _ = self.step(memory, keys, mask, state, h_tilde, last)
                logp = torch.log_softmax(logits, -1)
                scores = torch.tensor([lp for _, lp in live]).unsqueeze(1) + logp[: len(live)]
                top, idx = scores.reshape(-1).topk(min(2 * k, scores.numel()))
                kept = []
                for rank, (score, j) in enumerate(zip(top.tolist(), idx.tolist())):
                    i, v = divmod(j, V)
                    tokens = live[i][0] + [v]
                    if v == EOS:
                        if rank < k and len(finished) < k:
                            finished.append((tokens, score / ((5 + len(tokens)) / 6) ** 0.6))
                    elif len(kept) < k:
                        kept.append((i, tokens, score))
                live = [(tokens, score) for _, tokens, score in kept]
                if live:
                    origin = torch.tensor([kept[min(i, len(kept) - 1)][0] for i in range(k)])
                    state = (state[0][origin], state[1][origin])
                    h_tilde = h_tilde[origin]
            results.append(max(finished, key=lambda f: f[1]) if finished else live[0])
        return results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--embedding", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--decode-rows", type=int, default=64)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Seq2Seq(a.embedding, a.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def train_step(k):
        x, xl, y, yl = batch(pairs(random.Random(a.seed * 7919 + k), a.batch))
        opt.zero_grad()
        loss = model.loss(x, xl, y, yl)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss.item()

    for k in range(5):
        train_step(k)  # warm-up
    t = time.perf_counter()
    for k in range(a.train_steps):
        loss = train_step(5 + k)
    train_time = time.perf_counter() - t
    x, xl, _, _ = batch(pairs(random.Random(a.seed + 99), a.decode_rows))
    model.greedy(x, xl)
    model.beam(x[:, :2], xl[:2], a.beam)
    greedy_time = min(timed(lambda: model.greedy(x, xl)) for _ in range(3))
    beam_time = timed(lambda: model.beam(x, xl, a.beam))
    print(json.dumps({"side": "pytorch", "torch": torch.__version__, "sgemm_gflops": round(sgemm_gflops(), 1),
                      "hidden": a.hidden, "embedding": a.embedding, "batch": a.batch, "beam": a.beam, "threads": a.threads,
                      "train_steps_per_s": round(a.train_steps / train_time, 4),
                      "greedy_rows_per_s": round(a.decode_rows / greedy_time, 4),
                      "beam_rows_per_s": round(a.decode_rows / beam_time, 4), "last_loss": round(loss, 4)}))


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
