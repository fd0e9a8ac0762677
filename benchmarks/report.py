"""What a benchmark run reports: the subsets and summaries (geometric means,
thread scaling), the terminal tables, and the JSON document."""

import json
import math
import os
import sys

import numpy as np

if __package__:
    from .contenders import CONTENDERS
else:
    from contenders import CONTENDERS


# ------------------------------------------------------------- the subsets

def layer_tags(layer, dtype, l2_bytes):
    """Subsets the summary reports on their own (the kinds of layer the
    performance targets single out)."""
    tags = []
    if layer.kind == "conv":
        if layer.pointwise:
            tags.append("1x1")
        special = layer.groups > 1 or layer.transposed or layer.dilation != (1, 1)
        if (layer.FH, layer.FW) == (3, 3) and layer.C >= 64 and layer.K >= 64 and \
                not special:
            tags.append("3x3 C,K>=64")
        if layer.groups > 1:
            tags.append("depthwise" if layer.groups == layer.C else "grouped")
        if layer.dilation != (1, 1):
            tags.append("dilated")
        if layer.transposed:
            tags.append("transposed")
    else:
        x_bytes = layer.batch(dtype) * layer.C * layer.H * layer.W * np.dtype(dtype).itemsize
        if l2_bytes and x_bytes > l2_bytes:
            tags.append("x > L2")
    return tags


def geomean(values):
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ----------------------------------------------------------- the summaries

def _combined(records, ops, label):
    """Per (layer, dtype, threads), records of ``ops`` merged into one: times
    added, work added (e.g. backward = data + weight gradients)."""
    groups = {}
    for r in records:
        if r["op"] in ops:
            groups.setdefault((r["layer"], r["dtype"], r["threads"]), {})[r["op"]] = r
    out = []
    for (layer, dtype, nt), parts in groups.items():
        if set(parts) != set(ops):
            continue
        rs = list(parts.values())
        merged = {"layer": layer, "dtype": dtype, "threads": nt, "op": label,
                  "tags": rs[0].get("tags", []), "kind": rs[0]["kind"],
                  "work": sum(r["work"] for r in rs), "unit": rs[0]["unit"]}
        for name in CONTENDERS:
            if all(name in r["times"] for r in rs):
                merged[name] = sum(r["times"][name]["median_s"] for r in rs)
        if "fastconv" in merged:
            for other in ("torch", "numpy"):
                if other in merged:
                    merged[f"ratio_{other}"] = merged[other] / merged["fastconv"]
            rate = merged["work"] / merged["fastconv"] / 1e9
            if rs[0].get("peak_gflops"):
                merged["frac_peak"] = rate / rs[0]["peak_gflops"]
            if rs[0].get("copy_gbps"):
                merged["frac_copy_bw"] = rate / rs[0]["copy_gbps"]
        out.append(merged)
    return out


BASE_ORDER = ["fwd", "bwd_data", "bwd_weight", "bwd (data+weight)",
              "pool_fwd", "pool_bwd", "pool (fwd+bwd)"]
TAGGED_OPS = ("fwd", "bwd (data+weight)", "pool_fwd", "pool (fwd+bwd)")


def summarise(records):
    """Geometric means per (op, dtype, threads) with the worst layer; also for
    backward (data + weights, times added per layer), pooling (forward +
    backward), and the tagged subsets (1x1 layers, large 3x3 layers, pooling
    inputs larger than L2)."""
    flat = []
    for r in records:
        row = {k: r.get(k) for k in ("layer", "dtype", "threads", "op", "tags",
                                     "kind", "work", "unit", "ratio_torch",
                                     "ratio_numpy", "frac_peak", "frac_copy_bw")}
        flat.append(row)
    flat += _combined(records, ("bwd_data", "bwd_weight"), "bwd (data+weight)")
    flat += _combined(records, ("pool_fwd", "pool_bwd"), "pool (fwd+bwd)")
    flat += [dict(r, op=f"{r['op']} [{tag}]") for r in list(flat)
             if r["op"] in TAGGED_OPS for tag in (r.get("tags") or [])]

    def order(key):
        op = key[0]
        base = op.split(" [")[0]
        return (BASE_ORDER.index(base) if base in BASE_ORDER else 99, op != base, op,
                key[1], key[2])

    groups = {}
    for r in flat:
        groups.setdefault((r["op"], r["dtype"], r["threads"]), []).append(r)
    summary = []
    for key in sorted(groups, key=order):
        rows = groups[key]
        item = {"op": key[0], "dtype": key[1], "threads": key[2], "entries": len(rows)}
        for other in ("torch", "numpy"):
            vals = [r.get(f"ratio_{other}") for r in rows if r.get(f"ratio_{other}")]
            item[f"geomean_ratio_{other}"] = geomean(vals)
            item[f"n_{other}"] = len(vals)
            if vals:
                worst = min((r for r in rows if r.get(f"ratio_{other}")),
                            key=lambda r: r[f"ratio_{other}"])
                item[f"worst_{other}"] = {"layer": worst["layer"],
                                          "ratio": worst[f"ratio_{other}"]}
        fr = [r.get("frac_peak") for r in rows if r.get("frac_peak")]
        item["geomean_frac_peak"] = geomean(fr)
        fb = [r.get("frac_copy_bw") for r in rows if r.get("frac_copy_bw")]
        item["geomean_frac_copy_bw"] = geomean(fb)
        summary.append(item)
    return summary


def thread_scaling(records, min_work=1e9):
    """Speed-up from 1 thread to the largest thread count, per (op, dtype),
    over the conv layers of at least ``min_work`` flops: geometric mean and
    the weakest layer, for fastconv and for PyTorch."""
    by = {}
    for r in records:
        if r["kind"] != "conv" or r["work"] < min_work:
            continue
        by.setdefault((r["layer"], r["op"], r["dtype"]), {})[r["threads"]] = r
    out = {}
    for (layer, op, dtype), per in by.items():
        if 1 not in per or len(per) < 2:
            continue
        nmax = max(per)
        for name in ("fastconv", "torch"):
            t1 = per[1]["times"].get(name, {}).get("median_s")
            tn = per[nmax]["times"].get(name, {}).get("median_s")
            if t1 and tn:
                out.setdefault((op, dtype, nmax, name), []).append((t1 / tn, layer))
    result = []
    for (op, dtype, nmax, name), vals in sorted(
            out.items(), key=lambda kv: (BASE_ORDER.index(kv[0][0]), kv[0][1], kv[0][3])):
        worst = min(vals)
        result.append({"op": op, "dtype": dtype, "threads": nmax, "contender": name,
                       "layers": len(vals), "geomean_speedup": geomean([v for v, _ in vals]),
                       "worst": {"layer": worst[1], "speedup": worst[0]}})
    return result


# ------------------------------------------------------------ the printing

def _f(v, fmt, empty="-"):
    return empty if v is None else format(v, fmt)


def print_table(results, stream=sys.stdout):
    recs = results["records"]
    if not recs:
        return
    wl = max(len("layer"), max(len(r["layer"]) for r in recs))
    head = (f"{'layer':<{wl}}  {'op':<10} {'dtype':<7} {'thr':>3}  {'fastconv':>9} "
            f"{'rate':>11} {'%peak':>6}  {'torch':>9} {'x torch':>7}  {'numpy':>9} "
            f"{'x numpy':>7}  notes")
    print(head, file=stream)
    print("-" * len(head), file=stream)
    for r in recs:
        t = r["times"]
        ms = {name: t[name]["median_s"] * 1e3 if name in t else None for name in CONTENDERS}
        rate = t["fastconv"]["rate"] if "fastconv" in t else None
        unit = "GF/s" if r["unit"] == "flop" else "GB/s"
        frac = r.get("frac_peak", r.get("frac_copy_bw"))
        frac_s = "-" if frac is None else (f"{100 * frac:5.1f}" +
                                           ("" if "frac_peak" in r else "b"))
        notes = "; ".join(r["notes"])
        print(f"{r['layer']:<{wl}}  {r['op']:<10} {r['dtype']:<7} {r['threads']:>3}  "
              f"{_f(ms['fastconv'], '9.3f'):>9} "
              f"{(_f(rate, '6.1f') + ' ' + unit) if rate else '-':>11} {frac_s:>6}  "
              f"{_f(ms['torch'], '9.3f'):>9} {_f(r.get('ratio_torch'), '7.2f'):>7}  "
              f"{_f(ms['numpy'], '9.3f'):>9} {_f(r.get('ratio_numpy'), '7.2f'):>7}  {notes}",
              file=stream)
    print("times: median ms per call; x torch / x numpy: that contender's time / "
          "fastconv's (above 1: fastconv faster);\n%peak: of the measured FMA peak x "
          "threads (conv), or with 'b' of the measured copy bandwidth (pooling)",
          file=stream)


def print_summary(results, stream=sys.stdout):
    summ = results["summary"]
    if not summ:
        return
    print("\nGeometric means (ratio = other's time / fastconv's time; worst = lowest "
          "ratio vs torch)", file=stream)
    head = (f"{'op':<34} {'dtype':<7} {'thr':>3} {'n':>3}  {'x torch':>7}  "
            f"{'x numpy':>7}  {'%peak':>6}  worst vs torch")
    print(head, file=stream)
    print("-" * (len(head) + 30), file=stream)
    for s in summ:
        frac = s.get("geomean_frac_peak") or s.get("geomean_frac_copy_bw")
        frac_s = "-" if not frac else (f"{100 * frac:5.1f}" +
                                       ("" if s.get("geomean_frac_peak") else "b"))
        worst = s.get("worst_torch")
        worst_s = f"{worst['ratio']:.2f} {worst['layer']}" if worst else "-"
        print(f"{s['op']:<34} {s['dtype']:<7} {s['threads']:>3} {s['entries']:>3}  "
              f"{_f(s.get('geomean_ratio_torch'), '7.2f'):>7}  "
              f"{_f(s.get('geomean_ratio_numpy'), '7.2f'):>7}  {frac_s:>6}  {worst_s}",
              file=stream)
    scaling = results.get("thread_scaling") or []
    if scaling:
        print(f"\nThread scaling on conv layers of at least 1 GFLOP "
              f"(time at 1 thread / time at {scaling[0]['threads']})", file=stream)
        head = f"{'op':<12} {'dtype':<7} {'contender':<9} {'n':>3}  {'speed-up':>8}  weakest"
        print(head, file=stream)
        print("-" * (len(head) + 30), file=stream)
        for s in scaling:
            print(f"{s['op']:<12} {s['dtype']:<7} {s['contender']:<9} {s['layers']:>3}  "
                  f"{s['geomean_speedup']:8.2f}  {s['worst']['speedup']:.2f} "
                  f"{s['worst']['layer']}", file=stream)
    bad = [r for r in results["records"] if r.get("check") and not r["check"]["ok"]]
    if bad:
        print(f"\nWARNING: {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} where fastconv's "
              f"result differs from the reference (see notes)", file=stream)


# ---------------------------------------------------------------- the JSON

def results_document(*, suite, command, date, machine, versions, fastconv_config,
                     unavailable, peaks, copy_bw, settings, records):
    """The JSON document of a run: what ran where, every record, and the
    summaries computed from the records."""
    results = {
        "schema": 1,
        "suite": suite,
        "command": command,
        "date": date,
        "machine": machine,
        "versions": versions,
        "fastconv_config": fastconv_config,
        "unavailable": unavailable,
        "fma_peak_gflops_per_core": peaks,
        "copy_bandwidth_gbps": {str(k): v for k, v in copy_bw.items()},
        "settings": settings,
        "records": records,
    }
    results["summary"] = summarise(records)
    results["thread_scaling"] = thread_scaling(records)
    return results


def write_json(results, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
