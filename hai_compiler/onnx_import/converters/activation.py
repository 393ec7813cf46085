"""ONNX converters: activation family.

Rule: every activation of ONNX opset 7+ has the attributes and operands of its
IR op (PRelu's slope already broadcasts onto X from opset 7 on), so no
converter is needed here: the default one maps them by name. This module is the
place for one if a future opset changes an activation's form.
"""
