"""Medians and ratios of bench/run.sh's JSON lines, as markdown tables: SeqNets against PyTorch, SeqNets'
three paths against each other (the ratios taken run by run within one process, then their median),
the issue's bars, the profiles of a training step and the peak memory of training."""
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
runs = [r for r in rows if not r.get("profile") and not r.get("memory")]
profiles = [r for r in rows if r.get("profile")]
memories = [r for r in rows if r.get("memory")]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def best(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def key(r):
    return (r["cell"], r["layers"], r["hidden"])


def name(k):
    return f"{k[0]} {k[1]}×{k[2]}"


configs = []
for r in runs:
    if key(r) not in configs:
        configs.append(key(r))

peer_runs = [r for r in runs if r["system"] == "pytorch"]
print(f"runs per system and configuration: {len(peer_runs) // max(1, len({key(r) for r in peer_runs}))}; "
      f"threads: {runs[0]['threads']}; peer sgemm (1024³, GFLOP/s) median: {med([r['sgemm_gflops'] for r in peer_runs])}")
print()
print("| configuration | measure | PyTorch 1.13 (fused), median | SeqNets, median | ratio of medians | SeqNets median / PyTorch's best run | best run / best run |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for k in configs:
    p = [r for r in runs if r["system"] == "pytorch" and key(r) == k]
    s = [r for r in runs if r["system"] == "seqnets" and key(r) == k]
    if not p or not s:
        continue

    def line(measure, field_p, field_s):
        pv, pb = med([r.get(field_p) for r in p]), best([r.get(field_p) for r in p])
        sv, sb = med([r.get(field_s) for r in s]), best([r.get(field_s) for r in s])
        if pv and sv:
            print(f"| {name(k)} | {measure} | {pv:,.0f} | {sv:,.0f} | {sv / pv:.2f}× | {sv / pb:.2f}× | {sb / pb:.2f}× |")

    line("training chars/s, libtorch's fused kernels", "train_chars_per_s", "train_chars_per_s")
    line("training chars/s, the engine on the derivation", "train_chars_per_s", "derived_train_chars_per_s")
    line("training chars/s, the lecture's equations step by step", "train_chars_per_s", "step_train_chars_per_s")
    line("sampling chars/s, batch 1", "sample_chars_per_s", "sample_chars_per_s")
    pl, sl = med([r["val_loss"] for r in p]), med([r["val_loss"] for r in s])
    if pl is not None and sl is not None:
        print(f"| {name(k)} | validation loss after 1,500 steps (nats/char) | {pl:.3f} | {sl:.3f} | {sl - pl:+.3f} nats | | |")

print()
print("SeqNets' paths, alternated in each process (fused, step, derived, …); ratios run by run, then the median:")
print()
print("| configuration | fused, median | step, median | derived, median | derived / fused | derived / step |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")


def paired(s, a, b):
    """Median over processes of (median of a's runs / median of b's runs) within each process."""
    ratios = []
    for r in s:
        ra, rb = r.get(f"{a}_runs") or [], r.get(f"{b}_runs") or []
        if ra and rb:
            ratios.append(statistics.median(ra) / statistics.median(rb))
    return med(ratios)


own = {}
for k in configs:
    s = [r for r in runs if r["system"] == "seqnets" and key(r) == k]
    if not s:
        continue
    f, st, d = (med([r.get(x) for r in s]) for x in ("train_chars_per_s", "step_train_chars_per_s", "derived_train_chars_per_s"))
    df, ds = paired(s, "derived", "fused"), paired(s, "derived", "step")
    own[k] = (df, ds)
    fmt = lambda v: f"{v:,.0f}" if v else "–"
    rat = lambda v: f"{v:.2f}×" if v else "–"
    print(f"| {name(k)} | {fmt(f)} | {fmt(st)} | {fmt(d)} | {rat(df)} | {rat(ds)} |")

print()
print("The bars (issue: training on the derivation):")
print()
print("| configuration | bar | measured | |")
print("| --- | --- | ---: | --- |")
for k in configs:
    p = [r for r in runs if r["system"] == "pytorch" and key(r) == k]
    s = [r for r in runs if r["system"] == "seqnets" and key(r) == k]
    d = med([r.get("derived_train_chars_per_s") for r in s])
    if not d:
        continue
    df, ds = own.get(k, (None, None))
    if p:
        pb = best([r["train_chars_per_s"] for r in p])
        print(f"| {name(k)} | derived median ≥ 1.5× PyTorch's best run | {d / pb:.2f}× | {'met' if d / pb >= 1.5 else 'not met'} |")
        if df:
            print(f"| {name(k)} | derived ≥ 1.3× SeqNets' fused path | {df:.2f}× | {'met' if df >= 1.3 else 'not met'} |")
    elif ds:
        print(f"| {name(k)} | derived ≥ 2× the step path | {ds:.2f}× | {'met' if ds >= 2.0 else 'not met'} |")

if profiles:
    print()
    print("Where a training step's time goes (ms per step; `--profile`, one process per configuration):")
    print()
    print("| configuration | path | step | forward | backward | clipping + Adam | engine | of which GEMM | of which element-wise | rest of the engine (views, allocation, autograd glue) | outside the engine (input, output layer, loss, autograd) | engine GEMM GFLOP/s | step GFLOP/s | sgemm GFLOP/s (1024³) | fraction of sgemm |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in profiles:
        f = lambda x: "–" if r.get(x) is None else f"{r[x]:.1f}"
        eng = r.get("engine_ms")
        rest = "–" if eng is None else f"{eng - r['engine_gemm_ms'] - r['engine_elementwise_ms']:.1f}"
        outside = "–" if eng is None else f"{r['forward_ms'] + r['backward_ms'] - eng:.1f}"
        print(f"| {name(key(r))} | {r['path']} | {f('step_ms')} | {f('forward_ms')} | {f('backward_ms')} | {f('clip_adam_ms')} | {f('engine_ms')} | "
              f"{f('engine_gemm_ms')} | {f('engine_elementwise_ms')} | {rest} | {outside} | {f('engine_gemm_gflops')} | {f('step_gflops')} | "
              f"{f('sgemm_gflops')} | {r['roofline_fraction']:.2f} |")

if memories:
    print()
    print("Training memory per step (MiB, `--memory`, one process per path): the heap in use (malloc's count, which holds libtorch's"
          " CPU tensors) that a step's forward pass adds and leaves for the backward pass, and the peak a sampling thread saw within"
          " steps above the heap before them; medians over the processes:")
    print()
    print("| configuration | path | held for the backward pass | peak within a step | peak resident size of the process | processes |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    groups = {}
    for r in memories:
        groups.setdefault((key(r), r["path"]), []).append(r)
    for (k, path), rs in groups.items():
        f = lambda x: f"{med([r.get(x) for r in rs]):.1f}"
        print(f"| {name(k)} | {path} | {f('held_for_backward_mib')} | {f('peak_above_mib')} | {f('peak_rss_mib')} | {len(rs)} |")
