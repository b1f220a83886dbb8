"""shrinkface.export: a trained student checkpoint → ONNX / TFLite files (float and int8) with the model card
inside, checked against the float torch model.

formats.py      the table of formats → quantisation modes, int8 methods, layouts, options (validation)
checkpoint.py   trainer checkpoint → (student, float model card)
calib.py        real aligned training faces for calibration / QAT (never LFW; loader in runtime/aligned_crops.py)
equalize.py     activation equalisation before int8 (exact in float)
qat.py          torchao PT2E: PTQ and QAT (with a PTQ fallback), litert-torch quantiser patch
onnx_export.py  float and int8 QDQ ONNX, onnx.checker, onnxruntime smoke run
tflite_export.py float and int8 TFLite (NHWC, int8 in/out), card from the file's own tensors
litert_prelu.py  PReLU as one native PRELU op; int8 PRELU rewritten as a float island (XNNPACK)
exporter.py     one checkpoint → the requested files + export.json (time, size, sha256)
parity.py       per-image cosine, decision agreement, LFW accuracy and TAR@FAR vs float; the gate
golden.py       golden vectors (landmarks → crop → input tensor → embedding) for other runtimes
cli.py          `shrinkface export`, `shrinkface parity` (`bench models`: runtime/bench_models.py)
"""
