# The worker: hits the web service by its service name, and prints what the store counted.
import time
import urllib.request

while True:
    try:
        with urllib.request.urlopen("http://web:8000/hit", timeout=5) as r:
            print("hits", r.read().decode(), flush=True)
    except Exception as e:
        print("error", e, flush=True)
    time.sleep(0.3)
