# The key-value store: POST /incr/<key> adds one to a counter kept in /data/<key>.
import http.server
import os
import threading

LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        key = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/incr/") or not key.isalnum():
            self.send_error(404)
            return
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = os.path.join("/data", key)
        with LOCK:
            try:
                n = int(open(path).read())
            except FileNotFoundError:
                n = 0
            n += 1
            with open(path, "w") as f:
                f.write(str(n))
        body = str(n).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("", 7000), Handler).serve_forever()
