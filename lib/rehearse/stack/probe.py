"""Tries one TCP flow for the stack rehearsal: connect, read the greeting, report one JSON line.

Run inside the source's network namespace (ip netns exec). result: open (connected), refused
(reached the host, nothing listening), timeout (dropped on the way: a security group), or
unreachable. With --tls the greeting is read through TLS (IMAPS); with --http PATH a GET is sent.
"""
import json
import socket
import ssl
import sys


def main():
    args = sys.argv[1:]
    host, port = args[0], int(args[1])
    source = None
    tls = False
    http_path = None
    i = 2
    while i < len(args):
        if args[i] == "--source":
            source = args[i + 1]
            i += 2
        elif args[i] == "--tls":
            tls = True
            i += 1
        elif args[i] == "--http":
            http_path = args[i + 1]
            i += 2
        else:
            raise SystemExit("unknown flag " + args[i])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.settimeout(6)
    out = {"result": "open", "greeting": ""}
    try:
        s.connect((host, port))
    except socket.timeout:
        out["result"] = "timeout"
    except ConnectionRefusedError:
        out["result"] = "refused"
    except OSError as e:
        out["result"] = "unreachable"
        out["error"] = str(e)
    if out["result"] == "open":
        try:
            conn = s
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn = ctx.wrap_socket(s)
            if http_path is not None:
                conn.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (http_path, host)).encode())
            conn.settimeout(5)
            data = conn.recv(200)
            out["greeting"] = data.decode("latin-1")
        except (OSError, ssl.SSLError) as e:
            out["error"] = str(e)
    s.close()
    print(json.dumps(out))


main()
