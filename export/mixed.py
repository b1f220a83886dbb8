"""Mixed precision inside the int8 files: which student modules run float, and how they are kept float.

``--float-modules`` names modules (``stem``, ``head.gdc``, ``stage4.0`` …) and takes two keywords:
``depthwise``, the block (conv + BatchNorm + activation) around every depthwise convolution, and
``depthwise-prelu``, only those blocks whose activation is a per-channel PReLU. The second is the Makefile's
choice, by measurement (docs/results/parity.md, session 10): XNNPACK has no int8 per-channel PReLU, so such a
PReLU runs float between a ``DEQUANTIZE`` and a ``QUANTIZE`` whatever we do; keeping the depthwise conv between two
of them float too drops one conversion pair per PReLU (shipped student: embed 2.0–2.2 → 1.6–1.8 ms, cosine to
float 0.9959 → 0.9970). Where the activations are int8 (ReLU, one-slope PReLU as ``LEAKY_RELU``) the same
change only adds conversions and was slower (ReLU student embed 1.95 → 2.75–2.84 ms), so those blocks stay int8. The 1×1
convolutions and the embedding layer, 93 % of the MACs, stay int8, and so do the file's input and output.
"""

from __future__ import annotations

import torch
from torch import nn

from shrinkface.export.formats import ExportError

DEPTHWISE = "depthwise"
DEPTHWISE_PRELU = "depthwise-prelu"
KEYWORDS = (DEPTHWISE, DEPTHWISE_PRELU)


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


def depthwise_modules(model: nn.Module, per_channel_prelu: bool = False) -> list[str]:
    """The block holding each depthwise convolution of ``model`` (groups = in = out channels > 1), in order:
    the conv's parent module (its conv + BatchNorm + activation), or the conv itself at the top level. With
    ``per_channel_prelu``, only blocks whose activation is a PReLU with one slope per channel."""
    modules = dict(model.named_modules())
    names = []
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d) and 1 < module.groups == module.in_channels == module.out_channels:
            block = name.rpartition(".")[0] or name
            prelus = [m for m in modules[block].modules() if isinstance(m, nn.PReLU)]
            if not per_channel_prelu or any(m.num_parameters > 1 for m in prelus):
                names.append(block)
    return names


def expand_float_modules(model: nn.Module, names: str | tuple[str, ...]) -> tuple[str, ...]:
    """``names`` (a tuple, or comma-separated) with the keywords replaced by ``depthwise_modules(model)``,
    leaving out blocks already inside a named module (``stem,depthwise``: the stem whole, then the rest).
    ``depthwise`` on a student without depthwise convs is an error; ``depthwise-prelu`` may find none."""
    listed = [n.strip() for n in names.split(",")] if isinstance(names, str) else [n.strip() for n in names]
    listed = [n for n in listed if n]
    named = [n for n in listed if n not in KEYWORDS]
    found: list[str] = []
    if DEPTHWISE in listed:
        found = depthwise_modules(model)
        if not found:
            raise ExportError("float_modules: 'depthwise' given, but the student has no depthwise convolution")
    elif DEPTHWISE_PRELU in listed:
        found = depthwise_modules(model, per_channel_prelu=True)
    inside = [b for b in found if any(b == n or b.startswith(n + ".") for n in named)]
    return tuple(named + [b for b in found if b not in inside])


def keep_modules_float(graph: torch.fx.GraphModule, names: tuple[str, ...]) -> None:
    """``keep_float`` for each of ``names`` (already expanded); a name with nothing quantised is an error."""
    for name in names:
        if not keep_float(graph, name):
            raise ExportError(f"float_modules: no quantised op inside module {name!r} (e.g. stem, stage4.0, head)")
