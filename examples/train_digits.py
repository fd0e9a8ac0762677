"""Train a small ConvNet on scikit-learn's handwritten digits with fastconv.

    INPUT 1x8x8 -> [CONV 3x3 -> RELU -> POOL 2x2] x 2 -> FC -> RELU -> FC -> 10 scores

The 1,797 8x8 digit images ship inside scikit-learn (no download).  The script
prints the network's summary, one progress bar per epoch (tqdm's on a terminal
where tqdm is installed, otherwise one line per epoch), the test accuracy,
and saves a picture with the loss curve, the learned first-layer filters and
the activation maps of one test digit.

Needs the optional extras:  pip install ".[examples]"  (scikit-learn, matplotlib;
".[progress]" adds tqdm's progress bar)

    python examples/train_digits.py                 # defaults: 12 epochs, seed 0
    python examples/train_digits.py --epochs 3 --quiet --out /tmp/digits.png
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

import fastconv as fc
from fastconv.losses import softmax_cross_entropy
from fastconv.modules import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from fastconv.optim import Adam

DEFAULT_OUT = Path(__file__).resolve().with_suffix(".png")


def load_data(seed, test_fraction=0.25):
    """The digits as float32 (N, 1, 8, 8), split once, standardised with the
    training set's statistics."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("this example needs scikit-learn: pip install scikit-learn")
    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    mean, std = x_train.mean(), x_train.std()
    return ((x_train - mean) / std, y_train, (x_test - mean) / std, y_test)


def build_model(seed):
    # One independent stream per layer, all derived from the one seed.
    s = np.random.SeedSequence(seed).spawn(4)
    return Sequential(
        Conv2d(1, 16, 3, padding=1, seed=s[0]),
        ReLU(),
        MaxPool2d(2),
        Conv2d(16, 32, 3, padding=1, seed=s[1]),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(32 * 2 * 2, 64, seed=s[2]),
        ReLU(),
        Linear(64, 10, seed=s[3]),
    )


def _load_progress():
    """The benchmark suite's progress bar (benchmarks/progress.py), which this
    example shares: tqdm's on a terminal where tqdm is installed, else one
    plain line per epoch.  Loaded from its file, so nothing is added to
    sys.path."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "progress.py"
    spec = importlib.util.spec_from_file_location("fastconv_progress", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Progress


Progress = _load_progress()


def accuracy(model, x, y, batch_size=500):
    correct = 0
    for i in range(0, len(x), batch_size):
        scores = model(x[i:i + batch_size])
        correct += int((scores.argmax(axis=1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def train(epochs=12, batch_size=32, lr=3e-3, seed=0, quiet=False, stream=None):
    """Train and evaluate; returns a dict with the model, the history and the
    test accuracy."""
    stream = sys.stdout if stream is None else stream
    x_train, y_train, x_test, y_test = load_data(seed)
    model = build_model(seed)
    if not quiet:
        print(f"digits: {len(x_train)} training and {len(x_test)} test images of "
              f"1 x 8 x 8, fastconv {fc.__version__}", file=stream)
        model.summary(x_train.shape[1:], file=stream)
        print(file=stream)
    opt = Adam(model, lr=lr)
    rng = np.random.default_rng(seed)
    steps = -(-len(x_train) // batch_size)
    history = {"batch_loss": [], "epoch_loss": [], "train_acc": [], "test_acc": []}

    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        # Halve the step size over the last third so the final epochs settle.
        opt.lr = lr * (0.5 if epoch > 2 * epochs // 3 else 1.0)
        order = rng.permutation(len(x_train))
        # On a terminal a bar redrawn step by step; elsewhere one line per epoch.
        bar = Progress(steps, f"epoch {epoch:2d}/{epochs}", stream=stream, every=None,
                       enabled=not quiet)
        seen = correct = 0
        loss_sum = 0.0
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb, yb = x_train[idx], y_train[idx]
            scores = model(xb)
            loss, dscores = softmax_cross_entropy(scores, yb)
            # The input gradient of the first layer is never used.
            model.backward(dscores, need_dx=False)
            opt.step()
            history["batch_loss"].append(loss)
            seen += len(idx)
            loss_sum += loss * len(idx)
            correct += int((scores.argmax(axis=1) == yb).sum())
            bar.update(step + 1, f"loss {loss_sum / seen:.4f}, acc {100 * correct / seen:5.1f}%")
        history["epoch_loss"].append(loss_sum / seen)
        history["train_acc"].append(correct / seen)
        history["test_acc"].append(accuracy(model, x_test, y_test))
        bar.close(f"{bar.text}, test {100 * history['test_acc'][-1]:5.1f}%")
    seconds = time.perf_counter() - start

    return {"model": model, "history": history, "test_accuracy": history["test_acc"][-1],
            "train_seconds": seconds, "x_test": x_test, "y_test": y_test,
            "epochs": epochs}


def save_figure(result, path, index=0):
    """Loss curve, first-layer filters and the activation maps of one test digit."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, hist = result["model"], result["history"]
    digit = result["x_test"][index:index + 1]
    label = int(result["y_test"][index])
    # Run the layers one at a time to keep every intermediate activation.
    acts, a = [], digit
    for layer in model:
        a = layer(a)
        acts.append(a)
    pred = int(acts[-1].argmax())
    conv1 = acts[1][0]   # after the first CONV -> RELU: 16 x 8 x 8
    conv2 = acts[4][0]   # after the second CONV -> RELU: 32 x 4 x 4

    fig = plt.figure(figsize=(12, 9.5), layout="constrained")
    top, filt, maps1, maps2 = fig.subfigures(4, 1, height_ratios=[3.6, 1.0, 1.0, 1.8])

    ax_loss, ax_digit = top.subplots(1, 2, width_ratios=[3, 1])
    steps = len(hist["batch_loss"])
    per_epoch = steps / len(hist["epoch_loss"])
    ax_loss.plot(np.arange(1, steps + 1) / per_epoch, hist["batch_loss"],
                 color="tab:blue", alpha=0.3, lw=0.8, label="batch loss")
    ax_loss.plot(np.arange(1, len(hist["epoch_loss"]) + 1), hist["epoch_loss"],
                 "o-", color="tab:blue", label="epoch mean loss")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("softmax cross-entropy")
    ax_acc = ax_loss.twinx()
    epochs = np.arange(1, len(hist["test_acc"]) + 1)
    ax_acc.plot(epochs, 100 * np.array(hist["train_acc"]), "s--", color="tab:green",
                label="train accuracy")
    ax_acc.plot(epochs, 100 * np.array(hist["test_acc"]), "^-", color="tab:red",
                label="test accuracy")
    ax_acc.set_ylabel("accuracy (%)")
    lines = ax_loss.get_legend_handles_labels()
    more = ax_acc.get_legend_handles_labels()
    ax_loss.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center",
                   bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False)
    ax_loss.set_title(f"training: test accuracy {100 * result['test_accuracy']:.2f}% "
                      f"after {result['epochs']} epochs")
    ax_digit.imshow(digit[0, 0], cmap="gray_r")
    ax_digit.set_title(f"test digit {index}: label {label}, predicted {pred}")
    ax_digit.set_xticks([])
    ax_digit.set_yticks([])

    w = model[0].weight[:, 0]
    lim = np.abs(w).max()
    filt.suptitle("learned first-layer filters (3 x 3, blue < 0 < red)")
    for k, ax in enumerate(filt.subplots(1, len(w)).ravel()):
        ax.imshow(w[k], cmap="bwr", vmin=-lim, vmax=lim)
        ax.set_xticks([])
        ax.set_yticks([])

    for sub, act, title in ((maps1, conv1, "activation maps after CONV1 -> RELU (16 x 8 x 8)"),
                            (maps2, conv2, "activation maps after CONV2 -> RELU (32 x 4 x 4)")):
        sub.suptitle(title)
        cols = 16
        axes = sub.subplots(len(act) // cols, cols).ravel()
        # One colour scale per layer, so weak and strong maps can be compared.
        top_value = max(float(act.max()), 1e-12)
        for k, ax in enumerate(axes):
            ax.imshow(act[k], cmap="viridis", vmin=0.0, vmax=top_value)
            ax.set_xticks([])
            ax.set_yticks([])

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=12, help="passes over the training set (12)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step (32)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam step size (3e-3)")
    p.add_argument("--seed", type=int, default=0, help="split, initialisation and shuffling (0)")
    p.add_argument("--threads", type=int, default=None,
                   help="fastconv threads (default: all available)")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="where to save the picture (examples/train_digits.png)")
    p.add_argument("--no-plot", action="store_true", help="do not save a picture")
    p.add_argument("--quiet", action="store_true",
                   help="print only the final accuracy line")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        fc.set_num_threads(args.threads)
    t0 = time.perf_counter()
    result = train(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   seed=args.seed, quiet=args.quiet)
    total = time.perf_counter() - t0
    result["total_seconds"] = total
    print(f"test accuracy {100 * result['test_accuracy']:.2f}% "
          f"({len(result['y_test'])} images); training {result['train_seconds']:.1f} s, "
          f"total {total:.1f} s on {fc.get_num_threads()} thread(s)")
    result["out"] = None
    if not args.no_plot:
        try:
            result["out"] = save_figure(result, args.out)
        except ImportError:
            print("matplotlib is not installed (pip install matplotlib): no picture saved")
        else:
            if not args.quiet:
                print(f"saved {result['out']}")
    return result


if __name__ == "__main__":
    main()
