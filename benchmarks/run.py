"""Benchmark runner: fastconv against PyTorch and a NumPy im2col baseline.

    python benchmarks/run.py --quick            # about a minute
    python benchmarks/run.py                    # the full suite (minutes on 2 cores)
    python benchmarks/run.py --op fwd --dtype float32 --threads 1 --filter resnet50

For every entry (layer x op x dtype x thread count) fastconv and torch run in
the same process, interleaved (fastconv, torch, then the next round in the
other order), after a warm-up, and the NumPy baseline after them in rounds of
its own; the reported time is the median of the rounds. Reported:
milliseconds, GFLOP/s (2*N*K*C*FH*FW*H2*W2 / t) or GB/s for pooling, the
fraction of this machine's FMA peak (measured once per run with
fastconv's own microbenchmark, times the thread count) or of its copy
bandwidth for pooling, and speed ratios: other contender's time / fastconv's
time (above 1: fastconv is faster).

Results go to the terminal, to a JSON file and to a PNG plot (when matplotlib
is installed); see benchmarks/README.md.
"""

import argparse
import datetime
import os
import sys
import time

# OpenBLAS worker threads busy-wait for a long while (~0.1 s) after each call
# unless told otherwise; interleaved with fastconv and PyTorch that would
# steal a core from whoever runs next. This only takes effect when set before
# NumPy loads OpenBLAS, i.e. when this file is the program (so before the
# modules below, which import NumPy, are imported).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# Run as `python benchmarks/run.py` the sibling modules are top-level modules
# (benchmarks/ is on sys.path); run as `python -m benchmarks.run` they are the
# package's. Each module imports its siblings the same two ways.
if __package__:
    from . import contenders, measure, report, suite
    from .progress import Progress
else:
    sys.path.insert(0, HERE)
    import contenders  # noqa: E402
    import measure  # noqa: E402
    import report  # noqa: E402
    import suite  # noqa: E402
    from progress import Progress  # noqa: E402


# ------------------------------------------------------------ the arguments

def thread_counts(spec):
    all_n = measure.cpus_available()
    if spec == "1":
        return [1]
    if spec == "all":
        return [all_n]
    if spec == "both":
        return sorted({1, all_n})
    try:
        n = int(spec)
    except ValueError:
        raise SystemExit(f"--threads must be 1, all, both or a number, got {spec!r}")
    if n < 1:
        raise SystemExit(f"--threads must be >= 1, got {n}")
    return [n]


def parse_dtypes(spec):
    names = {"float32": "float32", "f32": "float32", "float64": "float64",
             "f64": "float64"}
    if spec in ("both", "all"):
        return suite.DTYPES
    out = []
    for part in spec.split(","):
        if part.strip() not in names:
            raise SystemExit(f"--dtype must be float32, float64 or both, got {spec!r}")
        out.append(names[part.strip()])
    return tuple(out)


# ------------------------------------------------------------- the runner

class Bench:
    """What a run carries from entry to entry: its arguments, the contenders
    it loaded, the machine's ceilings, the NumPy baseline's budget, and the
    thread count of the previous entry."""

    def __init__(self, args):
        self.args = args
        self.malloc_note = (measure.retain_freed_memory() if args.malloc == "retain"
                            else "glibc malloc defaults (--malloc default)")
        self.fastconv, self.fc_err = ((None, "disabled with --no-fastconv")
                                      if args.no_fastconv else contenders.import_fastconv())
        self.torch, self.torch_err = ((None, "disabled with --no-torch") if args.no_torch
                                      else contenders.import_torch())
        self.tpc = contenders.import_threadpoolctl()
        self.fc_info = None
        self.peaks = {}         # dtype -> FMA peak of one core, GFLOP/s
        self.copy_bw = {}       # thread count -> copy bandwidth, GB/s
        self.l2_bytes = None
        self.makers = contenders.Contenders(self.fastconv, self.torch)
        self.budget_np = measure.NumpyBudget(args.numpy_limit)
        self.prev_threads = 1


class TaskRun:
    """One task's data and callables, shared by its thread counts, and
    whether the NumPy baseline has been given up on for it."""

    def __init__(self, bench, task, seed):
        layer, makers = task.layer, bench.makers
        self.task = task
        self.data = makers.make_data(task, seed)
        self.fns = {}
        if bench.fastconv is not None:
            self.fns["fastconv"] = makers.fastconv_fn(task, self.data)
        if bench.torch is not None:
            self.fns["torch"] = makers.torch_fn(task, self.data)
        self.np_fn = None if bench.args.no_numpy else makers.numpy_fn(task, self.data)
        if layer.kind == "conv":
            self.work, self.unit = layer.flops(task.dtype), "flop"
        else:
            self.work, self.unit = layer.bytes_moved(task.op, task.dtype), "byte"
        self.np_skip_reason = "disabled with --no-numpy" if bench.args.no_numpy else None


def select_entries(args):
    """The thread counts, dtypes, ops and tasks the arguments ask for."""
    threads = thread_counts(args.threads)
    dtypes = parse_dtypes(args.dtype)
    try:
        ops = suite.expand_ops(args.op) if args.op else None
    except ValueError as exc:
        raise SystemExit(str(exc))
    tasks = suite.select(quick=args.quick, ops=ops, dtypes=dtypes, name_filter=args.filter)
    return threads, dtypes, ops, tasks


def print_header(bench, tasks, threads, out):
    """What is about to run, with what; sets fastconv's configuration aside
    for the results."""
    args, fastconv, torch = bench.args, bench.fastconv, bench.torch
    print(f"fastconv benchmark ({'quick' if args.quick else 'full'} suite): "
          f"{len(tasks)} entries x threads {threads}", file=out)
    caches = ", ".join(f"{k} {v}" for k, v in measure.cpu_caches().items())
    print(f"  cpu: {measure.cpu_model()} ({measure.cpus_available()} available)"
          f"{'; caches ' + caches if caches else ''}", file=out)
    if fastconv is None:
        print(f"  fastconv: NOT AVAILABLE ({bench.fc_err}); timing the other contenders only",
              file=out)
    else:
        fc_info = bench.fc_info = fastconv._config.config_info()
        print(f"  fastconv {fastconv.__version__} from {os.path.dirname(fastconv.__file__)}: "
              f"{fc_info['isa']} ({fc_info['kernel_float32']}, {fc_info['kernel_float64']}), "
              f"OpenMP {'on' if fc_info['openmp'] else 'off'}", file=out)
    if torch is None:
        print(f"  torch: not available ({bench.torch_err}); PyTorch columns skipped", file=out)
    else:
        print(f"  torch {torch.__version__} (oneDNN: "
              f"{torch.backends.mkldnn.is_available()})", file=out)
        torch.set_grad_enabled(False)
    print(f"  numpy {np.__version__}"
          f"{'' if bench.tpc else ' (threadpoolctl missing: its BLAS keeps its own thread count)'}",
          file=out)
    print(f"  memory: {bench.malloc_note}", file=out)


def measure_ceilings(bench, tasks, threads, out):
    """Ceilings: FMA peak of one core per dtype; copy bandwidth per thread count."""
    if bench.fastconv is not None:
        for dt in sorted({t.dtype for t in tasks}):
            bench.peaks[dt] = float(bench.fastconv._config.fma_peak_gflops(
                dt, bench.args.peak_seconds))
        print("  FMA peak, 1 core: " + ", ".join(f"{dt} {v:.1f} GFLOP/s"
                                                 for dt, v in bench.peaks.items()), file=out)
    if any(t.layer.kind == "pool" for t in tasks):
        for n in threads:
            bench.copy_bw[n] = measure.measure_copy_bandwidth(n)
        print("  copy bandwidth: " + ", ".join(f"{n} thread(s) {v:.1f} GB/s"
                                               for n, v in bench.copy_bw.items()), file=out)
    out.flush()


def time_contenders(bench, entry_fns, nt):
    """Times the callables of one entry at ``nt`` threads (NumPy's BLAS held
    to ``nt`` as well); returns measure()'s (first, stats, dropped)."""
    args = bench.args
    limits = bench.tpc.limit(limits=nt, user_api="blas") if bench.tpc else None
    try:
        # Single-threaded calls leave no spinning workers behind, so
        # they need one pause only, after a multi-threaded phase.
        if nt == 1 and bench.prev_threads > 1:
            time.sleep(args.gap)
        bench.prev_threads = nt
        # The NumPy baseline is timed in rounds of its own, after
        # the others: interleaved, its BLAS calls at more than one
        # thread left the next contender's samples up to 4x slower
        # on a 2-core machine (with OPENBLAS_THREAD_TIMEOUT as set
        # above; both fastconv's and torch's, in some rounds only).
        first, stats, dropped = {}, {}, {}
        for group in ([n for n in entry_fns if n != "numpy"], ["numpy"]):
            group = [n for n in group if n in entry_fns]
            if not group:
                continue
            if nt > 1 and stats:
                time.sleep(args.gap)
            f, st, dr = measure.measure(
                {n: entry_fns[n] for n in group}, args.repeat, args.budget,
                gap=args.gap if nt > 1 else 0.0,
                drop_above={"numpy": args.numpy_limit})
            first.update(f)
            stats.update(st)
            dropped.update(dr)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    return first, stats, dropped


def check_results(first, dtype):
    """Everyone must have computed the same thing: fastconv's first result
    against PyTorch's (or NumPy's when PyTorch did not run)."""
    ref_name = "torch" if "torch" in first else ("numpy" if "numpy" in first else None)
    if "fastconv" in first and ref_name:
        err = contenders.compare(first["fastconv"], first[ref_name], dtype)
        return {"against": ref_name, "rel_err": err, "ok": err <= contenders.CHECK_TOL[dtype]}
    return None


def make_record(bench, tr, nt, stats, check):
    """The JSON record of one entry, without its notes."""
    task, layer, work, unit = tr.task, tr.task.layer, tr.work, tr.unit
    rec = {
        "layer": task.name, "net": layer.net, "desc": layer.desc,
        # the float32 name, shared by the float64 entry of the layer
        # even when that one runs at a smaller batch
        "row": layer.name("float32"),
        "kind": layer.kind, "op": task.op, "dtype": task.dtype, "threads": nt,
        "batch": layer.batch(task.dtype),
        "pointwise": bool(getattr(layer, "pointwise", False)),
        "tags": report.layer_tags(layer, task.dtype, bench.l2_bytes),
        "work": work, "unit": unit,
        "times": stats, "check": check, "notes": [],
    }
    if layer.kind == "conv":
        rec["shape"] = {"x": list(tr.data["x"].shape), "w": list(tr.data["w"].shape),
                        "stride": list(layer.stride), "padding": list(layer.padding),
                        "out_hw": list(layer.out_hw), "strict": layer.strict}
    else:
        rec["shape"] = {"x": list(tr.data["x"].shape), "mode": layer.mode,
                        "kernel": list(layer.kernel), "stride": list(layer.stride),
                        "padding": list(layer.padding), "out_hw": list(layer.out_hw),
                        "strict": layer.strict,
                        "count_include_pad": layer.count_include_pad}
    for name, st in stats.items():
        st["rate"] = work / st["median_s"] / 1e9     # GFLOP/s or GB/s
    if "fastconv" in stats:
        t_fc = stats["fastconv"]["median_s"]
        rate = stats["fastconv"]["rate"]
        if unit == "flop" and task.dtype in bench.peaks:
            rec["peak_gflops"] = bench.peaks[task.dtype] * nt
            rec["frac_peak"] = rate / rec["peak_gflops"]
        elif unit == "byte" and nt in bench.copy_bw:
            rec["copy_gbps"] = bench.copy_bw[nt]
            rec["frac_copy_bw"] = rate / rec["copy_gbps"]
        for other in ("torch", "numpy"):
            if other in stats:
                rec[f"ratio_{other}"] = stats[other]["median_s"] / t_fc
    return rec


def plan_entry(fastconv, task, nt):
    """fastconv's plans for an entry, asked before it is timed, and the
    error of a planner that failed (reported in the record, not fatal)."""
    try:
        return contenders.plan_of(fastconv, task, nt), None
    except Exception as exc:
        return {}, f"{type(exc).__name__}: {exc}"


def add_plans(rec, plans, error):
    """Records the plans in an entry's record; their algorithms (and
    kernels), joined by "+" for the two gradients, go to the notes."""
    if error:
        rec["plan_error"] = error
        rec["notes"].append(f"plan failed: {error}")
    if not plans:
        return
    rec["plan"] = {op: contenders.plan_record(p) for op, p in plans.items()}
    algorithms = [p["algorithm"] or "" for p in rec["plan"].values()]
    kernels = [p["kernel"] or "" for p in rec["plan"].values()]
    if any(algorithms):
        rec["algorithm"] = "+".join(a or "-" for a in algorithms)
    if any(kernels):
        rec["kernel"] = "+".join(k or "-" for k in kernels)
    note = rec.get("algorithm", "")
    if "kernel" in rec:
        note = f"{note} ({rec['kernel']})".strip()
    if note:
        rec["notes"].append(note)


def run_entry(bench, tr, nt):
    """Times one task at ``nt`` threads; returns its record."""
    args, task, fastconv = bench.args, tr.task, bench.fastconv
    if fastconv is not None:
        fastconv.set_num_threads(nt)
    if bench.torch is not None:
        bench.torch.set_num_threads(nt)
    entry_fns = dict(tr.fns)
    np_key = (task.op, task.dtype, nt)
    if tr.np_fn is not None and tr.np_skip_reason is None:
        predicted = bench.budget_np.predict(np_key, task.layer.kind, tr.work)
        if predicted > args.numpy_limit:
            tr.np_skip_reason = f"numpy skipped: ~{predicted:.1f} s/call"
        else:
            entry_fns["numpy"] = tr.np_fn
    if not entry_fns:
        raise SystemExit("nothing to time: fastconv, torch and numpy are all "
                         "unavailable or disabled")
    plans, plan_error = plan_entry(fastconv, task, nt) if fastconv else ({}, None)
    first, stats, dropped = time_contenders(bench, entry_fns, nt)
    if "numpy" in stats:
        bench.budget_np.record(np_key, tr.work, stats["numpy"]["median_s"])
    elif "numpy" in dropped:
        bench.budget_np.record(np_key, tr.work, dropped["numpy"])
        tr.np_skip_reason = f"numpy skipped: one call took {dropped['numpy']:.1f} s"
    check = check_results(first, task.dtype)
    del first
    rec = make_record(bench, tr, nt, stats, check)
    add_plans(rec, plans, plan_error)
    if tr.np_skip_reason:
        rec["notes"].append(tr.np_skip_reason)
    if check and not check["ok"]:
        rec["notes"].append(f"MISMATCH vs {check['against']}: rel err {check['rel_err']:.1e}")
    return rec


def run_entries(bench, tasks, threads):
    """Every task at every thread count, in order; returns the records."""
    bench.l2_bytes = measure.parse_size(measure.cpu_caches().get("L2", ""))
    records = []
    progress = Progress(len(tasks) * len(threads), "benchmark")
    done = 0
    for ti, task in enumerate(tasks):
        tr = TaskRun(bench, task, bench.args.seed + ti)
        for nt in threads:
            progress.update(done, f"{task.name} {task.op} {task.dtype} t{nt}")
            records.append(run_entry(bench, tr, nt))
            done += 1
        del tr
    progress.update(done, "done")
    progress.close()
    if bench.fastconv is not None:
        bench.fastconv.set_num_threads(None)
    return records


def results_of(bench, threads, dtypes, ops, records):
    """The JSON document of the run."""
    args, fastconv, torch = bench.args, bench.fastconv, bench.torch
    return report.results_document(
        suite="quick" if args.quick else "full",
        command=" ".join([os.path.basename(sys.executable)] + sys.argv),
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        machine=measure.machine_info(),
        versions={
            "fastconv": getattr(fastconv, "__version__", None),
            "fastconv_path": os.path.dirname(fastconv.__file__) if fastconv else None,
            "torch": getattr(torch, "__version__", None),
            "numpy": np.__version__,
        },
        fastconv_config=bench.fc_info,
        unavailable={k: v for k, v in (("fastconv", bench.fc_err), ("torch", bench.torch_err))
                     if v},
        peaks=bench.peaks,
        copy_bw=bench.copy_bw,
        settings={"threads": threads, "dtypes": list(dtypes), "ops": list(ops or []),
                  "filter": args.filter, "repeat": args.repeat, "budget_s": args.budget,
                  "numpy_limit_s": args.numpy_limit, "seed": args.seed,
                  "gap_s": args.gap, "malloc": bench.malloc_note},
        records=records)


def run(args):
    """Runs the selected entries; returns the results (None after --list)."""
    bench = Bench(args)
    threads, dtypes, ops, tasks = select_entries(args)
    if args.list:
        for t in tasks:
            print(f"{t.name:48s} {t.op:10s} {t.dtype}")
        print(f"{len(tasks)} entries x {len(threads)} thread count(s)")
        return None
    if not tasks:
        raise SystemExit("no benchmark entry matches the given --op / --dtype / --filter")
    print_header(bench, tasks, threads, sys.stdout)
    measure_ceilings(bench, tasks, threads, sys.stdout)
    records = run_entries(bench, tasks, threads)
    return results_of(bench, threads, dtypes, ops, records)


# ------------------------------------------------------------------- main

def build_parser():
    p = argparse.ArgumentParser(
        description="Time fastconv's convolution and pooling against PyTorch and a "
                    "NumPy im2col baseline.",
        epilog="--op takes op names (fwd, bwd_data, bwd_weight, pool_fwd, pool_bwd) or "
               "groups (conv, bwd, pool, all), comma-separated.")
    p.add_argument("--quick", action="store_true",
                   help="a handful of entries (about a minute) instead of the full suite")
    p.add_argument("--threads", default="both",
                   help="1, all, both (default) or a number of threads")
    p.add_argument("--dtype", default="both", help="float32, float64 or both (default)")
    p.add_argument("--op", default=None, help="only these ops, e.g. fwd or bwd,pool")
    p.add_argument("--filter", default=None, help="only layers whose name contains this")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed rounds per entry (default 7, quick 5; at least 3)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed rounds per entry before rounds are cut "
                        "(default 3, quick 1.5)")
    p.add_argument("--numpy-limit", type=float, default=1.0,
                   help="skip the NumPy baseline where a call is predicted to take "
                        "longer than this many seconds (default 1)")
    p.add_argument("--no-fastconv", action="store_true",
                   help="do not time fastconv (compare the baselines only)")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    p.add_argument("--no-numpy", action="store_true", help="do not time the NumPy baseline")
    p.add_argument("--json", default=None,
                   help="write results here (default benchmarks/results/<suite>.json)")
    p.add_argument("--plot", default=None,
                   help="write the PNG plot here (default benchmarks/results/<suite>.png)")
    p.add_argument("--no-save", action="store_true", help="write neither JSON nor plot")
    p.add_argument("--peak-seconds", type=float, default=0.3,
                   help="duration of each FMA-peak measurement (default 0.3)")
    p.add_argument("--gap", type=float, default=0.01,
                   help="untimed pause (s) between samples at more than one thread, "
                        "for the previous contender's spinning workers to sleep "
                        "(default 0.01)")
    p.add_argument("--malloc", choices=("retain", "default"), default="retain",
                   help="retain (default): make glibc keep freed memory so that "
                        "per-call buffers are not page-faulted in on every call; "
                        "default: leave malloc as it is")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="list the entries and exit")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.repeat is None:
        args.repeat = 5 if args.quick else 7
    if args.budget is None:
        args.budget = 1.5 if args.quick else 3.0
    args.repeat = max(3, args.repeat)
    results = run(args)
    if results is None:
        return 0
    print()
    report.print_table(results)
    report.print_summary(results)
    if not args.no_save:
        tag = results["suite"]
        json_path = args.json or os.path.join(HERE, "results", f"{tag}.json")
        plot_path = args.plot or os.path.join(HERE, "results", f"{tag}.png")
        report.write_json(results, json_path)
        print(f"\nJSON: {json_path}")
        if __package__:
            from . import plot as plotmod
        else:
            import plot as plotmod
        message = plotmod.make_plot(results, plot_path)
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
