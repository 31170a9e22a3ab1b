"""Deployment artifacts: torch.onnx export (`onnx_export`), onnxruntime graph optimisation (`optimize`) and quantisation
(`quantize`), onnxruntime sessions (`sessions`), the parity check (`parity`), the artifact manifest (`manifest`)
and the whole build of an artifact (`build`)."""
