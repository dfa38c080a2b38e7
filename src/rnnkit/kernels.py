"""Hand-written backpropagation through time for the lecture's cells: the fast loop.

Autograd through a Python time loop spends most of its time on bookkeeping:
every step records a dozen small operations, slicing gates allocates full-size
gradients, and the recurrent weight's gradient is a skinny product per step.
These kernels run the same equations as ``rnnkit.cells`` with the graph
written out by hand, as haste and the fused kernels do:

* forward: per step one recurrent product and in-place element-wise work,
  every state kept for the backward pass;
* backward: per step the element-wise derivatives and one product with the
  transposed recurrent weight; the weight's gradient is then ONE product
  over all steps, dW = dZ^T [s_0 .. s_{T-1}], and the input projection's
  gradient flows back through autograd as one product too.

On the CPU, in float32, the recurrent products use oneDNN with the weight
packed once per sequence (the same primitive torch's compiler uses for
linear layers), about three times the rate of a plain ``mm`` at H=256.

Each kernel maps (xp, initial state parts, recurrent weights) to the
sequence of every state part, time-major (T, B, S); ``scan`` reads outputs
and final states from those. Correctness is checked against the autograd loop
(which follows ``cells.py`` literally) and by double-precision gradchecks.
"""

from __future__ import annotations

import torch
from torch import Tensor

_PACKED_OK: bool | None = None


def _packed_available() -> bool:
    global _PACKED_OK
    if _PACKED_OK is None:
        try:
            w = torch.randn(8, 4)
            x = torch.randn(3, 4)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, 3)
            out = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
            _PACKED_OK = bool(torch.allclose(out, x @ w.t(), atol=1e-5))
        except (AttributeError, RuntimeError):
            _PACKED_OK = False
    return _PACKED_OK


class RightMultiply:
    """x -> x @ W^T (+ add), with W packed once when oneDNN speeds it up.

    Packing pays from about 128 x 256 weights on; below that a plain ``addmm``
    is as fast and needs no extra add.
    """

    PACK_FROM = 128 * 256

    def __init__(self, weight: Tensor, batch: int) -> None:
        self.packed = None
        if (
            weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and weight.numel() >= self.PACK_FROM
            and _packed_available()
        ):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch)
        self.wt = weight.t()

    def __call__(self, x: Tensor, add: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        if self.packed is not None:
            if add is None or add.dim() == 1:  # a bias vector rides along in the product
                y = torch.ops.mkldnn._linear_pointwise(x, self.packed, add, "none", [], "")
            else:  # a (B, out) matrix is added by the product's post-op
                y = torch.ops.mkldnn._linear_pointwise.binary(x, add, self.packed, None, "add")
            return y if out is None else out.copy_(y)
        if add is None:
            return torch.mm(x, self.wt) if out is None else torch.mm(x, self.wt, out=out)
        return (
            torch.addmm(add, x, self.wt) if out is None else torch.addmm(add, x, self.wt, out=out)
        )


def weight_grad(dz: Tensor, inputs: Tensor) -> Tensor:
    """dW = dZ^T X over all steps at once: (G, N) @ (N, S) with N = T * B.

    oneDNN needs both operands transposed first; that pays only for the wide
    gradients of gated cells (G >= 3 S) at sizes where packing pays at all.
    BLAS takes the transposed operands as they are.
    """
    dz, inputs = dz.reshape(-1, dz.shape[-1]), inputs.reshape(-1, inputs.shape[-1])
    gates, width = dz.shape[1], inputs.shape[1]
    if (
        dz.device.type == "cpu"
        and dz.dtype == torch.float32
        and gates >= 3 * width
        and gates * width >= RightMultiply.PACK_FROM
        and _packed_available()
    ):
        packed = torch.ops.mkldnn._reorder_linear_weight(inputs.t(), gates)
        return torch.ops.mkldnn._linear_pointwise(dz.t(), packed, None, "none", [], "")
    return dz.t() @ inputs


def _derivative_from_output(kind: str, y: Tensor) -> Tensor:
    """φ'(z) written with y = φ(z): what the backward pass needs without keeping z."""
    if kind == "tanh":
        return torch.addcmul(torch.ones((), dtype=y.dtype, device=y.device), y, y, value=-1)
    if kind == "sigmoid":
        return torch.addcmul(y, y, y, value=-1)
    if kind == "relu":
        return (y > 0).to(y.dtype)
    return torch.ones_like(y)


def _activate_(kind: str, z: Tensor) -> Tensor:
    if kind == "tanh":
        return z.tanh_()
    if kind == "relu":
        return z.relu_()
    if kind == "sigmoid":
        return z.sigmoid_()
    return z


def _previous(seq: Tensor, initial: Tensor) -> Tensor:
    """[s_0, s_1, ..., s_{T-1}] from [s_1, ..., s_T] and s_0, as (T*B, S)."""
    return torch.cat([initial.unsqueeze(0), seq[:-1]], 0).reshape(-1, seq.shape[-1])


class ElmanKernel(torch.autograd.Function):
    """s_t = φ(xp_t + s_{t-1} W_ss^T)."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, w_hh: Tensor, kind: str) -> Tensor:
        steps, batch, _ = xp.shape
        mult = RightMultiply(w_hh, batch)
        hs = torch.empty_like(xp)
        h = h0
        for t in range(steps):
            h = _activate_(kind, mult(h, add=xp[t], out=hs[t]))
        ctx.kind = kind
        ctx.save_for_backward(hs, h0, w_hh)
        return hs

    @staticmethod
    def backward(ctx, g_hs: Tensor):
        hs, h0, w_hh = ctx.saved_tensors
        steps, batch, _ = hs.shape
        back = RightMultiply(w_hh.t(), batch)
        dz = torch.empty_like(hs)
        dh = g_hs[steps - 1]
        for t in range(steps - 1, -1, -1):
            torch.mul(_derivative_from_output(ctx.kind, hs[t]), dh, out=dz[t])
            dh = back(dz[t], add=g_hs[t - 1] if t > 0 else None)
        d_w = weight_grad(dz, _previous(hs, h0))
        return dz, dh, d_w, None


class LeakyKernel(torch.autograd.Function):
    """h_t = (1 - α) h_{t-1} + α φ(xp_t + h_{t-1} U^T)."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, w_hh: Tensor, alpha: Tensor, kind: str) -> Tensor:
        steps, batch, _ = xp.shape
        mult = RightMultiply(w_hh, batch)
        cand = torch.empty_like(xp)
        hs = torch.empty_like(xp)
        h = h0
        for t in range(steps):
            _activate_(kind, mult(h, add=xp[t], out=cand[t]))
            h = torch.lerp(h, cand[t], alpha, out=hs[t])
        ctx.kind = kind
        ctx.save_for_backward(cand, hs, h0, w_hh, alpha)
        return hs

    @staticmethod
    def backward(ctx, g_hs: Tensor):
        cand, hs, h0, w_hh, alpha = ctx.saved_tensors
        steps, batch, _ = hs.shape
        back = RightMultiply(w_hh.t(), batch)
        keep = 1 - alpha
        dz = torch.empty_like(hs)
        dhs = torch.empty_like(hs)  # dL/dh_t, kept for α's gradient
        dh = g_hs[steps - 1]
        for t in range(steps - 1, -1, -1):
            dhs[t] = dh
            torch.mul(_derivative_from_output(ctx.kind, cand[t]), dh, out=dz[t]).mul_(alpha)
            base = torch.addcmul(g_hs[t - 1], dh, keep) if t > 0 else dh * keep
            dh = back(dz[t], add=base)
        prev = _previous(hs, h0)
        d_w = weight_grad(dz, prev)
        d_alpha = (dhs.reshape(prev.shape) * (cand.reshape(prev.shape) - prev)).sum(0)
        return dz, dh, d_w, d_alpha, None


class LSTMKernel(torch.autograd.Function):
    """Gates [i, f, g, o] = act(xp_t + h_{t-1} W_hh^T); C_t = f C_{t-1} + i g; h_t = o tanh(C_t)."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        steps, batch, gates = xp.shape
        n = gates // 4
        mult = RightMultiply(w_hh, batch)
        cs = xp.new_empty(steps, batch, n)
        tcs = torch.empty_like(cs)
        hs_full = xp.new_empty(
            steps + 1, batch, n
        )  # h_0 .. h_T: the weight gradient reads h_0 .. h_{T-1}
        hs_full[0] = h0
        acts = []  # per-step gate activations, kept as the product returned them (no copies)
        h, c = h0, c0
        # per-step views made once, in C++, rather than sliced in the loop
        views = (xp, cs, tcs, hs_full[1:])
        for x_t, c_t, tc_t, h_t in zip(*(v.unbind(0) for v in views), strict=True):
            z = mult(h, add=x_t)
            i_f, g, o = (
                z[:, : 2 * n].sigmoid_(),
                z[:, 2 * n : 3 * n].tanh_(),
                z[:, 3 * n :].sigmoid_(),
            )
            c = torch.mul(i_f[:, n:], c, out=c_t).addcmul_(i_f[:, :n], g)
            h = torch.mul(o, torch.tanh(c, out=tc_t), out=h_t)
            acts.append(z)
        ctx.acts = acts  # intermediates, neither inputs nor outputs: plain attributes are safe
        ctx.save_for_backward(cs, tcs, hs_full, c0, w_hh)
        return hs_full[1:], cs

    @staticmethod
    def backward(ctx, g_hs: Tensor | None, g_cs: Tensor | None):
        cs, tcs, hs_full, c0, w_hh = ctx.saved_tensors
        acts_s = ctx.acts
        h0 = hs_full[0]
        steps, batch, n = cs.shape
        gates = 4 * n
        back = RightMultiply(w_hh.t(), batch)
        one = torch.ones((), dtype=cs.dtype, device=cs.device)
        dz_all = cs.new_empty(steps, batch, gates)
        i_s, f_s, g_s, o_s = ([a[:, k * n : (k + 1) * n] for a in acts_s] for k in range(4))
        dview = dz_all.view(steps, batch, 4, n)
        dz_s, di_s, df_s, dg_s, do_s = dz_all.unbind(0), *(v.unbind(0) for v in dview.unbind(2))
        difg_s = dview[:, :, :3].unbind(0)
        tcs_s = tcs.unbind(0)
        c_prev_s = (c0, *cs.unbind(0)[:-1])
        g_h = g_hs.unbind(0) if g_hs is not None else None
        g_c = g_cs.unbind(0) if g_cs is not None else None
        dh = g_h[-1] if g_h is not None else torch.zeros_like(h0)
        dc = torch.zeros_like(c0)
        for t in range(steps - 1, -1, -1):
            a, tc, g = acts_s[t], tcs_s[t], g_s[t]
            if g_c is not None:
                dc = dc + g_c[t]
            # through h_t = o tanh(C_t) into C_t
            dc = dc.addcmul(dh, torch.addcmul(one, tc, tc, value=-1).mul_(o_s[t]))
            dz = dz_s[t]
            torch.addcmul(a, a, a, value=-1, out=dz)  # σ' = σ(1 - σ) for every gate ...
            torch.addcmul(one, g, g, value=-1, out=dg_s[t])  # ... tanh' for g
            difg_s[t].mul_(dc.unsqueeze(1))
            di_s[t].mul_(g)
            df_s[t].mul_(c_prev_s[t])
            dg_s[t].mul_(i_s[t])
            do_s[t].mul_(dh).mul_(tc)
            dc = dc * f_s[t]
            dh = back(dz, add=g_h[t - 1] if (t > 0 and g_h is not None) else None)
        d_w = weight_grad(dz_all, hs_full[:-1])
        return dz_all, dh, dc, d_w


class GRUKernel(torch.autograd.Function):
    """r, z = σ(xp + gh); n = tanh(xp_n + r (h W_hn^T + b_hn)); h_t = (1 - z) n + z h_{t-1}."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
        steps, batch, gates = xp.shape
        n = gates // 3
        mult = RightMultiply(w_hh, batch)
        rz = xp.new_empty(steps, batch, 2 * n)
        new = xp.new_empty(steps, batch, n)
        ghn = xp.new_empty(steps, batch, n)
        hs = xp.new_empty(steps, batch, n)
        h = h0
        for t in range(steps):
            gh = mult(h) if b_hh is None else mult(h, add=b_hh)
            torch.add(xp[t, :, : 2 * n], gh[:, : 2 * n], out=rz[t]).sigmoid_()
            ghn[t] = gh[:, 2 * n :]
            torch.addcmul(xp[t, :, 2 * n :], rz[t, :, :n], ghn[t], out=new[t]).tanh_()
            h = torch.lerp(new[t], h, rz[t, :, n:], out=hs[t])
        ctx.save_for_backward(rz, new, ghn, hs, h0, w_hh)
        ctx.has_bias = b_hh is not None
        return hs

    @staticmethod
    def backward(ctx, g_hs: Tensor):
        rz, new, ghn, hs, h0, w_hh = ctx.saved_tensors
        steps, batch, n = hs.shape
        back = RightMultiply(w_hh.t(), batch)
        one = torch.ones((), dtype=hs.dtype, device=hs.device)
        d_xp = hs.new_empty(steps, batch, 3 * n)
        d_gh = hs.new_empty(steps, batch, 3 * n)
        dh = g_hs[steps - 1]
        for t in range(steps - 1, -1, -1):
            r, z, nt = rz[t, :, :n], rz[t, :, n:], new[t]
            h_prev = hs[t - 1] if t > 0 else h0
            dn_pre = d_xp[t, :, 2 * n :]
            torch.mul(dh, 1 - z, out=dn_pre).mul_(torch.addcmul(one, nt, nt, value=-1))
            d_rz = d_xp[t, :, : 2 * n]
            torch.mul(dn_pre, ghn[t], out=d_rz[:, :n])  # dL/dr
            torch.mul(dh, h_prev - nt, out=d_rz[:, n:])  # dL/dz
            d_rz.mul_(torch.addcmul(rz[t], rz[t], rz[t], value=-1))
            d_gh[t, :, : 2 * n] = d_rz
            torch.mul(dn_pre, r, out=d_gh[t, :, 2 * n :])
            base = torch.addcmul(g_hs[t - 1], dh, z) if t > 0 else dh * z
            dh = back(d_gh[t], add=base)
        flat = d_gh.reshape(-1, 3 * n)
        d_w = weight_grad(flat, _previous(hs, h0))
        d_b = flat.sum(0) if ctx.has_bias else None
        return d_xp, dh, d_w, d_b


class JordanKernel(torch.autograd.Function):
    """s_t = φ(xp_t + y_{t-1} W_ys^T); y_t = ψ(s_t W_sy^T + b_y)."""

    @staticmethod
    def forward(ctx, xp, y0, w_ys, w_sy, b_sy, phi: str, psi: str) -> Tensor:
        steps, batch, _ = xp.shape
        into_s, into_y = RightMultiply(w_ys, batch), RightMultiply(w_sy, batch)
        ss = torch.empty_like(xp)
        ys = xp.new_empty(steps, batch, w_sy.shape[0])
        y = y0
        for t in range(steps):
            s = _activate_(phi, into_s(y, add=xp[t], out=ss[t]))
            y = _activate_(psi, into_y(s, add=b_sy, out=ys[t]))
        ctx.kinds = (phi, psi)
        ctx.has_bias = b_sy is not None
        ctx.save_for_backward(ss, ys, y0, w_ys, w_sy)
        return ys

    @staticmethod
    def backward(ctx, g_ys: Tensor):
        ss, ys, y0, w_ys, w_sy = ctx.saved_tensors
        phi, psi = ctx.kinds
        steps, batch, _ = ss.shape
        from_s, from_y = RightMultiply(w_ys.t(), batch), RightMultiply(w_sy.t(), batch)
        dz_y = torch.empty_like(ys)
        dz_s = torch.empty_like(ss)
        dy = g_ys[steps - 1]
        for t in range(steps - 1, -1, -1):
            torch.mul(_derivative_from_output(psi, ys[t]), dy, out=dz_y[t])
            torch.mul(_derivative_from_output(phi, ss[t]), from_y(dz_y[t]), out=dz_s[t])
            dy = from_s(dz_s[t], add=g_ys[t - 1] if t > 0 else None)
        flat_y = dz_y.reshape(-1, ys.shape[-1])
        d_w_sy = weight_grad(flat_y, ss)
        d_w_ys = weight_grad(dz_s, _previous(ys, y0))
        d_b = flat_y.sum(0) if ctx.has_bias else None
        return dz_s, dy, d_w_ys, d_w_sy, d_b, None, None


def _packed_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), x.shape[0])
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b on oneDNN, and both gradients."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _packed_linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        d_x = _packed_linear(grad, weight.t(), None) if ctx.needs_input_grad[0] else None
        d_w = weight_grad(grad, x) if ctx.needs_input_grad[1] else None
        d_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return d_x, d_w, d_b


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` for any leading shape, on oneDNN for large float32 CPU products.

    On CPUs where the BLAS library is slow (MKL on AMD processors reaches about
    180 GFLOP/s against oneDNN's 400 on this machine) this halves the cost of
    the hoisted input projection and of its input gradient.
    """
    rows = x.numel() // max(x.shape[-1], 1)
    if (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and rows * weight.numel() >= 64 * RightMultiply.PACK_FROM
        and _packed_available()
    ):
        flat = x.reshape(-1, x.shape[-1])
        return _OneDNNLinear.apply(flat, weight, bias).view(*x.shape[:-1], weight.shape[0])
    return torch.nn.functional.linear(x, weight, bias)
