"""Query a TensorFlow Serving server running a keras_preact export.

Sends image files to `<model>` over REST (`POST /v1/models/<name>:predict`)
or gRPC (`tensorflow_serving.apis.PredictionService/Predict`) through the
`serving_bytes` signature (encoded JPEG/PNG, resized in the graph and
normalized as the model records) and prints the top-5 classes of each image.

    python examples/serving_client.py --model-name preact20 img1.jpg img2.png
    python examples/serving_client.py --protocol grpc --port 8500 --model-name preact20 img.jpg
    python examples/serving_client.py --labels labels.txt ...   # one class name a line

REST needs only the standard library. gRPC needs `grpcio`, a TensorFlow (any
build) and `tensorflow-serving-api`, imported lazily. tensorflow-serving-api
requires the full `tensorflow` distribution, so next to another build
(tensorflow-cpu, a GPU build) install it with `--no-deps`, same minor version
as the TensorFlow (docs/serving.md).
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request


def rest_request_body(images, signature_name="serving_bytes"):
    """JSON body of a TF Serving REST predict request (row / "instances" format).

    Args:
        images: list of encoded image `bytes` (for `serving_bytes`), or a
            nested list / array of pixels `(N, H, W, 3)` for `serving_default`
            (float 0-255) and `serving_uint8`.
        signature_name: signature to call.

    Returns:
        `dict`, ready for `json.dumps`.
    """
    if signature_name == "serving_bytes":
        instances = [{"b64": base64.b64encode(bytes(b)).decode("ascii")} for b in images]
    else:
        instances = images.tolist() if hasattr(images, "tolist") else list(images)
    return {"signature_name": signature_name, "instances": instances}


def predict_rest(images, model_name, host="localhost", port=8501,
                 signature_name="serving_bytes", version=None, timeout=30.0):
    """Calls `POST /v1/models/<name>[/versions/<v>]:predict` and returns the predictions.

    Returns:
        list (one per image) of dicts `{"probabilities", "classes", "scores"}`
        (plus `"logits"` for a logits-head model; `{"features"}` for a
        features-only export).

    Raises:
        RuntimeError: with the server's error message on an HTTP error.
    """
    path = f"/v1/models/{model_name}"
    if version is not None:
        path += f"/versions/{int(version)}"
    url = f"http://{host}:{port}{path}:predict"
    data = json.dumps(rest_request_body(images, signature_name)).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        raise RuntimeError(f"TF Serving returned HTTP {e.code}: {detail}") from None
    predictions = body["predictions"]
    # A signature with a single output answers with bare values per row.
    if predictions and not isinstance(predictions[0], dict):
        predictions = [{"features": p} for p in predictions]
    return predictions


def predict_grpc(images, model_name, host="localhost", port=8500,
                 signature_name="serving_bytes", version=None, timeout=30.0):
    """Same as `predict_rest` over gRPC (`PredictionService.Predict`).

    Args:
        images: list of encoded image `bytes` (for `serving_bytes`), or an
            array of pixels `(N, H, W, 3)` on 0-255 (uint8 for
            `serving_uint8`, float32 for `serving_default`).
        model_name, host, port, signature_name, version, timeout: as in
            `predict_rest` (gRPC port, default 8500).

    Returns:
        `dict` output name -> numpy array (batch first), e.g. `classes` int32
        `(N, k)`, `scores` and `probabilities` float32.

    Raises:
        ImportError: grpcio, tensorflow or tensorflow-serving-api is missing;
            the message gives the install line.
        RuntimeError: with the gRPC status and the server's message when the
            call fails (e.g. `INVALID_ARGUMENT` for an undecodable image).
    """
    try:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
        from tensorflow_serving.apis import prediction_service_pb2_grpc
    except ImportError as e:
        raise ImportError(
            f"gRPC needs grpcio, a TensorFlow and tensorflow-serving-api; missing: {e.name}. "
            "Install: pip install grpcio tensorflow-cpu (or your TensorFlow build), then "
            'pip install --no-deps "tensorflow-serving-api==<TensorFlow major.minor>.*" '
            "(it requires the full `tensorflow` distribution, which would install a "
            "second TensorFlow next to yours)."
        ) from None

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    if signature_name == "serving_bytes":
        tensor = tf.make_tensor_proto([bytes(b) for b in images], dtype=tf.string)
    else:
        dtype = tf.uint8 if signature_name == "serving_uint8" else tf.float32
        tensor = tf.make_tensor_proto(images, dtype=dtype)
    request.inputs["images"].CopyFrom(tensor)
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            raise RuntimeError(
                f"TF Serving returned gRPC {e.code().name}: {e.details()}"
            ) from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def format_top_k(classes, scores, labels=None):
    """One line: `name (score), ...` for the top-k of one image."""
    names = [labels[int(c)] if labels else str(int(c)) for c in classes]
    return ", ".join(f"{n} ({float(s):.3f})" for n, s in zip(names, scores))


def build_parser():
    """The `argparse.ArgumentParser` of this script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="JPEG/PNG files")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=None, help="8501 (REST) / 8500 (gRPC)")
    parser.add_argument("--protocol", choices=["rest", "grpc"], default="rest")
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--labels", default=None, help="text file, one class name per line")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)

    encoded = []
    for name in args.images:
        with open(name, "rb") as f:
            encoded.append(f.read())
    labels = None
    if args.labels:
        with open(args.labels) as f:
            labels = [line.strip() for line in f if line.strip()]

    if args.protocol == "rest":
        predictions = predict_rest(encoded, args.model_name, args.host,
                                   args.port or 8501, version=args.version)
        rows = [(p["classes"], p["scores"]) for p in predictions]
    else:
        outputs = predict_grpc(encoded, args.model_name, args.host,
                               args.port or 8500, version=args.version)
        rows = list(zip(outputs["classes"], outputs["scores"]))
    for name, (classes, scores) in zip(args.images, rows):
        print(f"{name}: {format_top_k(classes, scores, labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
