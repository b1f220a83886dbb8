"""Mixed precision inside the int8 files: which student modules run float, and how they are kept float.

``--float-modules`` names modules (``stem``, ``head.gdc``, ``stage4.0`` …) and takes one keyword, ``depthwise``:
the block (conv + BatchNorm + activation) around every depthwise convolution. Those were chosen by measurement
(docs/results/parity.md): on x86 XNNPACK runs float 3×3 and 7×7 depthwise convolutions faster than int8 ones,
the per-channel PReLU around them then needs no ``DEQUANTIZE → PRELU → QUANTIZE`` island, and the cosine to
the float model rises (shipped student 0.9959 → 0.9970; the stem's depthwise conv was the most int8-sensitive
single layer in ``bench/int8_sensitivity.py``); the 1×1 convolutions and the embedding layer, 93 % of the MACs,
stay int8, and so do the file's input and output.
"""

from __future__ import annotations

import torch
from torch import nn

from shrinkface.export.formats import ExportError

DEPTHWISE = "depthwise"


def in_module(node: torch.fx.Node, name: str) -> bool:
    """True if ``node`` was traced inside the module ``name`` (dotted, as in ``named_modules``)."""
    stack = node.meta.get("nn_module_stack", {})
    return any(path == name or path.startswith(name + ".") for path, _ in stack.values())


def keep_float(graph: torch.fx.GraphModule, name: str) -> int:
    """Run module ``name`` in float inside a converted graph: bypass every quantize → dequantize pair whose
    value is used only inside it (its weights and its input activations), except the model input's own pair,
    so the file's input stays int8. Returns how many pairs were bypassed; 0 for an unknown name.

    litert-torch's quantiser cannot leave a module out (``set_module_name(name, None)`` asserts); bypassing
    after conversion gives the same graph: the module's ops see float weights and float inputs, and the
    quantize after its output (used outside it) stays.
    """
    bypassed = 0
    for node in list(graph.graph.nodes):
        if node.op != "call_function" or "dequantize" not in str(node.target):
            continue
        source = node.args[0]
        if not isinstance(source, torch.fx.Node) or "quantize" not in str(source.target):
            continue
        value = source.args[0]
        if isinstance(value, torch.fx.Node) and value.op == "placeholder":
            continue  # the model input: keep it int8
        if node.users and all(in_module(user, name) for user in node.users):
            node.replace_all_uses_with(value)
            bypassed += 1
    graph.graph.eliminate_dead_code()
    graph.recompile()
    return bypassed


def depthwise_modules(model: nn.Module) -> list[str]:
    """The block holding each depthwise convolution of ``model`` (groups = in = out channels > 1), in order:
    the conv's parent module (its conv + BatchNorm + activation), or the conv itself at the top level."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and 1 < module.groups == module.in_channels == module.out_channels:
            names.append(name.rpartition(".")[0] or name)
    return names


def expand_float_modules(model: nn.Module, names: str | tuple[str, ...]) -> tuple[str, ...]:
    """``names`` (a tuple, or comma-separated) with ``depthwise`` replaced by ``depthwise_modules(model)``,
    leaving out blocks already inside a named module (``stem,depthwise``: the stem whole, then the rest)."""
    listed = [n.strip() for n in names.split(",")] if isinstance(names, str) else [n.strip() for n in names]
    listed = [n for n in listed if n]
    named = [n for n in listed if n != DEPTHWISE]
    if DEPTHWISE not in listed:
        return tuple(named)
    found = depthwise_modules(model)
    if not found:
        raise ExportError("float_modules: 'depthwise' given, but the student has no depthwise convolution")
    inside = [b for b in found if any(b == n or b.startswith(n + ".") for n in named)]
    return tuple(named + [b for b in found if b not in inside])


def keep_modules_float(graph: torch.fx.GraphModule, names: tuple[str, ...]) -> None:
    """``keep_float`` for each of ``names`` (already expanded); a name with nothing quantised is an error."""
    for name in names:
        if not keep_float(graph, name):
            raise ExportError(f"float_modules: no quantised op inside module {name!r} (e.g. stem, stage4.0, head)")
