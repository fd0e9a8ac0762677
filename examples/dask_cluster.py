"""Run a fastconv network over a batch of images that is cut into chunks,
on a dask.distributed cluster.

    INPUT 3xSxS -> CONV 3x3 (16) -> RELU -> POOL 3x3/2 -> CONV 3x3 /2 (32) -> RELU -> AVG POOL 2x2

The images are made on the workers, chunk by chunk (dask's random
generator), so the whole batch never has to fit in one process: each worker
holds a few chunks at a time, and fastconv.dask cuts every layer along the
batch and, with the window's halo, along the height and width.  Only the
per-channel means of the result come back.

With --check the batch is small enough to hold: the script also runs the
network in memory and compares (pooling gives the same bits; the
convolutions agree to rounding, see fastconv/dask.py).

Needs the optional extra:  pip install 'fastconv[dask]'

    python examples/dask_cluster.py                          # 2 worker processes
    python examples/dask_cluster.py --batch 4 --size 48 --check --no-processes
"""

import argparse
import sys
import time

import numpy as np

import fastconv
import fastconv.dask as fd
from fastconv.modules import AvgPool2d, Conv2d, MaxPool2d, ReLU, Sequential


def network(seed):
    return Sequential(
        Conv2d(3, 16, 3, padding=1, seed=seed),
        ReLU(),
        MaxPool2d(3, stride=2, padding=1, strict=False),
        Conv2d(16, 32, 3, stride=2, padding=1, seed=seed + 1, strict=False),
        ReLU(),
        AvgPool2d(2, strict=False),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="images (default 64)")
    p.add_argument("--size", type=int, default=256, help="image height and width (256)")
    p.add_argument("--chunk", type=int, default=None,
                   help="chunk height and width (default: half the image)")
    p.add_argument("--batch-chunk", type=int, default=8, help="images per chunk (8)")
    p.add_argument("--workers", type=int, default=2, help="worker count (2)")
    p.add_argument("--threads-per-worker", type=int, default=1)
    p.add_argument("--processes", action=argparse.BooleanOptionalAction, default=True,
                   help="workers in their own processes (default), or threads of this one")
    p.add_argument("--check", action="store_true",
                   help="also compute in memory and compare (small sizes only)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import dask.array as da
    from dask.distributed import Client, LocalCluster

    chunk = args.chunk or max(1, args.size // 2)
    net = network(args.seed)
    print(net)
    shape = (args.batch, 3, args.size, args.size)
    x = da.random.default_rng(args.seed).standard_normal(
        shape, chunks=(args.batch_chunk, 3, chunk, chunk), dtype=np.float32)
    y = fd.forward(net, x)
    print(f"input  {x.shape} in {x.npartitions} chunks of {x.chunksize}, "
          f"{x.nbytes / 2**20:.1f} MiB")
    print(f"output {y.shape} in {y.npartitions} chunks of {y.chunksize}")

    # No dashboard, and worker processes talk over the loopback interface only
    # (threads of this process talk in memory).
    where = {"host": "127.0.0.1"} if args.processes else {}
    with LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                      processes=args.processes, dashboard_address=None, **where) \
            as cluster, Client(cluster) as client:
        # Dask runs threads_per_worker blocks at a time in each worker; one
        # fastconv thread per block keeps the cores from being oversubscribed.
        client.run(fastconv.set_num_threads, 1)
        start = time.perf_counter()
        means = y.mean(axis=(0, 2, 3)).compute()
        seconds = time.perf_counter() - start
        print(f"{args.workers} workers ({'processes' if args.processes else 'threads'}): "
              f"{seconds:.2f} s")
        print("channel means:", np.array2string(means[:8], precision=4), "...")
        if args.check:
            xs, ys = client.compute([x, y], sync=True)

    if args.check:
        ref = net(xs)
        same = np.array_equal(ys, ref)
        err = float(np.abs(ys - ref).max() / max(np.abs(ref).max(), 1e-30))
        print(f"in memory: {'the same bits' if same else f'max relative difference {err:.2g}'}")
        if not np.allclose(means, ref.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6) or err > 1e-5:
            print("the cluster's result differs from the in-memory one", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
