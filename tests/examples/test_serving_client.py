"""Tests of examples/serving_client.py's wire formats, on every backend.

The gRPC client talks to a fake `PredictionService` built from the real
`tensorflow_serving.apis` protos (tensorflow-serving-api, which CI installs
with --no-deps) that records each `PredictRequest` and answers known
tensors; the REST client to a fake HTTP endpoint. The client is
backend-independent, so these run on each backend's pass; the end-to-end
checks against a real export (the server runs the SavedModel's signatures)
are in tests/export/test_saved_model.py, which exports on TensorFlow and
JAX.
"""

import base64

import numpy as np
import pytest

from fake_serving import grpc_server
from fake_serving import rest_server

from _checks import load_example

# What the fake server answers for a batch of 2 (top-2 of 3 classes).
OUTPUTS = {
    "probabilities": np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], np.float32),
    "classes": np.array([[1, 2], [0, 2]], np.int32),
    "scores": np.array([[0.6, 0.3], [0.5, 0.3]], np.float32),
}
PIXELS = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3) % 256

# signature -> (images as sent, TensorProto dtype name, shape in the request)
REQUESTS = {
    "serving_bytes": ([b"\x89PNG first", b"\xff\xd8 second"], "DT_STRING", [2]),
    "serving_uint8": (PIXELS.astype(np.uint8), "DT_UINT8", [2, 4, 4, 3]),
    "serving_default": (PIXELS.astype(np.float32), "DT_FLOAT", [2, 4, 4, 3]),
}


def load_client():
    return load_example("serving_client")


@pytest.fixture(scope="module")
def apis():
    """tensorflow + tensorflow_serving.apis, or a skip naming what is missing."""
    tf = pytest.importorskip("tensorflow", reason="the gRPC client needs a TensorFlow")
    pytest.importorskip("grpc", reason="grpcio is not installed (tests extra)")
    pytest.importorskip(
        "tensorflow_serving.apis.prediction_service_pb2_grpc",
        reason="tensorflow-serving-api is not installed (CI installs it: pip install "
        '--no-deps "tensorflow-serving-api==<TensorFlow major.minor>.*")')
    from tensorflow_serving.apis import predict_pb2

    return tf, predict_pb2


def known_answer(apis, seen):
    """A `predict` for `grpc_server` that records requests and answers OUTPUTS."""
    tf, predict_pb2 = apis

    def predict(request, context):
        seen.append(request)
        response = predict_pb2.PredictResponse()
        for name, value in OUTPUTS.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    return predict


@pytest.mark.parametrize("version", [None, 3])
@pytest.mark.parametrize("signature", sorted(REQUESTS))
def test_grpc_request_and_response(apis, signature, version):
    tf, _ = apis
    from tensorflow.core.framework import types_pb2

    images, dtype, shape = REQUESTS[signature]
    seen = []
    with grpc_server(known_answer(apis, seen)) as port:
        out = load_client().predict_grpc(images, "tiny", "127.0.0.1", port,
                                         signature_name=signature, version=version)
    (request,) = seen
    assert request.model_spec.name == "tiny"
    assert request.model_spec.signature_name == signature
    assert request.model_spec.HasField("version") == (version is not None)
    if version is not None:
        assert request.model_spec.version.value == version
    assert list(request.inputs) == ["images"]
    proto = request.inputs["images"]
    assert types_pb2.DataType.Name(proto.dtype) == dtype
    assert [d.size for d in proto.tensor_shape.dim] == shape
    sent = tf.make_ndarray(proto)
    if signature == "serving_bytes":
        assert list(sent) == images
    else:
        np.testing.assert_array_equal(sent, images)
        assert sent.dtype == images.dtype
    assert sorted(out) == sorted(OUTPUTS)
    for name, value in OUTPUTS.items():
        assert out[name].dtype == value.dtype, name
        np.testing.assert_array_equal(out[name], value)


def test_grpc_server_error_raises_runtime_error(apis):
    import grpc

    def reject(request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Unknown image file format.")

    with grpc_server(reject) as port, pytest.raises(
            RuntimeError, match="gRPC INVALID_ARGUMENT: Unknown image file format"):
        load_client().predict_grpc([b"garbage"], "tiny", "127.0.0.1", port)


def test_grpc_command_line_prints_labelled_top_k(apis, tmp_path, capsys):
    seen = []
    files = []
    for i, content in enumerate(REQUESTS["serving_bytes"][0]):
        files.append(tmp_path / f"img{i}.png")
        files[-1].write_bytes(content)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nfox\n")
    with grpc_server(known_answer(apis, seen)) as port:
        code = load_client().main([*map(str, files), "--protocol", "grpc", "--model-name",
                                   "tiny", "--host", "127.0.0.1", "--port", str(port),
                                   "--labels", str(labels)])
    assert code == 0
    assert list(apis[0].make_ndarray(seen[0].inputs["images"])) == REQUESTS["serving_bytes"][0]
    assert capsys.readouterr().out.splitlines() == [
        f"{files[0]}: dog (0.600), fox (0.300)",
        f"{files[1]}: cat (0.500), fox (0.300)",
    ]


@pytest.mark.parametrize(("signature", "instances"), [
    ("serving_bytes", [{"b64": base64.b64encode(b).decode()} for b in REQUESTS["serving_bytes"][0]]),
    ("serving_uint8", PIXELS.tolist()),
])
@pytest.mark.parametrize("version", [None, 3])
def test_rest_request_and_response(signature, instances, version):
    images = REQUESTS[signature][0]
    seen = []
    rows = [{k: v[i].tolist() for k, v in OUTPUTS.items()} for i in range(2)]

    def predict(path, request):
        seen.append((path, request))
        return 200, {"predictions": rows}

    with rest_server(predict) as port:
        out = load_client().predict_rest(images, "tiny", "127.0.0.1", port,
                                         signature_name=signature, version=version)
    path = "/v1/models/tiny" + ("" if version is None else f"/versions/{version}") + ":predict"
    assert seen == [(path, {"signature_name": signature, "instances": instances})]
    assert out == rows


def test_rest_single_output_and_error():
    def predict(path, request):
        if request["instances"] == [{"b64": "Z2FyYmFnZQ=="}]:
            return 400, {"error": "Unknown image file format."}
        return 200, {"predictions": [[0.5, 1.5]]}

    client = load_client()
    with rest_server(predict) as port:
        assert client.predict_rest([b"ok"], "tiny", "127.0.0.1", port) == [{"features": [0.5, 1.5]}]
        with pytest.raises(RuntimeError, match="HTTP 400.*Unknown image file format"):
            client.predict_rest([b"garbage"], "tiny", "127.0.0.1", port)
