"""Local AWS for keygate: moto's DynamoDB and Secrets Manager over HTTP.

Differs from `moto_server` in two ways that matter to us:
- requests are applied one at a time (a lock around the app), because moto
  does not make a conditional update atomic under concurrent requests, while
  DynamoDB serialises writes to an item. Without it, concurrency tests would
  measure the emulator's races instead of our conditions;
- it binds port 0 and prints the port it got, so there is no window in which
  another process can take a port we picked.

Usage: python emulator.py [--port-file FILE]
"""

import argparse
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def serialised(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        with lock:
            # Materialise the body inside the lock: the work happens while iterating.
            return list(app(environ, start_response))

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", args.port, serialised(app), threaded=True)
    with open(args.port_file, "w") as f:
        f.write(str(server.port))
    print(f"emulator listening on 127.0.0.1:{server.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
