"""8-bit block-floating-point (BFP) training, emulated in pure torch, for EB Train LF and LL.

The paper's low-precision variants (EB Train LF: 8-bit search, FP32 retrain; LL: both 8-bit)
use SWALP's recipe: qtorch `BlockFloatingPoint(wl=8, dim=0)` with stochastic rounding on the
conv/linear outputs (forward), their errors (backward), and on the weights, gradients and
momentum buffers in the optimizer. qtorch needs a C++/CUDA build; this module emulates the same
format with ordinary tensor ops, so it runs on torch 1.10, on a Jetson's GPU and on any CPU.

The format (what `block_quantize(x, wl)` produces)
    A block is one slice of `x` along dim 0: one output channel of a conv/linear weight, one
    sample of an activation or error batch, one element of a 1-D tensor (BN scales and shifts,
    biases), the whole tensor for a 0-d one. Each block stores one shared exponent
        e = floor(log2(max |x| over the block))
    and, per value, a sign and a 7-bit magnitude m (wl = 8 = 1 sign + 7 magnitude bits):
        value = sign * m * 2^(e - (wl - 2)),   m in {0, 1, ..., 2^(wl-1) - 1} = {0..127}.
    The block's largest value lies in [2^e, 2^(e+1)), i.e. in [64, 128) grid steps, so it keeps
    6-7 significant bits; values that round past 127 steps are clamped to +-127 steps. This is
    what qtorch's block kernel computes (it rounds at 2^(e - (wl - 2)) and clips to the block's
    exponent with wl - 2 fraction bits), inferred from its published source, not copied.
    Exponents are floored at -126 + (wl - 2) so that a grid step stays a normal float32; an
    all-zero block stays zero.
Rounding
    `stochastic` (the paper's): floor(x / step + u), u ~ U[0, 1), so E[q(x)] = x between the
    clamps; `nearest`: round half to even (deterministic; qtorch rounds halves up).

What is quantized, and where
    `make_low_precision(model)` registers a forward hook on every Conv2d/Linear except the last
    one registered (the classifier, whose logits the official code leaves in full precision):
    the hook passes the layer's output through `QuantizeOutput`, which quantizes it in forward
    and quantizes its gradient (the error) in backward. The model keeps its modules and
    state_dict keys, so checkpoints, FLOP counting and physical pruning see the same network.
    It is reversible (`remove_low_precision`). A pruned model is a fresh module: apply the
    transform again to keep training it in low precision.
    `LowPrecisionOptimizerHooks` quantizes every optimizer parameter's gradient after backward
    (after the BN sparsity term, like the official OptimLP) and, after each step, the parameter
    itself and its SGD momentum buffer. The input images, BN and ReLU outputs are not quantized
    explicitly, as in the official code. The hooks stay active in evaluation (as qtorch's
    Quantizer modules do), so an LF/LL model is also tested in 8 bits. SWALP's weight averaging
    (from epoch 140, with BN re-estimation) is not emulated.

Cost accounting (read this before quoting a saving)
    The paper counts FP8 and FP32 operations as the same FLOP unit (its Table 2 cites Sohoni et
    al., 2019), so `train_flops_total` stays the FP32-equivalent count for every method. Its
    low-precision energies are not measured: they are estimated from per-operation energies
    measured for 8-bit hardware (Yang et al., 2019b), numbers the paper does not list. We report
    both sides and label them: `lowp_bits` (bit width per phase; prune, eval and idle count at
    32), `train_flops_total_bitscaled` = sum over phases of FLOPs x bits / 32, and
    `modelled_energy` = the measured energy of each phase x its bits / 32, labelled
    `"method": "modelled"`. Both scalings are linear stand-ins for the paper's unit-energy
    model, not paper numbers.
    Emulated quantization does not save energy: on hardware without 8-bit training kernels (a
    Jetson TX2, a CPU) every tensor is still FP32 and the quantizers add work, so an LF/LL run
    usually costs MORE measured energy than FP32. The measured energy is what the meter saw; the
    modelled energy is what 8-bit hardware might see, and never a measurement.
"""
import torch
import torch.nn as nn

from ebedge.errors import EbedgeError

ROUNDINGS = ("stochastic", "nearest")
FULL_BITS = 32
_MIN_NORMAL_EXPONENT = -126


def _check(wl, rounding):
    if rounding not in ROUNDINGS:
        raise EbedgeError("rounding must be one of %s, got %r" % (", ".join(ROUNDINGS), rounding))
    if int(wl) != wl or not 2 <= wl <= 24:
        raise EbedgeError("word length must be an integer in [2, 24], got %r" % (wl,))


def shared_exponent(peak):
    """floor(log2(peak)) exactly (corrected where float log2 rounds across a power of two)."""
    e = torch.floor(torch.log2(peak))
    e = torch.where(torch.pow(2.0, e) > peak, e - 1, e)
    return torch.where(torch.pow(2.0, e + 1) <= peak, e + 1, e)


def block_exponents(x, wl=8):
    """Per-block shared exponent e and grid step 2^(e - (wl - 2)), shaped (blocks, 1)."""
    flat = x.detach().reshape(x.shape[0] if x.dim() else 1, -1)
    peak = torch.max(flat.amax(dim=1, keepdim=True), flat.amin(dim=1, keepdim=True).neg())
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    e = shared_exponent(peak).clamp(min=_MIN_NORMAL_EXPONENT + (wl - 2))
    return e, torch.pow(2.0, e - (wl - 2))


def block_quantize(x, wl=8, rounding="stochastic"):
    """`x` on the wl-bit BFP grid with one shared exponent per slice along dim 0 (see module doc)."""
    _check(wl, rounding)
    if x.numel() == 0:
        return x
    with torch.no_grad():
        _, step = block_exponents(x, wl)
        steps = x.reshape(step.shape[0], -1) / step  # the one full-size allocation; then in place
        if rounding == "stochastic":
            steps.add_(torch.rand_like(steps)).floor_()
        else:
            steps.round_()
        limit = float(2 ** (wl - 1) - 1)
        return steps.clamp_(-limit, limit).mul_(step).reshape(x.shape)


class Quantizer(object):
    """A wl-bit BFP quantizer with fixed rounding, callable on a tensor."""

    def __init__(self, wl=8, rounding="stochastic"):
        _check(wl, rounding)
        self.wl = int(wl)
        self.rounding = rounding

    def __call__(self, x):
        return block_quantize(x, self.wl, self.rounding)

    def __repr__(self):
        return "Quantizer(wl=%d, rounding=%r)" % (self.wl, self.rounding)


class QuantizeOutput(torch.autograd.Function):
    """Identity in value up to quantization: forward quantizes x, backward the incoming error."""

    @staticmethod
    def forward(ctx, x, forward_quantizer, backward_quantizer):
        ctx.backward_quantizer = backward_quantizer
        return forward_quantizer(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.backward_quantizer(grad), None, None


class _OutputHook(object):
    """Forward hook: the layer's output goes through QuantizeOutput (a class, so deepcopy works)."""

    def __init__(self, activation, error):
        self.activation = activation
        self.error = error

    def __call__(self, module, inputs, output):
        return QuantizeOutput.apply(output, self.activation, self.error)


def quantized_layers(model):
    """(name, module) of every Conv2d/Linear that make_low_precision quantizes: all but the last."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return layers[:-1]


def make_low_precision(model, wl=8, rounding="stochastic"):
    """Quantize conv/linear outputs and their errors in place (hooks); returns `model`."""
    if getattr(model, "lowp", None) is not None:
        raise EbedgeError("model is already low precision (%s)" % (model.lowp,))
    hook = _OutputHook(Quantizer(wl, rounding), Quantizer(wl, rounding))
    model._lowp_handles = [m.register_forward_hook(hook) for _, m in quantized_layers(model)]
    model.lowp = {"wl": int(wl), "rounding": rounding}
    return model


def remove_low_precision(model):
    """Undo make_low_precision: the model computes in full precision again."""
    for handle in getattr(model, "_lowp_handles", []):
        handle.remove()
    model._lowp_handles = []
    model.lowp = None
    return model


class LowPrecisionOptimizerHooks(object):
    """after_backward / after_step for train_epoch: the optimizer's side of 8-bit training.

    Momentum buffers live in the optimizer, so `bind(optimizer)` before training (it returns the
    optimizer, for `hooks.bind(make_optimizer(...))`).
    """

    def __init__(self, wl=8, rounding="stochastic"):
        self.quantize = Quantizer(wl, rounding)
        self.optimizer = None

    def bind(self, optimizer):
        self.optimizer = optimizer
        return optimizer

    def _params(self):
        if self.optimizer is None:
            raise EbedgeError("LowPrecisionOptimizerHooks used before bind(optimizer)")
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def after_backward(self, model):
        for p in self._params():
            if p.grad is not None:
                p.grad.data.copy_(self.quantize(p.grad.data))

    def after_step(self, model):
        with torch.no_grad():
            for p in self._params():
                p.copy_(self.quantize(p))
                buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf.copy_(self.quantize(buf))


def bit_scaled_flops(flops_by_phase, bits_by_phase):
    """sum over phases of FLOPs x bits / 32 (phases without a bit width count at 32 bits)."""
    return int(round(sum(f * bits_by_phase.get(p, FULL_BITS) / float(FULL_BITS)
                         for p, f in flops_by_phase.items())))


def modelled_energy(summary):
    """Measured energy of each phase x its bits / 32, labelled modelled; None without either.

    Phases without a bit width in `summary["lowp_bits"]` (eval, idle) keep their measured energy;
    `train_total` and `run_total` drop by what the scaled phases saved.
    """
    measured = summary.get("energy")
    bits = summary.get("lowp_bits")
    if not measured or not bits:
        return None

    def scale(kj_by_phase):
        out = dict(kj_by_phase)
        saving = 0.0
        for phase, b in bits.items():
            if out.get(phase) is not None:
                out[phase] = kj_by_phase[phase] * b / float(FULL_BITS)
                saving += kj_by_phase[phase] - out[phase]
        for total in ("train_total", "run_total"):
            if out.get(total) is not None:
                out[total] = kj_by_phase[total] - saving
        return out

    return {"method": "modelled", "basis": "measured energy x bits / %d per phase" % FULL_BITS,
            "meter": measured.get("meter"), "rail": measured.get("rail"), "bits": dict(bits),
            "kj": scale(measured.get("kj") or {}), "net_kj": scale(measured.get("net_kj") or {})}
