"""The face pipeline: decode -> detect -> landmarks -> align -> embed, on INT8 ONNX model packs."""
