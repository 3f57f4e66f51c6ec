#!/usr/bin/env python3
"""hastack health agent: the target of this server's Route 53 health check (dns switchover).

200 only while the service port answers on 127.0.0.1 and the server is not fenced. After
HASTACK_FAIL_LIMIT consecutive failed local checks it writes the fence file, so once Route 53
has failed over, this server stays unhealthy until an operator runs hastack-unfence after the
data has been synced back. Fallback is a decision, never an accident."""
import http.server
import os
import socket
import threading
import time

AGENT_PORT = int(os.environ.get("HASTACK_AGENT_PORT", "9780"))
AGENT_HOST = os.environ.get("HASTACK_AGENT_HOST", "0.0.0.0")
SERVICE_PORT = int(os.environ["HASTACK_SERVICE_PORT"])
FAIL_LIMIT = int(os.environ.get("HASTACK_FAIL_LIMIT", "3"))
INTERVAL = float(os.environ.get("HASTACK_CHECK_INTERVAL", "10"))
FENCE = os.environ.get("HASTACK_FENCE_FILE", "/var/lib/hastack/fenced")
PROVISIONED = os.environ.get("HASTACK_PROVISIONED_FILE", "/var/lib/hastack/provisioned")
failures = 0


def service_up():
    try:
        with socket.create_connection(("127.0.0.1", SERVICE_PORT), timeout=3):
            return True
    except OSError:
        return False


def fence(reason):
    os.makedirs(os.path.dirname(FENCE), exist_ok=True)
    with open(FENCE, "w") as f:
        f.write("%s at %s\n" % (reason, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))


def watch():
    global failures
    # Armed only once provisioning has finished (runcmd's last step) and the service has answered:
    # on a first boot the agent starts before the service is provisioned, and provisioning
    # restarts it; a server that never served must not fence itself for good.
    armed = False
    while True:
        if service_up():
            failures = 0
            armed = armed or os.path.exists(PROVISIONED)
        elif armed:
            failures += 1
            if failures >= FAIL_LIMIT and not os.path.exists(FENCE):
                fence("fenced after %d failed checks of port %d" % (failures, SERVICE_PORT))
        time.sleep(INTERVAL)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if os.path.exists(FENCE):
            code, body = 503, "fenced: sync data back, then run hastack-unfence\n"
        elif not service_up():
            code, body = 503, "service port %d not answering\n" % SERVICE_PORT
        else:
            code, body = 200, "ok\n"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


threading.Thread(target=watch, daemon=True).start()
http.server.ThreadingHTTPServer((AGENT_HOST, AGENT_PORT), Handler).serve_forever()
