"""Mixed precision for one stage: policy set and restored, float32 outputs, loss scaling, CPU warning, and the
trained model still converts to TFLite and ONNX."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.train import precision


@pytest.fixture
def small(digits):
    from edgeopt.models import zoo

    return zoo.build("small_cnn", digits.input_shape, digits.num_classes, width=0.25, depth=1)


def test_policy_is_restored_even_on_error():
    import tf_keras as keras

    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError), precision.policy("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        raise RuntimeError("boom")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="did you mean 'mixed_float16'"):
        precision.check("mixed_float61")


def test_to_policy_keeps_the_output_float32_and_the_weights(small, digits):
    with precision.policy("mixed_bfloat16"):
        mixed = precision.to_policy(small, "mixed_bfloat16")
    policies = precision.dtype_policies(mixed)
    assert policies["softmax"] == "float32"
    assert policies["block1_conv"] == policies["logits"] == "mixed_bfloat16"
    assert mixed.output.dtype.name == "float32"
    x = digits.x_test[:8]
    np.testing.assert_allclose(np.asarray(mixed(x)), np.asarray(small(x)), atol=0.05)  # bfloat16 rounding
    back = precision.to_policy(mixed, "float32")
    assert set(precision.dtype_policies(back).values()) == {"float32"}
    assert precision.to_policy(back, "float32") is back  # nothing to change: same object


def test_float16_warns_on_cpu_and_scales_the_loss(caplog):
    import tf_keras as keras

    if precision.has_fast_float16():
        pytest.skip("a GPU is visible: no CPU warning expected")
    with caplog.at_level(logging.WARNING, logger="edgeopt"), precision.policy("mixed_float16"):
        opt = precision.wrap_optimizer(keras.optimizers.Adam(), "mixed_float16")
    assert "mixed_bfloat16" in caplog.text
    assert isinstance(opt, keras.mixed_precision.LossScaleOptimizer)
    plain = keras.optimizers.Adam()
    assert precision.wrap_optimizer(plain, "mixed_bfloat16") is plain


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_training_gives_a_float32_model_that_converts(policy, small, digits, tmp_path):
    import tf_keras as keras

    from edgeopt.stages.convert import tflite_bytes
    from edgeopt.train.fit import Settings, train

    trained, history = train(small, digits.x_train[:256], digits.y_train[:256],
                             Settings(epochs=1, batch_size=64, lr=0.01, precision=policy))
    assert np.isfinite(history["loss"]).all()
    assert keras.mixed_precision.global_policy().name == "float32"
    assert set(precision.dtype_policies(trained).values()) == {"float32"}
    x = digits.x_test[:16]
    ref = np.asarray(trained(x))
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite_bytes(trained, "fp32"))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(out["index"]), ref, atol=1e-5)
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    proto, _ = tf2onnx.convert.from_keras(trained, input_signature=[tf.TensorSpec((None, *x.shape[1:]), tf.float32)],
                                          opset=17)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], ref, atol=1e-5)
