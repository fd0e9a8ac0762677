"""The named layers of the benchmark suite.

Each convolution is timed as three separate operations (forward, gradient with
respect to the input, gradient with respect to the weights and bias); each
pooling layer as forward and backward. Every layer runs in float32 and
float64.

Batch sizes are chosen so that the whole suite takes minutes on a 2-core
machine while every layer keeps its real geometry:

* ResNet-50: batch 32 and batch 1. In float64 the batch-32 layers run at
  batch 8 (twice the bytes, half the flop rate, four times fewer images);
  their names say ``b8``.
* VGG-16: batch 2 (each 3x3 layer is then about 7 GFLOP); float64 batch 1.
* AlexNet: batch 16; float64 batch 8.
* CS231n CIFAR-10: the assignment's own batches (100, 50, 128).
* Pooling: ResNet and VGG inputs at batch 32 and 8, the CS231n input at 100.
* Edge cases: small odd batches, odd channel counts and sizes.
* Depthwise (MobileNetV2's 3x3 and EfficientNet-B0's 5x5, stride 1 and 2,
  one input channel per group) and grouped (ResNeXt-50 32x4d, 32 groups of 4
  channels) layers: batch 8, float64 batch 4.

The layer name carries the batch that actually ran (``b32``, ``b8`` ...), so a
float64 entry with a smaller batch is never mistaken for the float32 one.
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple

CONV_OPS = ("fwd", "bwd_data", "bwd_weight")
POOL_OPS = ("pool_fwd", "pool_bwd")
ALL_OPS = CONV_OPS + POOL_OPS
DTYPES = ("float32", "float64")

# Names accepted by --op besides the op names themselves.
OP_ALIASES = {
    "conv": CONV_OPS,
    "bwd": ("bwd_data", "bwd_weight"),
    "pool": POOL_OPS,
    "all": ALL_OPS,
}


def _out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


@dataclass(frozen=True)
class Conv:
    """A convolution layer: x (N, C, H, W), w (K, C / groups, FH, FW)."""
    net: str              # group label, e.g. "resnet50"
    desc: str             # e.g. "conv1 3->64 7x7 s2 p3 @224"
    N: int
    C: int
    H: int
    W: int
    K: int
    FH: int
    FW: int
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    batch64: Optional[int] = None     # smaller batch used in float64
    strict: bool = True               # False: floor the output size, as PyTorch does
    groups: int = 1                   # C and K cut into this many groups
    dilation: Tuple[int, int] = (1, 1)
    # A transposed convolution (conv_transpose2d) of x (N, C, H, W) with w
    # (C, K, FH, FW): "fwd" is the transposed convolution, "bwd_data" its
    # input gradient (a convolution of dy), "bwd_weight" its weight gradient.
    transposed: bool = False
    kind: str = field(default="conv", init=False)

    def batch(self, dtype):
        return self.batch64 if (dtype == "float64" and self.batch64) else self.N

    def name(self, dtype):
        return f"{self.net} b{self.batch(dtype)} {self.desc}"

    @property
    def out_hw(self):
        (dh, dw), (sh, sw), (ph, pw) = self.dilation, self.stride, self.padding
        if self.transposed:
            return ((self.H - 1) * sh - 2 * ph + dh * (self.FH - 1) + 1,
                    (self.W - 1) * sw - 2 * pw + dw * (self.FW - 1) + 1)
        return (_out(self.H, dh * (self.FH - 1) + 1, sh, ph),
                _out(self.W, dw * (self.FW - 1) + 1, sw, pw))

    def flops(self, dtype):
        """2*N*K*(C/groups)*FH*FW*H2*W2: a multiply and an add per weight per
        output (for a transposed layer, per weight per input pixel)."""
        h2, w2 = (self.H, self.W) if self.transposed else self.out_hw
        return (2 * self.batch(dtype) * self.K * (self.C // self.groups) * self.FH * self.FW
                * h2 * w2)

    @property
    def pointwise(self):
        return self.FH == 1 and self.FW == 1

    ops = CONV_OPS


@dataclass(frozen=True)
class Pool:
    """A pooling layer over x (N, C, H, W)."""
    net: str
    desc: str
    mode: str             # "max" or "avg"
    N: int
    C: int
    H: int
    W: int
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int] = (0, 0)
    count_include_pad: bool = True
    batch64: Optional[int] = None
    kind: str = field(default="pool", init=False)

    @property
    def strict(self):
        """False (floor the output size, as PyTorch does) where the formula
        does not divide exactly, e.g. ResNet's stem pool: (112-3+2)/2+1 = 56.5."""
        return _exact((self.H, self.W), self.kernel, self.stride, self.padding)

    def batch(self, dtype):
        return self.batch64 if (dtype == "float64" and self.batch64) else self.N

    def name(self, dtype):
        return f"{self.net} b{self.batch(dtype)} {self.desc}"

    @property
    def out_hw(self):
        return (_out(self.H, self.kernel[0], self.stride[0], self.padding[0]),
                _out(self.W, self.kernel[1], self.stride[1], self.padding[1]))

    def bytes_moved(self, op, dtype):
        """Bytes a pass must at least read and write: forward reads x and
        writes y; max backward reads dy and x (to find the argmax) and writes
        dx; average backward reads dy and writes dx."""
        item = 4 if dtype == "float32" else 8
        h2, w2 = self.out_hw
        nc = self.batch(dtype) * self.C
        x, y = nc * self.H * self.W, nc * h2 * w2
        if op == "pool_fwd":
            return item * (x + y)
        if self.mode == "max":
            return item * (y + x + x)
        return item * (y + x)

    ops = POOL_OPS


def _sq(v):
    return (v, v)


def _exact(sizes, kernel, stride, padding):
    return all((n + 2 * p - f) % s == 0
               for n, f, s, p in zip(sizes, kernel, stride, padding))


def conv(net, desc, N, C, HW, K, F, s=1, p=0, batch64=None, groups=1, dilation=1,
         transposed=False):
    """HW input size, F kernel, s stride, p padding: ints, or (h, w) pairs.
    Where the output-size formula does not divide exactly (ResNet's stem and
    downsampling layers, AlexNet's conv1) the layer runs with strict=False,
    i.e. floored, as the networks define it."""
    h, w = (HW, HW) if isinstance(HW, int) else HW
    fh, fw = (F, F) if isinstance(F, int) else F
    st = _sq(s) if isinstance(s, int) else tuple(s)
    pd = _sq(p) if isinstance(p, int) else tuple(p)
    dl = _sq(dilation) if isinstance(dilation, int) else tuple(dilation)
    strict = transposed or _exact((h, w), (dl[0] * (fh - 1) + 1, dl[1] * (fw - 1) + 1), st, pd)
    return Conv(net, desc, N, C, h, w, K, fh, fw, st, pd, batch64, strict, groups, dl,
                transposed)


def dw(net, desc, N, C, HW, F, s=1, batch64=None):
    """A depthwise layer: C channels, one F x F filter each, 'same'-style
    padding F // 2 (floored where the stride does not divide)."""
    return conv(net, desc, N, C, HW, C, F, s, F // 2, batch64, groups=C)


def _resnet(N, batch64):
    net = "resnet50"
    return [
        conv(net, "conv1 3->64 7x7 s2 p3 @224", N, 3, 224, 64, 7, 2, 3, batch64),
        conv(net, "1x1 64->64 @56", N, 64, 56, 64, 1, batch64=batch64),
        conv(net, "3x3 64->64 p1 @56", N, 64, 56, 64, 3, 1, 1, batch64),
        conv(net, "1x1 64->256 @56", N, 64, 56, 256, 1, batch64=batch64),
        conv(net, "1x1 256->64 @56", N, 256, 56, 64, 1, batch64=batch64),
        conv(net, "3x3 128->128 p1 @28", N, 128, 28, 128, 3, 1, 1, batch64),
        conv(net, "1x1 128->512 @28", N, 128, 28, 512, 1, batch64=batch64),
        conv(net, "1x1 s2 256->512 @56 (downsample)", N, 256, 56, 512, 1, 2, 0, batch64),
        conv(net, "3x3 256->256 p1 @14", N, 256, 14, 256, 3, 1, 1, batch64),
        conv(net, "1x1 1024->256 @14", N, 1024, 14, 256, 1, batch64=batch64),
        conv(net, "3x3 512->512 p1 @7", N, 512, 7, 512, 3, 1, 1, batch64),
        conv(net, "1x1 2048->512 @7", N, 2048, 7, 512, 1, batch64=batch64),
    ]


CONV_LAYERS = (
    _resnet(32, 8)
    + _resnet(1, None)
    + [
        conv("vgg16", "3x3 3->64 p1 @224", 2, 3, 224, 64, 3, 1, 1, 1),
        conv("vgg16", "3x3 64->64 p1 @224", 2, 64, 224, 64, 3, 1, 1, 1),
        conv("vgg16", "3x3 128->128 p1 @112", 2, 128, 112, 128, 3, 1, 1, 1),
        conv("vgg16", "3x3 256->256 p1 @56", 2, 256, 56, 256, 3, 1, 1, 1),
        conv("vgg16", "3x3 512->512 p1 @28", 2, 512, 28, 512, 3, 1, 1, 1),
        conv("vgg16", "3x3 512->512 p1 @14", 2, 512, 14, 512, 3, 1, 1, 1),

        # (224 - 11 + 2*2)/4 + 1 = 55.25: floored to 55 as in torchvision's AlexNet.
        conv("alexnet", "conv1 3->64 11x11 s4 p2 @224", 16, 3, 224, 64, 11, 4, 2, 8),
        conv("alexnet", "conv2 64->192 5x5 p2 @27", 16, 64, 27, 192, 5, 1, 2, 8),
        conv("alexnet", "conv3 192->384 3x3 p1 @13", 16, 192, 13, 384, 3, 1, 1, 8),
        conv("alexnet", "conv4 384->256 3x3 p1 @13", 16, 384, 13, 256, 3, 1, 1, 8),
        conv("alexnet", "conv5 256->256 3x3 p1 @13", 16, 256, 13, 256, 3, 1, 1, 8),

        conv("cs231n", "3->25 3x3 s2 p1 @31", 100, 3, 31, 25, 3, 2, 1),
        conv("cs231n", "3->32 7x7 p3 @32", 50, 3, 32, 32, 7, 1, 3),
        conv("cs231n", "3->32 5x5 p2 @32", 128, 3, 32, 32, 5, 1, 2),
        conv("cs231n", "32->32 3x3 p1 @32", 128, 32, 32, 32, 3, 1, 1),

        conv("edge", "odd 3x3 13->29 p1 @29x31", 7, 13, (29, 31), 29, 3, 1, 1),
        conv("edge", "odd 5x3 17->33 s(1,2) p(2,1) @23x37", 5, 17, (23, 37), 33, (5, 3),
             (1, 2), (2, 1)),
        conv("edge", "3x3 s2 p1 37->45 odd @33", 3, 37, 33, 45, 3, 2, 1),
        conv("edge", "1x1 s2 96->48 odd @27", 4, 96, 27, 48, 1, 2, 0),
        conv("edge", "batch1 3x3 1->1 p1 @65", 1, 1, 65, 1, 3, 1, 1),
        # A spectrogram of 161 frequency bins x 700 frames, stored frames-major
        # (H = 700 time, W = 161 frequency) so that the 20x5 kernel at stride 2
        # satisfies the output-size formula exactly: (700-20)/2+1 = 341,
        # (161-5)/2+1 = 79.
        conv("edge", "speech C=1 1->32 20x5 s2 on 161x700", 8, 1, (700, 161), 32, (20, 5), 2, 0),

        dw("mobilenetv2", "dw 3x3 32 p1 @112", 8, 32, 112, 3, 1, 4),
        dw("mobilenetv2", "dw 3x3 96 s2 p1 @112", 8, 96, 112, 3, 2, 4),
        dw("mobilenetv2", "dw 3x3 144 p1 @56", 8, 144, 56, 3, 1, 4),
        dw("mobilenetv2", "dw 3x3 144 s2 p1 @56", 8, 144, 56, 3, 2, 4),
        dw("mobilenetv2", "dw 3x3 192 p1 @28", 8, 192, 28, 3, 1, 4),
        dw("mobilenetv2", "dw 3x3 384 p1 @14", 8, 384, 14, 3, 1, 4),
        dw("mobilenetv2", "dw 3x3 576 s2 p1 @14", 8, 576, 14, 3, 2, 4),
        dw("efficientnet", "dw 5x5 144 s2 p2 @56", 8, 144, 56, 5, 2, 4),
        dw("efficientnet", "dw 5x5 240 p2 @28", 8, 240, 28, 5, 1, 4),
        conv("resnext50", "3x3 128->128 g32 p1 @56", 8, 128, 56, 128, 3, 1, 1, 4, groups=32),
        conv("resnext50", "3x3 512->512 g32 p1 @14", 8, 512, 14, 512, 3, 1, 1, 4, groups=32),
        conv("resnext50", "3x3 256->256 g32 s2 p1 @56", 8, 256, 56, 256, 3, 2, 1, 4, groups=32),
        conv("resnext50", "3x3 512->512 g32 s2 p1 @28", 8, 512, 28, 512, 3, 2, 1, 4, groups=32),
        conv("resnext50", "3x3 1024->1024 g32 s2 p1 @14", 8, 1024, 14, 1024, 3, 2, 1, 4,
             groups=32),
        conv("deeplab", "aspp 3x3 256->256 d2 p2 @33", 4, 256, 33, 256, 3, 1, 2, 2, dilation=2),
        conv("deeplab", "aspp 3x3 256->256 d6 p6 @33", 4, 256, 33, 256, 3, 1, 6, 2, dilation=6),
        conv("unet", "up 2x2 s2 128->64 @28", 8, 128, 28, 64, 2, 2, 0, 4, transposed=True),
        conv("dcgan", "up 4x4 s2 p1 256->128 @8", 32, 256, 8, 128, 4, 2, 1, 8,
             transposed=True),
    ]
)

POOL_LAYERS = [
    # ResNet's stem pool: (112 - 3 + 2)/2 + 1 = 56.5, floored to 56 as in
    # every framework.
    Pool("resnet50", "max 3x3 s2 p1 64@112", "max", 32, 64, 112, 112, (3, 3), (2, 2),
         (1, 1), batch64=16),
    Pool("vgg16", "max 2x2 s2 64@224", "max", 8, 64, 224, 224, (2, 2), (2, 2), batch64=4),
    Pool("vgg16", "max 2x2 s2 128@112", "max", 8, 128, 112, 112, (2, 2), (2, 2), batch64=4),
    Pool("cs231n", "max 2x2 s2 3@32", "max", 100, 3, 32, 32, (2, 2), (2, 2)),
    Pool("cs231n", "avg 2x2 s2 3@32", "avg", 100, 3, 32, 32, (2, 2), (2, 2)),
    Pool("vgg16", "avg 2x2 s2 64@224", "avg", 8, 64, 224, 224, (2, 2), (2, 2), batch64=4),
    Pool("resnet50", "global avg 7x7 2048@7", "avg", 32, 2048, 7, 7, (7, 7), (7, 7)),
    Pool("edge", "max 3x3 s2 odd 96@27", "max", 16, 96, 27, 27, (3, 3), (2, 2)),
]

LAYERS = CONV_LAYERS + POOL_LAYERS


@dataclass(frozen=True)
class Task:
    """One line of the results table (before the thread count is applied)."""
    layer: object
    op: str
    dtype: str

    @property
    def name(self):
        return self.layer.name(self.dtype)


def _find(desc, net=None, batch=None):
    for layer in LAYERS:
        if layer.desc == desc and (net is None or layer.net == net) and \
                (batch is None or layer.N == batch):
            return layer
    raise KeyError(desc)


def full_tasks():
    return [Task(layer, op, dt) for layer in LAYERS for dt in DTYPES for op in layer.ops]


def quick_tasks():
    """About a minute on two cores: the CS231n assignment shapes in every op,
    both dtypes; a ResNet 3x3 and 1x1 layer at batch 1; the ResNet stem pool."""
    cs_conv = _find("3->25 3x3 s2 p1 @31", "cs231n")
    cs_max = _find("max 2x2 s2 3@32", "cs231n")
    cs_avg = _find("avg 2x2 s2 3@32", "cs231n")
    r3 = _find("3x3 64->64 p1 @56", "resnet50", 1)
    r1 = _find("1x1 256->64 @56", "resnet50", 1)
    cs_deep = _find("32->32 3x3 p1 @32", "cs231n")
    stem_pool = _find("max 3x3 s2 p1 64@112", "resnet50")
    tasks = []
    for dt in DTYPES:
        tasks += [Task(cs_conv, op, dt) for op in CONV_OPS]
        tasks += [Task(cs_max, op, dt) for op in POOL_OPS]
    tasks += [Task(cs_avg, op, "float32") for op in POOL_OPS]
    tasks += [Task(r3, op, "float32") for op in CONV_OPS]
    tasks += [Task(r1, op, "float32") for op in CONV_OPS]
    tasks += [Task(cs_deep, "fwd", "float32")]
    tasks += [Task(stem_pool, op, "float32") for op in POOL_OPS]
    return tasks


def expand_ops(spec):
    """'fwd,pool' -> ('fwd', 'pool_fwd', 'pool_bwd'); raises on unknown names."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        names = OP_ALIASES.get(part, (part,) if part in ALL_OPS else None)
        if names is None:
            raise ValueError(f"unknown op {part!r}; choose from "
                             f"{', '.join(ALL_OPS + tuple(OP_ALIASES))}")
        out += [n for n in names if n not in out]
    return tuple(out)


def select(quick=False, ops=None, dtypes=None, name_filter=None):
    tasks = quick_tasks() if quick else full_tasks()
    if ops:
        tasks = [t for t in tasks if t.op in ops]
    if dtypes:
        tasks = [t for t in tasks if t.dtype in dtypes]
    if name_filter:
        needle = name_filter.lower()
        tasks = [t for t in tasks if needle in t.name.lower()]
    return tasks
