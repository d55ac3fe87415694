"""Serves the captured NVIDIA OCSP responses of the h100-550.90.07 vector by certificate
serial number, so nv-local-gpu-verifier can run with no network. Unknown serial: HTTP 404.
Usage: ocsp_stub.py PORT DIR_WITH_*.ocsp.b64"""
import base64
import glob
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from cryptography.x509 import ocsp

RESPONSES = {}
for path in glob.glob(sys.argv[2] + "/*.ocsp.b64"):
    with open(path, encoding="ascii") as f:
        der = base64.b64decode(f.read())
    RESPONSES[ocsp.load_der_ocsp_response(der).serial_number] = der


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        der = RESPONSES.get(ocsp.load_der_ocsp_request(body).serial_number)
        if der is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(der)))
        self.end_headers()
        self.wfile.write(der)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
