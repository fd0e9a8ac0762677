"""PNG plot of a benchmark run: speed ratio to PyTorch per layer, and the
fraction of the machine's ceiling fastconv reaches (FMA peak for convolution,
copy bandwidth for pooling).

    python benchmarks/plot.py benchmarks/results/full.json [out.png]

One row of panels per op; in each panel a layer per line (named as in
float32: a float64 entry run at a smaller batch shares its layer's line) and a
marker per (dtype, thread count). matplotlib is optional: without it, ``make_plot`` says
so and draws nothing.
"""

import json
import os
import sys

OPS = ("fwd", "bwd_data", "bwd_weight", "pool_fwd", "pool_bwd")
STYLE = {  # (dtype, is single-thread) -> marker, colour
    ("float32", True): ("o", "#1f77b4"),
    ("float32", False): ("s", "#2ca02c"),
    ("float64", True): ("^", "#ff7f0e"),
    ("float64", False): ("D", "#d62728"),
}


def _row(r):
    # float64 entries that run at a smaller batch share their layer's row
    return r.get("row", r["layer"])


def _layer_order(records):
    order = []
    for r in records:
        if _row(r) not in order:
            order.append(_row(r))
    return order


def make_plot(results, path):
    """Draw the plot into ``path``; returns a one-line message for the user."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install matplotlib)"

    records = [r for r in results["records"] if "fastconv" in r["times"]]
    if not records:
        return "plot skipped: no fastconv timings to plot"
    ops = [op for op in OPS if any(r["op"] == op for r in records)]
    has_torch = any(r.get("ratio_torch") for r in records)
    threads_all = max(r["threads"] for r in records)

    heights = []
    for op in ops:
        heights.append(max(1, len(_layer_order([r for r in records if r["op"] == op]))))
    fig_h = 1.4 + 0.2 * sum(heights) + 0.6 * len(ops)
    legend = ([], [])
    ncols = 2 if has_torch else 1
    fig, axes = plt.subplots(len(ops), ncols, figsize=(8 * ncols, fig_h), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for row, op in enumerate(ops):
        recs = [r for r in records if r["op"] == op]
        layers = _layer_order(recs)
        ypos = {name: i for i, name in enumerate(layers)}
        panels = []
        if has_torch:
            panels.append(("ratio_torch", "speed vs PyTorch (torch time / fastconv time)"))
        is_pool = op.startswith("pool")
        panels.append(("frac_copy_bw" if is_pool else "frac_peak",
                       "fraction of copy bandwidth" if is_pool else "fraction of FMA peak"))
        for col, (key, title) in enumerate(panels):
            ax = axes[row][col]
            for (dtype, single), (marker, colour) in STYLE.items():
                pts = [(r[key], ypos[_row(r)]) for r in recs
                       if r["dtype"] == dtype and (r["threads"] == 1) == single
                       and r.get(key)]
                if not pts:
                    continue
                label = f"{dtype}, {'1 thread' if single else f'{threads_all} threads'}"
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker,
                           color=colour, s=22, alpha=0.85, label=label, zorder=3)
            ax.set_yticks(range(len(layers)))
            ax.set_yticklabels(layers if col == 0 else [""] * len(layers), fontsize=7)
            ax.set_ylim(len(layers) - 0.5, -0.5)
            ax.grid(axis="x", alpha=0.3, zorder=0)
            ax.grid(axis="y", alpha=0.1, zorder=0)
            if key == "ratio_torch":
                vals = [r[key] for r in recs if r.get(key)]
                ax.set_xscale("log")
                if vals:
                    ax.set_xlim(min(0.5, min(vals) / 1.25), max(2.0, max(vals) * 1.25))
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.axvline(1.0, color="black", lw=0.8, zorder=2)
            else:
                ax.set_xlim(0, max(1.0, ax.get_xlim()[1]))
                ax.axvline(1.0, color="grey", lw=0.6, ls="--", zorder=2)
            ax.set_title(f"{op}: {title}", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
            for handle, label in zip(*ax.get_legend_handles_labels()):
                if label not in legend[1]:
                    legend[0].append(handle)
                    legend[1].append(label)
    m = results.get("machine", {})
    v = results.get("versions", {})
    fig.suptitle(f"fastconv {v.get('fastconv')} vs torch {v.get('torch')} - "
                 f"{m.get('cpu', '')} ({results.get('suite')} suite, {results.get('date', '')})",
                 fontsize=10, y=1 - 0.12 / fig_h, va="top")
    if legend[0]:
        fig.legend(*legend, loc="upper center", ncol=4, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 1 - 0.4 / fig_h))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig_h))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    with open(argv[0]) as f:
        results = json.load(f)
    out = argv[1] if len(argv) > 1 else os.path.splitext(argv[0])[0] + ".png"
    print(make_plot(results, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
