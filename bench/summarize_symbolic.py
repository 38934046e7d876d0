"""Markdown rows for docs/benchmarks.md from the JSON lines of bench/symbolic.sh:
  /usr/bin/python3 bench/summarize_symbolic.py bench/results/symbolic-<time>.jsonl
"""
import json, statistics, sys


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.startswith("{")]


def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}g}"


def main():
    rows = load(sys.argv[1])
    by = lambda **kw: [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

    print("### Derived against hand-derived evaluation of c_t and b_t\n")
    print("| cell | one step, B = 16: hand | derived | ratio | trajectory T = 128, B = 1 (`Bptt.jacobians`): hand | derived | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in by(system="seqnets", mode="jacobians"):
        print(f"| {r['cell']} | {fmt(r['hand_step_ms'])} ms | {fmt(r['derived_step_ms'])} ms | {r['step_ratio']:.2f}× "
              f"| {fmt(r['hand_trajectory_ms'])} ms | {fmt(r['derived_trajectory_ms'])} ms | {r['trajectory_ratio']:.2f}× |")

    print("\n### ∂h_T/∂θ of an LSTM, one sequence, float64: closed form against PyTorch\n")
    print("| I, H, T (P) | SeqNets: closed form, one sweep, structured b_t | sweep with dense hand b_t | autodiff at T | PyTorch `jacobian` | PyTorch `jacobian(vectorize=True)` | closed form / PyTorch | agreement with PyTorch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for hidden, steps in ((32, 128), (64, 256)):
        ours = by(system="seqnets", mode="sweep", hidden=hidden, steps=steps)
        peer = by(system="pytorch", mode="sweep", hidden=hidden, steps=steps)
        if not ours or not peer:
            continue
        m = lambda rs, k: statistics.median(r[k] for r in rs)
        closed, plain = m(ours, "sweep_structured_s"), m(peer, "jacobian_s")
        agreement = max(r.get("jacobian_vs_seqnets", float("nan")) for r in peer)
        print(f"| 16, {hidden}, {steps} ({ours[0]['parameters']}) | {fmt(closed)} s | {fmt(m(ours, 'sweep_dense_s'))} s | {fmt(m(ours, 'autodiff_at_s'))} s "
              f"| {fmt(plain)} s | {fmt(m(peer, 'vectorized_s'))} s | {closed / plain:.2f}× | {agreement:.1e} |")
    print(f"\nMedians of {len(by(system='seqnets', mode='sweep')) // 2} alternated runs per side and size, each the median of 3 calls after a warm-up.")

    print("\n### Memory of the routes (peak resident memory of a process running one route)\n")
    print("| route | I, H, T | result | peak RSS | time |")
    print("| --- | --- | ---: | ---: | ---: |")
    names = {"autodiff-at": "`Bptt.outputByAutodiffAt` (autodiff at T)", "sweep": "`Bptt.outputAtStep` (closed form, one sweep)",
             "autodiff-all": "`Bptt.byAutodiff` (all t)"}
    for r in by(system="seqnets", mode="memory"):
        print(f"| {names[r['route']]} | {r['input']}, {r['hidden']}, {r['steps']} | {fmt(r['result_mb'])} MB | {r['peak_rss_mb'] / 1024:.2f} GB | {fmt(r['seconds'])} s |")

    print("\n### Verify at scale: ∂h_T/∂θ by the closed form against autodiff, every built-in cell\n")
    print("| cell | I, H, T | P | closed form vs autodiff | structured vs dense hand b_t | max \\|∂h_T/∂θ\\| | closed form | autodiff |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in by(system="seqnets", mode="verify-scale"):
        print(f"| {r['cell']} | {r['input']}, {r['hidden']}, {r['steps']} | {r['parameters']} | {r['closed_vs_autodiff']} | {r['hand_vs_derived']} "
              f"| {r['magnitude']} | {fmt(r['closed_s'])} s | {fmt(r['autodiff_s'])} s |")


if __name__ == "__main__":
    main()
