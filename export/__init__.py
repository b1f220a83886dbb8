"""shrinkface.export: a trained student checkpoint → ONNX / TFLite files (float and int8) with the model card
inside, checked against the float torch model.

formats.py      the table of formats → quantisation modes, int8 methods, layouts, options (validation)
checkpoint.py   trainer checkpoint → (student, float model card)
calib.py        real aligned training faces for calibration / QAT (never LFW)
equalize.py     activation equalisation before int8 (exact in float)
qat.py          torchao PT2E: PTQ and QAT (with a PTQ fallback), litert-torch quantiser patch
onnx_export.py  float and int8 QDQ ONNX, onnx.checker, onnxruntime smoke run
tflite_export.py float and full-int8 TFLite (NHWC), card from the file's own tensors
exporter.py     one checkpoint → the requested files + export.json (time, size, sha256)
parity.py       per-image cosine, decision agreement, LFW accuracy and TAR@FAR vs float; the gate
golden.py       golden vectors (landmarks → crop → input tensor → embedding) for other runtimes
bench.py        batch-1 latency of exported files (torch-free)
cli.py          `shrinkface export`, `shrinkface parity`, `shrinkface bench models`
"""
