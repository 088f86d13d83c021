"""Batch norm folding: a Conv–BN–ReLU student converts to a TFLite graph whose convolutions carry the batch
norm (no separate multiply/add/rsqrt ops) and whose outputs still match the Keras model."""

from __future__ import annotations

import numpy as np
import pytest

BN_ARITHMETIC = {"MUL", "ADD", "SUB", "RSQRT", "SQRT", "DIV", "FUSED_BATCH_NORM"}


def _ops(flatbuffer: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flatbuffer)
    return [op["op_name"] for op in interp._get_ops_details()]


@pytest.mark.parametrize("builder, kwargs", [("small_cnn", {"width": 0.25, "depth": 2}),
                                             ("mobilenet_v2_like", {"alpha": 0.35, "blocks": [[1, 16, 1, 1],
                                                                                               [6, 24, 1, 2]]})])
def test_conv_bn_relu_folds_into_the_convolutions(builder, kwargs, digits):
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.models import zoo
    from edgeopt.stages.convert import tflite_bytes
    from edgeopt.train.fit import Settings, train

    model = zoo.build(builder, digits.input_shape, digits.num_classes, **kwargs)
    bns = [layer for layer in model.layers if "BatchNormalization" in type(layer).__name__]
    assert bns, "the student must have batch norm to fold"
    # one short fit moves the BN statistics away from the identity, so folding is not trivially a no-op
    model, _ = train(model, digits.x_train[:256], digits.y_train[:256], Settings(epochs=1, batch_size=32, lr=0.01))
    assert any(not np.allclose(bn.moving_variance.numpy(), 1.0) for bn in bns)
    flat = tflite_bytes(model, "fp32")
    ops = _ops(flat)
    convs = [op for op in ops if op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == len(bns), ops  # one convolution per Conv–BN pair, nothing left over
    assert not BN_ARITHMETIC & set(ops) - ({"ADD"} if builder == "mobilenet_v2_like" else set()), ops
    if builder == "mobilenet_v2_like":  # ADD only for the residual connections, not per batch norm
        assert ops.count("ADD") == sum(layer.__class__.__name__ == "Add" for layer in model.layers)
    x = digits.x_test[:32]
    interp = Interpreter(model_content=flat)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(out["index"]), model.predict(x, verbose=0), atol=1e-5)
