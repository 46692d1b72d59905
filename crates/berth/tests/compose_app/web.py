# The web service: answers /greeting from its environment and counts /hit in the kv store.
import http.server
import os
import urllib.request

KV = os.environ["KV_URL"]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok"
        elif self.path == "/greeting":
            body = os.environ.get("GREETING", "").encode()
        elif self.path == "/hit":
            with urllib.request.urlopen(KV + "/incr/hits", data=b"") as r:
                body = r.read()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
