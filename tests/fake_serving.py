"""Fake TensorFlow Serving servers on 127.0.0.1 for the serving-client tests.

`rest_server` answers `POST /v1/models/...:predict` like TF Serving's REST
API; `grpc_server` serves `tensorflow.serving.PredictionService` with the
real `tensorflow_serving.apis` protos (tensorflow-serving-api). Each takes a
`predict` callable that decides the answer, and yields the free port it
listens on.
"""

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer


@contextlib.contextmanager
def rest_server(predict):
    """A TF Serving REST predict endpoint.

    Args:
        predict: `predict(path, request) -> (http_status, body)`: `path` is
            the URL path, `request` the decoded JSON body; `body` is sent as
            JSON.

    Yields:
        The port (int).
    """

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, body = predict(self.path, request)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def grpc_server(predict):
    """A gRPC `PredictionService` (only `Predict` implemented).

    Args:
        predict: `predict(request, context) -> PredictResponse`, with the
            `PredictRequest` proto and the gRPC servicer context (call
            `context.abort(code, message)` to fail the call).

    Yields:
        The port (int).
    """
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            return predict(request, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0)
