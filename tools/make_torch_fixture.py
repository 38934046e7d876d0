"""Writes the PyTorch fixtures of the interop tests (tests/fixtures/torch/): small, seeded
nn.RNN / nn.GRU / nn.LSTM layers, one 2-layer LSTM character model, and 2-layer bidirectional LSTM and
GRU stacks run over a padded batch through pack_padded_sequence, each as a state dict
(torch.save(module.state_dict(), ...), zip format) plus an input sequence, an initial state and
PyTorch's outputs (a second .pt file holding a dict of float32 tensors).

Regenerate with Debian's PyTorch (see docs/interop.md):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 tools/make_torch_fixture.py

Check that a state dict written by SeqNets loads into the matching PyTorch module (strict keys
and shapes) and print its outputs on the fixture's inputs:
  ... tools/make_torch_fixture.py --check path/to/lstm.pt --kind lstm
  ... tools/make_torch_fixture.py --check path/to/model.pt --kind lstm --model
"""
import argparse, os
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "torch")

# Sizes, distinct so that a swapped axis cannot pass: time T, batch B, input I, hidden H.
T, B, I, H = 7, 2, 3, 5
# The character model: vocabulary V, hidden H, layers L, time T, batch B.
CM_V, CM_H, CM_L, CM_T, CM_B = 7, 6, 2, 5, 3


class CharModel(nn.Module):
    """The character model of bench/peer_charlm.py: one-hot ids -> L recurrent layers -> linear."""

    def __init__(self, kind, vocab, hidden, layers):
        super().__init__()
        self.vocab = vocab
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU,
               "elman-tanh": lambda *a: nn.RNN(*a, nonlinearity="tanh"),
               "elman-relu": lambda *a: nn.RNN(*a, nonlinearity="relu")}[kind]
        self.rnn = rnn(vocab, hidden, layers)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids, state):
        x = F.one_hot(ids, self.vocab).float()  # [T; B; V]
        h, state = self.rnn(x, state)
        return self.out(h), state


def layer(kind, i, h, layers=1):
    if kind == "elman-tanh":
        return nn.RNN(i, h, layers, nonlinearity="tanh")
    if kind == "elman-relu":
        return nn.RNN(i, h, layers, nonlinearity="relu")
    if kind == "gru":
        return nn.GRU(i, h, layers)
    if kind == "lstm":
        return nn.LSTM(i, h, layers)
    raise SystemExit(f"unknown kind {kind!r}: expected elman-tanh, elman-relu, gru or lstm")


def own(t):
    """A fresh contiguous float tensor with its own storage (no view offsets in the file)."""
    return t.detach().contiguous().clone()


def save(obj, name):
    path = os.path.join(OUT, name)
    torch.save(obj, path, _use_new_zipfile_serialization=True)
    print(f"{name}: {os.path.getsize(path)} bytes")


def make_layer(name, kind, seed):
    torch.manual_seed(seed)
    m = layer(kind, I, H)
    x = torch.randn(T, B, I)  # [T; B; I]
    h0 = 0.5 * torch.randn(1, B, H)  # [1; B; H]
    with torch.no_grad():
        if kind == "lstm":
            c0 = 0.5 * torch.randn(1, B, H)
            y, (hn, cn) = m(x, (h0, c0))
            io = {"x": x, "h0": h0, "c0": c0, "y": y, "hn": hn, "cn": cn}
        else:
            y, hn = m(x, h0)  # y: [T; B; H]
            io = {"x": x, "h0": h0, "y": y, "hn": hn}
    save(m.state_dict(), f"{name}.pt")  # an OrderedDict with _metadata, as users have them
    save({k: own(v) for k, v in io.items()}, f"{name}.io.pt")


def make_charmodel(seed):
    torch.manual_seed(seed)
    m = CharModel("lstm", CM_V, CM_H, CM_L)
    ids = torch.randint(0, CM_V, (CM_T, CM_B))  # [T; B] int64
    h0 = 0.5 * torch.randn(CM_L, CM_B, CM_H)  # [L; B; H]
    c0 = 0.5 * torch.randn(CM_L, CM_B, CM_H)
    with torch.no_grad():
        logits, (hn, cn) = m(ids, (h0, c0))  # [T; B; V]
    save(m.state_dict(), "charmodel_lstm.pt")
    save({k: own(v) for k, v in {"ids": ids, "h0": h0, "c0": c0, "logits": logits, "hn": hn, "cn": cn}.items()},
         "charmodel_lstm.io.pt")


# The bidirectional stacks: 2 layers, over a padded batch of unsorted lengths (pack_padded_sequence).
BI_T, BI_B, BI_LENGTHS = 6, 4, [6, 3, 1, 5]


def make_bidirectional(name, kind, seed):
    torch.manual_seed(seed)
    m = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](I, H, 2, bidirectional=True)
    x = torch.randn(BI_T, BI_B, I)  # [T; B; I], zero-padded below
    lengths = torch.tensor(BI_LENGTHS)
    for b, n in enumerate(BI_LENGTHS):
        x[n:, b] = 0.0
    h0 = 0.5 * torch.randn(4, BI_B, H)  # [L·D; B; H]: l0, l0_reverse, l1, l1_reverse
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.no_grad():
        if kind == "lstm":
            c0 = 0.5 * torch.randn(4, BI_B, H)
            out, (hn, cn) = m(packed, (h0, c0))
            extra = {"c0": c0, "cn": cn}
        else:
            out, hn = m(packed, h0)
            extra = {}
    y, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=BI_T)  # [T; B; 2H], zeros at padding
    io = {"x": x, "lengths": lengths, "h0": h0, "y": y, "hn": hn, **extra}
    save(m.state_dict(), f"{name}.pt")
    save({k: own(v) for k, v in io.items()}, f"{name}.io.pt")


def make_legacy():
    # The pre-1.6 pickle format, which the interop reader must reject with a clear message.
    torch.manual_seed(5)
    path = os.path.join(OUT, "legacy_format.pt")
    torch.save(nn.RNN(I, H).state_dict(), path, _use_new_zipfile_serialization=False)
    print(f"legacy_format.pt: {os.path.getsize(path)} bytes")


def check(path, kind, model):
    sd = torch.load(path, weights_only=True)  # the restricted unpickler: tensors and dicts only
    if model:
        first = sd["rnn.weight_ih_l0"]
        vocab, hidden = first.shape[1], sd["rnn.weight_hh_l0"].shape[1]
        layers = sum(1 for k in sd if k.startswith("rnn.weight_ih_l"))
        m = CharModel(kind, vocab, hidden, layers).to(first.dtype)
        m.load_state_dict(sd, strict=True)
        ids = torch.arange(vocab * 2).remainder(vocab).view(-1, 2)  # [T; B]
        logits, _ = m(ids, None) if first.dtype == torch.float32 else (None, None)
        print(f"{path}: loads into CharModel({kind}, V={vocab}, H={hidden}, L={layers}), dtype {first.dtype}")
        if logits is not None:
            print("logits[0]:", logits[0].tolist())
    else:
        w = sd["weight_ih_l0"]
        gates = {"elman-tanh": 1, "elman-relu": 1, "gru": 3, "lstm": 4}[kind]
        m = layer(kind, w.shape[1], w.shape[0] // gates).to(w.dtype)
        m.load_state_dict(sd, strict=True)
        print(f"{path}: loads into {m}, dtype {w.dtype}")
        for k, v in sd.items():
            print(f"  {k} {list(v.shape)} sum={v.double().sum().item():.17g}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", metavar="FILE", help="load FILE (a state dict written by SeqNets) instead of writing fixtures")
    p.add_argument("--kind", default="lstm", help="elman-tanh, elman-relu, gru or lstm (with --check)")
    p.add_argument("--model", action="store_true", help="FILE holds a CharModel (rnn.*, out.*), not one layer")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.check:
        check(a.check, a.kind, a.model)
        return
    os.makedirs(OUT, exist_ok=True)
    make_layer("rnn_tanh", "elman-tanh", 1)
    make_layer("rnn_relu", "elman-relu", 2)
    make_layer("gru", "gru", 3)
    make_layer("lstm", "lstm", 4)
    make_charmodel(6)
    make_legacy()
    make_bidirectional("bilstm2_packed", "lstm", 7)
    make_bidirectional("bigru2_packed", "gru", 8)


if __name__ == "__main__":
    main()
