"""RoIAlign for training on a CPU, as one sparse matrix.

A profile of Faster R-CNN's training step (the demo, 160 px, batch 4, bf16, 2 cores) put 44 %
of it in torchvision's CPU ``roi_align`` backward: its kernel adds every sample's gradient
into the feature map one value at a time, on one thread (about 100 ms for 128 RoIs of 256
channels at 7 x 7, 390 ms for 512).

RoIAlign is linear in the features: each output bin is a fixed weighted sum of at most
4 x ``sampling_ratio``² feature pixels (bilinear corners of its sample points). Written as a
sparse matrix ``S`` (one row per bin of every RoI, one column per pixel of every pyramid
level), the forward is ``S @ X`` and the backward ``Sᵀ @ dY``: sparse-dense products that
torch runs on every core (12 ms for the 512 RoIs' backward). The weights follow
torchvision's kernel rule for rule (``aligned=False``, as its ``MultiScaleRoIAlign`` pools;
widths under one pixel counted as one; samples beyond a pixel outside the map count zero,
those within it clamp to the edge), so the result equals torchvision's to float rounding
(``tests/test_tv_rcnn.py``).

Only training on a CPU with a fixed sampling ratio takes this path: evaluation, ONNX export
and other devices run torchvision's own op.
"""

from __future__ import annotations

import warnings

import torch
from torchvision.ops import MultiScaleRoIAlign


class SparseMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's :class:`~torchvision.ops.MultiScaleRoIAlign` (the same levels, scales and
    output), pooled through :func:`sampling_matrix` while training on a CPU."""

    @classmethod
    def like(cls, pool: MultiScaleRoIAlign) -> SparseMultiScaleRoIAlign:
        return cls(pool.featmap_names, pool.output_size, pool.sampling_ratio,
                   canonical_scale=pool.canonical_scale, canonical_level=pool.canonical_level)

    def forward(self, x, boxes, image_shapes):
        features = [v for k, v in x.items() if k in self.featmap_names]
        if not (self.training and self.sampling_ratio > 0 and all(f.device.type == "cpu" for f in features)):
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            super().forward(x, [b[:0] for b in boxes], image_shapes)  # torchvision sets up its levels; no RoI pooled
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)])
        if len(features) > 1:
            levels = self.map_levels(boxes)
        else:
            levels = torch.zeros(len(rois), dtype=torch.int64)
        matrix = sampling_matrix(features, self.scales, rois, levels, self.output_size, self.sampling_ratio)
        flat = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]) for f in features])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            transposed = matrix.t().to_sparse_csr()
        pooled = _SparseProduct.apply(flat, matrix, transposed)
        ph, pw = self.output_size
        # NCHW as torchvision returns it (its heads .view() their outputs), in the features' dtype
        return pooled.reshape(len(rois), ph, pw, -1).permute(0, 3, 1, 2).to(
            features[0].dtype, memory_format=torch.contiguous_format)


def sampling_matrix(features, scales, rois, levels, output_size, sampling_ratio: int) -> torch.Tensor:
    """``(rois * ph * pw, pixels of every level)``, CSR: row ``(k, py, px)`` holds the weights
    of the feature pixels that RoI ``k``'s bin ``(py, px)`` averages (channels-last pixels,
    the levels one after another). ``rois``: ``(k, 5)`` batch index and xyxy in image pixels."""
    s = sampling_ratio
    ph, pw = output_size
    sizes = torch.tensor([f.shape[2:] for f in features], dtype=torch.int64)  # (levels, 2): h, w
    pixels = torch.tensor([f.shape[0] * f.shape[2] * f.shape[3] for f in features], dtype=torch.int64)
    start = torch.cumsum(pixels, 0) - pixels
    h, w = sizes[levels, 0], sizes[levels, 1]  # (k,)
    scale = torch.tensor(scales, dtype=rois.dtype)[levels]
    x0, y0 = rois[:, 1] * scale, rois[:, 2] * scale
    roi_w = (rois[:, 3] * scale - x0).clamp(min=1.0)
    roi_h = (rois[:, 4] * scale - y0).clamp(min=1.0)
    ys = _sample_points(y0, roi_h, ph, s)  # (k, ph * s)
    xs = _sample_points(x0, roi_w, pw, s)  # (k, pw * s)
    (y_lo, y_hi, fy), y_in = _corners(ys, h[:, None]), (ys >= -1) & (ys <= h[:, None])
    (x_lo, x_hi, fx), x_in = _corners(xs, w[:, None]), (xs >= -1) & (xs <= w[:, None])
    base = (start[levels] + rois[:, 0].long() * h * w)[:, None, None]
    cols, weights = [], []
    for y, wy in ((y_lo, (1 - fy) * y_in), (y_hi, fy * y_in)):
        for x, wx in ((x_lo, (1 - fx) * x_in), (x_hi, fx * x_in)):
            cols.append(base + y[:, :, None] * w[:, None, None] + x[:, None, :])
            weights.append(wy[:, :, None] * wx[:, None, :])
    k = len(rois)
    bins = (torch.arange(k)[:, None, None] * ph * pw + (torch.arange(ph * s) // s)[None, :, None] * pw
            + (torch.arange(pw * s) // s)[None, None, :])  # (k, ph * s, pw * s): each sample's bin
    rows = bins[..., None].expand(k, ph * s, pw * s, 4)
    matrix = torch.sparse_coo_tensor(
        torch.stack([rows.reshape(-1), torch.stack(cols, -1).reshape(-1)]),
        (torch.stack(weights, -1) / (s * s)).reshape(-1).float(),
        (k * ph * pw, int(pixels.sum())),
        check_invariants=False,  # built in range above
    )
    with warnings.catch_warnings():  # torch's one-time notice that CSR is a beta layout
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return matrix.coalesce().to_sparse_csr()  # duplicates (samples sharing a pixel) summed


def _sample_points(start, length, bins: int, s: int) -> torch.Tensor:
    """The ``s`` evenly spread sample coordinates in each of ``bins`` bins, per RoI."""
    steps = (torch.arange(bins * s, dtype=start.dtype) // s) + ((torch.arange(bins * s) % s) + 0.5) / s
    return start[:, None] + steps[None, :] * (length / bins)[:, None]


def _corners(v, size):
    """torchvision's rule: a coordinate below 0 clamps to 0; from the last pixel on, both
    corners are the last pixel. Returns the low and high pixel and the high one's weight."""
    v = v.clamp(min=0)
    low = v.floor().long()
    edge = low >= size - 1
    low = torch.where(edge, size - 1, low)
    high = torch.where(edge, size - 1, low + 1)
    return low, high, torch.where(edge, torch.zeros_like(v), v - low)


class _SparseProduct(torch.autograd.Function):
    """``matrix @ flat`` with its gradient ``transposed @ grad``, in fp32 (under autocast too)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, flat, matrix, transposed):
        ctx.transposed = transposed
        return torch.sparse.mm(matrix, flat)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        return torch.sparse.mm(ctx.transposed, grad.float().contiguous()), None, None
