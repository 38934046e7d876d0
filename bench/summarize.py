"""Medians and ratios of bench/run.sh's JSON lines, as a markdown table."""
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

configs = []
for r in rows:
    key = (r["cell"], r["layers"], r["hidden"])
    if key not in configs:
        configs.append(key)
print(f"runs per system and configuration: {len([r for r in rows if r['system'] == 'pytorch']) // max(1, len(configs))}; "
      f"threads: {rows[0]['threads']}; peer sgemm (1024³, GFLOP/s) median: "
      f"{med([r['sgemm_gflops'] for r in rows if r['system'] == 'pytorch'])}")
print()
print("| configuration | measure | PyTorch 1.13 (fused), median | SeqNets, median | ratio of medians | SeqNets median / PyTorch's best run | best run / best run |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for cell, layers, hidden in configs:
    p = [r for r in rows if r["system"] == "pytorch" and (r["cell"], r["layers"], r["hidden"]) == (cell, layers, hidden)]
    s = [r for r in rows if r["system"] == "seqnets" and (r["cell"].split("-")[0] if r["cell"] != "gru" else "gru", r["layers"], r["hidden"]) == (cell, layers, hidden)]
    name = f"{cell} {layers}×{hidden}"
    def best(xs):
        xs = [x for x in xs if x is not None]
        return max(xs) if xs else None
    def line(measure, pv, sv, pbest=None, sbest=None, higher_better=True):
        if pv is None or sv is None:
            return
        if higher_better:
            print(f"| {name} | {measure} | {pv:,.0f} | {sv:,.0f} | {sv / pv:.2f}× | {sv / pbest:.2f}× | {sbest / pbest:.2f}× |")
        else:
            print(f"| {name} | {measure} | {pv:.3f} | {sv:.3f} | {sv - pv:+.3f} nats | | |")
    def measure(rs, field):
        return med([r[field] for r in rs]), best([r[field] for r in rs])
    pt, pb = measure(p, "train_chars_per_s")
    st, sb = measure(s, "train_chars_per_s")
    line("training chars/s, fastest path", pt, st, pb, sb)
    ss, ssb = measure(s, "step_train_chars_per_s")
    line("training chars/s, the lecture's equations step by step", pt, ss, pb, ssb)
    ps, psb = measure(p, "sample_chars_per_s")
    qs, qsb = measure(s, "sample_chars_per_s")
    line("sampling chars/s, batch 1", ps, qs, psb, qsb)
    line("validation loss after 1,500 steps (nats/char)", med([r["val_loss"] for r in p]), med([r["val_loss"] for r in s]), higher_better=False)
