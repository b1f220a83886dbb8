"""Write tests/golden/core_*.json: golden vectors the Android core module (android_demo/core) must reproduce.

Each file holds one real LFW face: the source image region (RGB bytes), the YuNet landmarks, the 2×3
similarity matrix and 112×112 crop from ``shrinkface.runtime.align``, and the model input tensors that
``ModelCard.preprocess`` makes from that crop for four cards (float32 NCHW; int8 NHWC whose scale makes every
value a rounding tie, which checks half-to-even; int8 BGR NCHW with clipping; uint8 NHWC). The Java tests
recompute matrix, crop and tensors from the landmarks and source bytes alone.

Arrays are ``{"dtype", "shape", "encoding": "gzip+base64", "data"}`` (little-endian, C order). The source is
stored as the region that the warp reads (checked here: warping the image with everything outside the region
set to 0 gives the same crop), pasted at ``source_region.x, .y`` into a black ``image_width×image_height``
image; this keeps all files together under 1 MB.

core_tflite_metadata.json holds two tiny TFLite flatbuffers written with the official schema
(``ai_edge_litert.schema_py_generated``) whose Model.metadata carries a card under ``shrinkface.model_card``:
one with the card bytes inside the flatbuffer, one with them appended after it (Buffer.offset/size, the layout
converters use for large models); the Java reader must find the same entries.

Run: ``SHRINKFACE_DATA=/work/shared/data .venv/bin/python tests/golden/make_core_golden.py``
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import cv2
import numpy as np

from shrinkface.runtime.align import align_face, similarity_transform
from shrinkface.runtime.assets import asset_path
from shrinkface.runtime.card import CARD_KEY, ModelCard
from shrinkface.runtime.config import data_dir
from shrinkface.runtime.detect import FaceDetector
from shrinkface.runtime.image import load_image

OUT_DIR = Path(__file__).resolve().parent
FORMAT = "shrinkface.core_golden/1"

#: (file stem, LFW image, sub-image (y0, x0) or None, also the uint8 card). Chosen for a roll of −6°, an
#: up-scaling warp (scale 0.61) and a face near the image corner so that the crop has constant-border (0)
#: pixels; the last is non-square. The uint8 tensor equals the crop here, so one case carries it (size).
CASES: list[tuple[str, str, tuple[int, int] | None, bool]] = [
    ("core_roll", "Abel_Aguilar/Abel_Aguilar_0001.jpg", None, False),
    ("core_upscale", "Adrian_Annus/Adrian_Annus_0001.jpg", None, False),
    ("core_border", "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", (72, 80), True),
]

CARDS: dict[str, ModelCard] = {
    "float32_nchw_rgb": ModelCard(name="golden_float", embedding_size=128),
    "int8_nhwc_rgb_ties": ModelCard(
        name="golden_ties",
        embedding_size=128,
        layout="NHWC",
        std=(128.0, 128.0, 128.0),
        input_dtype="int8",
        input_scale=0.0078125,
        input_zero_point=0,
    ),
    "int8_nchw_bgr_clip": ModelCard(
        name="golden_bgr",
        embedding_size=192,
        channel_order="BGR",
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        input_dtype="int8",
        input_scale=0.0151,
        input_zero_point=-3,
    ),
    "uint8_nhwc_rgb": ModelCard(
        name="golden_uint8",
        embedding_size=128,
        layout="NHWC",
        mean=(0.0, 0.0, 0.0),
        std=(255.0, 255.0, 255.0),
        input_dtype="uint8",
        input_scale=1.0 / 255.0,
        input_zero_point=0,
    ),
}


def encode(array: np.ndarray) -> dict[str, object]:
    """A numpy array as a gzip+base64 JSON object (little-endian, C order)."""
    array = np.ascontiguousarray(array)
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return {
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "encoding": "gzip+base64",
        "data": base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii"),
    }


def read_region(image: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the source pixels the warp can read, with a 2-pixel margin, clipped to the image."""
    height, width = out_hw
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    src = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.floor(src.min(axis=0)).astype(int) - 2
    x1, y1 = np.floor(src.max(axis=0)).astype(int) + 3
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def make_case(
    stem: str, relpath: str, offset: tuple[int, int] | None, with_uint8: bool, detector: FaceDetector
) -> dict[str, object]:
    """The golden record of one image."""
    image = load_image(data_dir() / "lfw" / "images" / relpath)
    if offset is not None:
        image = np.ascontiguousarray(image[offset[0] :, offset[1] :])
    face = detector.detect_one(image)
    card = CARDS["float32_nchw_rgb"]
    template = card.template_array()
    matrix = similarity_transform(face.landmarks, template)
    crop = align_face(image, face.landmarks, template, card.input_size)
    x, y, w, h = read_region(image, matrix, card.input_size)
    masked = np.zeros_like(image)
    masked[y : y + h, x : x + w] = image[y : y + h, x : x + w]
    if not np.array_equal(align_face(masked, face.landmarks, template, card.input_size), crop):
        raise RuntimeError(f"{stem}: the stored region does not hold every pixel the warp reads")
    border_pixels = int(np.all(crop == 0, axis=2).sum())
    return {
        "format": FORMAT,
        "source": f"lfw/images/{relpath}" + (f" [{offset[0]}:, {offset[1]}:]" if offset else ""),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "image_width": int(image.shape[1]),
        "image_height": int(image.shape[0]),
        "source_region": {"x": x, "y": y, "width": w, "height": h},
        "source_rgb": encode(image[y : y + h, x : x + w]),
        "landmarks": [[float(v) for v in point] for point in face.landmarks],
        "template": [[float(v) for v in point] for point in template],
        "output_size": list(card.input_size),
        "matrix": [[float(v) for v in row] for row in matrix],
        "crop_rgb": encode(crop),
        "crop_black_pixels": border_pixels,
        "card_key": CARD_KEY,
        "cards": {
            key: {"card_json": c.to_json(), "tensor": encode(c.preprocess(crop)[0])}
            for key, c in CARDS.items()
            if with_uint8 or c.input_dtype != "uint8"
        },
    }


def tflite_with_metadata(entries: dict[str, bytes], external: bool) -> bytes:
    """A minimal TFLite flatbuffer (one empty subgraph) whose Model.metadata holds ``entries``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def build(tail_offset: int) -> tuple[bytes, bytes]:
        model = schema.ModelT()
        model.version = 3
        model.description = "shrinkface core golden fixture"
        subgraph = schema.SubGraphT()
        subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = [], [], [], []
        model.subgraphs = [subgraph]
        model.buffers = [schema.BufferT()]
        model.metadata = []
        tail = b""
        for name, payload in entries.items():
            buffer = schema.BufferT()
            if external:
                buffer.offset, buffer.size = tail_offset + len(tail), len(payload)
                tail += payload
            else:
                buffer.data = list(payload)
            model.buffers.append(buffer)
            entry = schema.MetadataT()
            entry.name, entry.buffer = name, len(model.buffers) - 1
            model.metadata.append(entry)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output()), tail

    placeholder, _ = build(1 << 40)  # a non-default offset: the flatbuffer's length no longer depends on it
    head, tail = build(len(placeholder))
    if len(head) != len(placeholder):
        raise RuntimeError("flatbuffer length changed with the offset")
    data = head + tail
    parsed = schema.Model.GetRootAsModel(data, 0)
    for i in range(parsed.MetadataLength()):
        meta = parsed.Metadata(i)
        buffer = parsed.Buffers(meta.Buffer())
        if external:
            got = data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            got = buffer.DataAsNumpy().tobytes()
        if got != entries[meta.Name().decode()]:
            raise RuntimeError("the TFLite fixture does not read back")
    return data


def write_tflite_fixture() -> Path:
    """core_tflite_metadata.json: inline and external-buffer TFLite files carrying a card."""
    card = CARDS["int8_nhwc_rgb_ties"].replace(threshold=0.3125, threshold_far=0.001)
    entries = {"min_runtime_version": b"1.14.0\0\0\0\0\0\0\0\0\0\0", CARD_KEY: card.to_json().encode()}
    record = {
        "format": "shrinkface.core_golden_tflite/1",
        "entries": {name: base64.b64encode(value).decode("ascii") for name, value in entries.items()},
        "card_json": card.to_json(),
        "inline_tflite": base64.b64encode(tflite_with_metadata(entries, external=False)).decode("ascii"),
        "external_tflite": base64.b64encode(tflite_with_metadata(entries, external=True)).decode("ascii"),
    }
    path = OUT_DIR / "core_tflite_metadata.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def main() -> None:
    """Write every case and report the sizes."""
    fixture = write_tflite_fixture()
    print(f"{fixture.name}: {fixture.stat().st_size} bytes")
    detector = FaceDetector(asset_path("yunet"))
    total = fixture.stat().st_size
    for stem, relpath, offset, with_uint8 in CASES:
        record = make_case(stem, relpath, offset, with_uint8, detector)
        path = OUT_DIR / f"{stem}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        total += path.stat().st_size
        print(f"{path.name}: {path.stat().st_size} bytes, border pixels {record['crop_black_pixels']}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
