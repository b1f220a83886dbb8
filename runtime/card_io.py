"""Read and write the model card inside ONNX and TFLite files, with no torch and no ``onnx`` package.

ONNX: the card is a ``metadata_props`` entry (key ``CARD_KEY``, value ``card.to_json()``); onnxruntime shows
it in ``InferenceSession.get_modelmeta().custom_metadata_map``. It is read and written here by walking the
protobuf wire format of the top-level ``ModelProto`` (field 14 = metadata_props), so reading a card neither
builds a session nor needs ``onnx``. The same walker drops graph inputs that are really initializers or node
outputs (SFace int8bq lists its weights as inputs; onnxruntime then demands them).

TFLite: the card is a ``Model.metadata`` entry named ``CARD_KEY`` whose buffer holds the card JSON. Reading
uses the lazy flatbuffers accessors of ``ai_edge_litert.schema_py_generated`` (the metadata table, one buffer
and a light bounds check); writing unpacks the model with the object API and packs it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from shrinkface.runtime.card import CARD_KEY, ModelCard
from shrinkface.runtime.errors import ModelCardError, ModelError

ModelFormat = Literal["onnx", "tflite"]

TFLITE_IDENTIFIER = b"TFL3"
# ModelProto field numbers and their wire types (0 = varint, 2 = length-delimited).
_ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_GRAPH, _METADATA = 7, 14
_G_NODE, _G_INITIALIZER, _G_INPUT, _G_OUTPUT, _G_SPARSE_INIT = 1, 5, 11, 12, 15


# -- protobuf wire format ------------------------------------------------------------------------------------
class _WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def _varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _WireError("varint runs past the end")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _fields(
    buf: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, value start, value end, field start) of each field in ``buf[start:end]``."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == 0:
            value_start = pos
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            value_start, pos = pos, pos + 8
        elif wire == 2:
            length, value_start = _varint(buf, pos, end)
            pos = value_start + length
        elif wire == 5:
            value_start, pos = pos, pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise _WireError("field runs past the end")
        yield number, wire, value_start, pos, field_start


def _string_field(buf: bytes | memoryview, start: int, end: int, number: int) -> str | None:
    """The first length-delimited field ``number`` inside a message, decoded as UTF-8."""
    for num, wire, vs, ve, _ in _fields(buf, start, end):
        if num == number and wire == 2:
            return bytes(buf[vs:ve]).decode("utf-8", errors="replace")
    return None


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


# -- format sniffing -----------------------------------------------------------------------------------------
def _onnx_top(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """The top-level ModelProto fields, or ModelError if ``data`` is not a complete ONNX model."""
    if not data or data[0] != 0x08:  # ModelProto starts with ir_version (field 1, varint)
        raise ModelError("not an ONNX model (no ir_version at the start)")
    try:
        fields = list(_fields(memoryview(data)))
    except _WireError as exc:
        raise ModelError(f"ONNX data is truncated or corrupt ({exc})") from exc
    for number, wire, *_ in fields:
        if number in _ONNX_MODEL_FIELDS and _ONNX_MODEL_FIELDS[number] != wire:
            raise ModelError(f"not an ONNX model (field {number} has wire type {wire})")
    if not any(f[0] == _GRAPH for f in fields):
        raise ModelError("ONNX model has no graph (truncated or not an ONNX file)")
    return fields


def model_format(data: bytes, name: str = "<bytes>") -> ModelFormat:
    """``"tflite"`` ('TFL3' at bytes 4..8) or ``"onnx"`` (a parseable ModelProto); else ``ModelError``."""
    if len(data) < 8:
        raise ModelError(f"{name}: {len(data)} bytes is too short to be an ONNX or TFLite model")
    if data[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    try:
        _onnx_top(data)
    except ModelError as exc:
        raise ModelError(
            f"{name} is neither a TFLite model ('TFL3' identifier) nor a complete ONNX model: {exc}"
        ) from exc
    return "onnx"


def read_model_bytes(path: str | Path) -> bytes:
    """The bytes of a model file, or ``ModelError`` if it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found")
    data = path.read_bytes()
    if not data:
        raise ModelError(f"model file {path} is empty (0 bytes)")
    return data


# -- ONNX ----------------------------------------------------------------------------------------------------
def read_onnx_metadata(data: bytes) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX model (what onnxruntime calls ``custom_metadata_map``)."""
    view = memoryview(data)
    props = {}
    for number, _, vs, ve, _ in _onnx_top(data):
        if number == _METADATA:
            key = _string_field(view, vs, ve, 1)
            if key is not None:
                props[key] = _string_field(view, vs, ve, 2) or ""
    return props


def set_onnx_metadata(data: bytes, key: str, value: str) -> bytes:
    """ONNX bytes with ``metadata_props[key] = value`` (an existing entry of that key is replaced)."""
    view = memoryview(data)
    parts = []
    for number, _, vs, ve, fs in _onnx_top(data):
        if number == _METADATA and _string_field(view, vs, ve, 1) == key:
            continue
        parts.append(view[fs:ve])
    entry = _len_field(1, key.encode()) + _len_field(2, value.encode())
    parts.append(memoryview(_len_field(_METADATA, entry)))
    return b"".join(parts)


def strip_initializer_inputs(data: bytes) -> tuple[bytes, list[str]]:
    """Drop graph inputs that are initializers, node outputs or used by no node; → (new bytes, dropped names).

    Old exporters list weights as graph inputs. SFace int8bq also keeps the float weights' names as inputs
    that no node reads any more (the weights now come from DequantizeLinear), and onnxruntime demands a value
    for each. The real inputs (the image) are kept; the bytes come back unchanged when nothing is dropped.
    """
    view = memoryview(data)
    top = _onnx_top(data)
    graph = next(f for f in top if f[0] == _GRAPH)
    try:
        gfields = list(_fields(view, graph[2], graph[3]))
        produced: set[str] = set()
        consumed: set[str] = set()
        has_subgraphs = False
        inputs: list[str] = []
        for number, wire, vs, ve, _ in gfields:
            if wire != 2:
                continue
            if number == _G_INITIALIZER:
                produced.add(_string_field(view, vs, ve, 8) or "")
            elif number == _G_SPARSE_INIT:
                values = next((f for f in _fields(view, vs, ve) if f[0] == 1), None)
                if values is not None:
                    produced.add(_string_field(view, values[2], values[3], 8) or "")
            elif number == _G_NODE:
                for n, w, s, e, _ in _fields(view, vs, ve):
                    text = bytes(view[s:e]).decode("utf-8", "replace") if w == 2 else ""
                    if n == 1:
                        consumed.add(text)
                    elif n == 2:
                        produced.add(text)
                    elif n == 4 and text in ("If", "Loop", "Scan"):
                        has_subgraphs = True  # inputs may be read inside a subgraph: keep unused ones
            elif number == _G_OUTPUT:
                consumed.add(_string_field(view, vs, ve, 1) or "")
            elif number == _G_INPUT:
                inputs.append(_string_field(view, vs, ve, 1) or "")
    except _WireError as exc:
        raise ModelError(f"ONNX graph is corrupt ({exc})") from exc
    drop = {name for name in inputs if name in produced or (not has_subgraphs and name not in consumed)}
    if not drop:
        return data, []
    if len(drop) == len(inputs):
        raise ModelError("ONNX graph has no real input: every graph input is an initializer or unused")
    new_graph = b"".join(
        bytes(view[fs:ve])
        for number, wire, vs, ve, fs in gfields
        if not (number == _G_INPUT and wire == 2 and (_string_field(view, vs, ve, 1) or "") in drop)
    )
    parts = [_len_field(_GRAPH, new_graph) if number == _GRAPH else bytes(view[fs:ve]) for number, _, _, ve, fs in top]
    return b"".join(parts), sorted(drop)


def write_card_onnx(model: Any, card: ModelCard, out: str | Path | None = None) -> Any:
    """Store ``card`` in an ONNX model; any earlier card is replaced.

    ``model`` may be ONNX bytes (→ new bytes), an ``onnx.ModelProto`` (edited in place and returned; ``onnx``
    itself is never imported here) or a path (written to ``out``, by default in place; → the written path).
    """
    value = card.to_json()
    if hasattr(model, "metadata_props"):
        kept = [(p.key, p.value) for p in model.metadata_props if p.key != CARD_KEY]
        del model.metadata_props[:]
        for key, val in [*kept, (CARD_KEY, value)]:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, val
        return model
    if isinstance(model, bytes | bytearray):
        return set_onnx_metadata(bytes(model), CARD_KEY, value)
    src = Path(model)
    data = set_onnx_metadata(read_model_bytes(src), CARD_KEY, value)
    dest = Path(out) if out is not None else src
    dest.write_bytes(data)
    return dest


# -- TFLite --------------------------------------------------------------------------------------------------
def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ModuleNotFoundError as exc:  # pragma: no cover - the runtime extra installs it
        raise ModelError("reading TFLite models needs ai-edge-litert: pip install 'shrinkface[runtime]'") from exc
    return schema_py_generated


def _tflite_root(data: bytes) -> Any:
    """The lazy ``Model`` table, after checking that every buffer lies inside ``data`` (catches truncation:
    flatbuffers are built back to front, so the weights sit at the end of the file)."""
    schema = _schema()
    model = schema.Model.GetRootAs(data, 0)
    if model.Version() != 3:
        raise ModelError(f"unsupported TFLite schema version {model.Version()} (expected 3)")
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength() and buf.DataAsNumpy().size != buf.DataLength():
            raise ModelError(f"TFLite buffer {i} runs past the end of the data")
        if buf.Offset() > 1 and buf.Offset() + buf.Size() > len(data):
            raise ModelError(f"TFLite buffer {i} (offset {buf.Offset()}) lies past the end of the data")
    for i in range(model.OperatorCodesLength()):  # the first tables written: they end the file
        code = model.OperatorCodes(i)
        _ = code.DeprecatedBuiltinCode(), code.BuiltinCode(), code.Version(), code.CustomCode()
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            _ = tensor.Name(), tensor.ShapeAsNumpy(), tensor.Buffer()  # a read past the end raises
    return model


def read_tflite_metadata(data: bytes, name: str) -> bytes | None:
    """The buffer of the TFLite metadata entry ``name``, or None if the model has none."""
    try:
        model = _tflite_root(data)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() != name.encode():
                continue
            index = entry.Buffer()
            if index >= model.BuffersLength():
                raise ModelError(f"TFLite metadata {name!r} points at buffer {index}, which does not exist")
            buf = model.Buffers(index)
            if buf.DataLength() > 0:
                return buf.DataAsNumpy().tobytes()
            if buf.Offset() > 1:
                return bytes(data[buf.Offset() : buf.Offset() + buf.Size()])
            return b""
    except ModelError as exc:
        raise ModelError(f"TFLite model is truncated or corrupt: {exc}") from exc
    except Exception as exc:  # struct.error, ValueError, IndexError, … from a truncated flatbuffer
        raise ModelError(f"TFLite model is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    return None


_TFLITE_ALIGN = 16  # weight buffers start on 16-byte boundaries (int64/float64 tensors, mmap, delegates)


def _pack_buffer(schema: Any, builder: Any, buffer: Any) -> int:
    """``BufferT.Pack`` with the data vector aligned to ``_TFLITE_ALIGN`` bytes."""
    import numpy as np

    data = None
    if buffer.data is not None:
        payload = np.asarray(buffer.data, dtype=np.uint8).tobytes()
        builder.StartVector(1, len(payload), _TFLITE_ALIGN)
        builder.head -= len(payload)
        builder.Bytes[builder.head : builder.head + len(payload)] = payload
        builder.vectorNumElems = len(payload)
        data = builder.EndVector()
    schema.BufferStart(builder)
    if data is not None:
        schema.BufferAddData(builder, data)
    schema.BufferAddOffset(builder, buffer.offset)
    schema.BufferAddSize(builder, buffer.size)
    return schema.BufferEnd(builder)


def _aligned_buffer_type(schema: Any) -> type:
    class AlignedBufferT(schema.BufferT):  # type: ignore[misc,name-defined]
        def Pack(self, builder: Any) -> int:
            return _pack_buffer(schema, builder, self)

    return AlignedBufferT


def write_metadata_tflite(model_bytes: bytes, name: str, payload: bytes) -> bytes:
    """TFLite bytes with metadata entry ``name`` holding ``payload`` (an existing entry is overwritten).

    The model is unpacked with the object API and packed again; weight buffers are re-aligned to 16 bytes.
    """
    import flatbuffers
    import numpy as np

    schema = _schema()
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise ModelError("not a TFLite model (no 'TFL3' identifier at bytes 4..8)")
    try:
        _tflite_root(model_bytes)
        model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    except Exception as exc:
        raise ModelError(f"TFLite model is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    buffers = model.buffers or []
    if any(b.offset > 1 for b in buffers):
        raise ModelError("TFLite models that keep their weights after the flatbuffer (>2 GB) are not supported")
    metadata = model.metadata or []
    existing = next((m for m in metadata if m.name in (name, name.encode())), None)
    data = np.frombuffer(payload, dtype=np.uint8)
    if existing is not None:
        buffers[existing.buffer] = schema.BufferT(data=data)
    else:
        buffers.append(schema.BufferT(data=data))
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(buffers) - 1
        metadata.append(entry)
    aligned = _aligned_buffer_type(schema)
    model.buffers = [aligned(b.data, b.offset, b.size) for b in buffers]
    model.metadata = metadata
    builder = flatbuffers.Builder(len(model_bytes) + len(payload) + _TFLITE_ALIGN * len(buffers) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def write_card_tflite(model_bytes: bytes, card: ModelCard) -> bytes:
    """TFLite bytes carrying ``card`` as metadata ``CARD_KEY`` (an earlier card is replaced)."""
    return write_metadata_tflite(model_bytes, CARD_KEY, card.to_json().encode())


# -- either --------------------------------------------------------------------------------------------------
def card_from_bytes(data: bytes, name: str = "<bytes>") -> ModelCard | None:
    """The card inside ONNX/TFLite bytes; None if there is none, ``ModelCardError`` if it is corrupt."""
    if model_format(data, name) == "onnx":
        text: str | bytes | None = read_onnx_metadata(data).get(CARD_KEY)
    else:
        text = read_tflite_metadata(data, CARD_KEY)
    if text is None:
        return None
    try:
        return ModelCard.from_json(text)
    except ModelCardError as exc:
        raise ModelCardError(f"{name}: the embedded model card is corrupt: {exc}") from exc


def read_card(path: str | Path) -> ModelCard | None:
    """The model card stored in an .onnx or .tflite file (format told by its bytes, not its name)."""
    return card_from_bytes(read_model_bytes(path), str(path))
