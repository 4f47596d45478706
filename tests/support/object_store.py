#!/usr/bin/python3
"""An object store for the tests: serves a folder over HTTP/1.1 with keep-alive, byte
ranges, ETag and Last-Modified, as S3 and Azure blob storage serve COGs, and misbehaves
the way they do when told to: latency per request, a bandwidth cap per connection, and
injected faults (503 at a rate, 429 with Retry-After, a reset mid-body, a short body,
404 and 403 for chosen paths). It also stands in for Planetary Computer's SAS token
endpoint and checks the token on the blobs it guards, and as S3 it checks AWS Signature
Version 4 (recomputed from the request as received, with the secret it is given) and the
requester-pays header.

    object_store.py ROOT [--port N] [--port-file F] [--latency-ms 50] [--rate-mbps 100]
                    [--p503 0.01] [--once 429,reset,truncate] [--not-found REGEX]
                    [--new-etag-after KEY=N]
                    [--sas-prefix /blob/ --sas-lifetime-s 3600 --sas-revoke-after N]
                    [--s3-key KEY_ID:SECRET] [--requester-pays] [--log F]

It listens on 127.0.0.1, on --port or one the system chooses, written to --port-file
once it accepts connections. Each request is logged to --log as one JSON line: method, path
(with its query string, so that tests can check what the client sent), range, status
and fault. Faults are drawn from a seeded generator: a run is repeatable.
"""

import argparse
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse


class Faults:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.p503 = args.p503
        self.once = set(x for x in args.once.split(",") if x)
        self.not_found = re.compile(args.not_found) if args.not_found else None
        self.forbidden = re.compile(args.forbidden) if args.forbidden else None
        self.ranged = 0  # ranged GETs seen: one-off faults wait for a few, to hit mid-run

    def draw(self, path, ranged):
        """The fault for this request: None, or one of 503, 429, reset, truncate, 404, 403."""
        if self.not_found and self.not_found.search(path):
            return "404"
        if self.forbidden and self.forbidden.search(path):
            return "403"
        with self.lock:
            if not ranged:
                return None
            self.ranged += 1
            if self.ranged >= 5:
                for kind in ("429", "reset", "truncate"):
                    if kind in self.once:
                        self.once.discard(kind)
                        return kind
            if self.p503 > 0 and self.rng.random() < self.p503:
                return "503"
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "eo-object-store/1"

    def log_message(self, fmt, *args):
        pass

    def record(self, status, fault=None, rng=None):
        log = self.server.log
        if log is None:
            return
        line = json.dumps({"t": time.time(), "method": self.command, "path": self.path, "range": rng, "status": status,
                           "fault": fault})
        with self.server.log_lock:
            log.write(line + "\n")
            log.flush()

    def simple(self, status, body=b"", headers=None, fault=None, rng=None):
        self.record(status, fault, rng)  # before the response: a client that has it finds it logged
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        srv = self.server
        if srv.latency > 0:
            time.sleep(srv.latency)
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = urllib.parse.parse_qs(url.query)
        if srv.sas_prefix and path.startswith("/api/sas/v1/token/"):
            return self.token(path.rsplit("/", 1)[-1])
        if srv.sas_prefix and path.startswith(srv.sas_prefix) and not self.signed(query):
            return self.simple(403, b"<Error><Code>AuthenticationFailed</Code></Error>", fault="unsigned")
        if srv.s3_key:
            problem = self.sigv4_problem()
            if problem:
                return self.simple(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>", fault="signature: " + problem)
        if srv.requester_pays and self.headers.get("x-amz-request-payer") != "requester":
            return self.simple(403, b"<Error><Code>AccessDenied</Code></Error>", fault="not requester-pays")
        rng = self.headers.get("Range")
        fault = srv.faults.draw(path, rng is not None)
        if fault == "404":
            return self.simple(404, b"<Error><Code>NoSuchKey</Code></Error>", fault=fault, rng=rng)
        if fault == "403":
            return self.simple(403, b"<Error><Code>AccessDenied</Code></Error>", fault=fault, rng=rng)
        if fault == "503":
            return self.simple(503, b"<Error><Code>SlowDown</Code></Error>", fault=fault, rng=rng)
        if fault == "429":
            return self.simple(429, b"too many requests", {"Retry-After": "1"}, fault=fault, rng=rng)
        file = os.path.normpath(os.path.join(srv.root, path.lstrip("/")))
        if not file.startswith(srv.root) or not os.path.isfile(file):
            return self.simple(404, b"<Error><Code>NoSuchKey</Code></Error>", rng=rng)
        st = os.stat(file)
        size = st.st_size
        with srv.log_lock:
            # The object "uploaded anew" after so many ranged reads of it: a new ETag, the
            # same bytes. Counted per object, so that the change falls inside its reads
            # whatever order a client reads objects in.
            reads = srv.ranged_reads.get(path, 0)
            srv.ranged_reads[path] = reads + (rng is not None)
            generation = 1 if path == srv.new_etag_key and 0 < srv.new_etag_after <= reads else 0
        headers = {
            "ETag": '"%x-%x-%d"' % (st.st_mtime_ns, size, generation),
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": "image/tiff",
        }
        start, end = 0, size - 1
        status = 200
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                return self.simple(416, headers={"Content-Range": "bytes */%d" % size}, rng=rng)
            if m.group(1) == "":
                start, end = max(0, size - int(m.group(2))), size - 1
            else:
                start = int(m.group(1))
                end = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
            if start >= size or start > end:
                return self.simple(416, headers={"Content-Range": "bytes */%d" % size}, rng=rng)
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
        length = end - start + 1
        # Logged before the response: a test that reads the log once its client has the
        # bytes must find the request there (logged after, it raced the server's thread).
        damaged = fault in ("reset", "truncate")
        self.record(status, fault if damaged else None, rng)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if not damaged:
            with open(file, "rb") as f:
                self.send_file(f, start, length)
            return
        # Half the promised bytes, then a reset (RST, as a dropped connection gives) or a
        # clean close (a short body).
        with open(file, "rb") as f:
            f.seek(start)
            self.wfile.write(f.read(length // 2))
        self.wfile.flush()
        self.close_connection = True
        if fault == "reset":
            # Linger 0: closing sends RST. The descriptor is closed here, not by the
            # socket object, which the handler's files keep open until they go.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        else:
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_file(self, f, start, length):
        # sendfile in pieces of at most 1 MiB, paced to the rate: the bytes never pass through
        # Python, so the store serves many connections at their full rate each (64 KiB writes
        # from Python held its lock so often that all connections together got ~110 MB/s).
        rate = self.server.rate
        piece = 1 << 20
        t0 = time.monotonic()
        sent = 0
        while sent < length:
            n = os.sendfile(self.connection.fileno(), f.fileno(), start + sent, min(piece, length - sent))
            if n == 0:
                break
            sent += n
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    def sigv4_problem(self):
        """Why the request's AWS Signature Version 4 does not hold (None when it does): the
        canonical request rebuilt from what arrived, over the headers it says it signed,
        and the signature computed with the store's secret, as S3 does."""
        key_id, secret = self.server.s3_key
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                         r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})", self.headers.get("Authorization", "").strip())
        if not m:
            return "no AWS4-HMAC-SHA256 authorization"
        key, day, region, service, signed, signature = m.groups()
        if key != key_id:
            return "unknown access key " + key
        amz_date = self.headers.get("x-amz-date", "")
        names = signed.split(";")
        if not amz_date.startswith(day) or "host" not in names:
            return "x-amz-date or host not signed for the day of the credential"
        url = urllib.parse.urlsplit(self.path)
        query = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                         for k, v in sorted(urllib.parse.parse_qsl(url.query, keep_blank_values=True)))
        headers = "".join("%s:%s\n" % (n, " ".join(self.headers.get(n, "").split())) for n in names)
        payload = self.headers.get("x-amz-content-sha256", hashlib.sha256(b"").hexdigest())
        canonical = "\n".join([self.command, url.path, query, headers, signed, payload])
        scope = "%s/%s/%s/aws4_request" % (day, region, service)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + secret).encode()
        for part in (day, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, signature) else "the signature does not match"

    # Planetary Computer's SAS tokens: GET /api/sas/v1/token/{collection} gives
    # {"token": "st=...&se=...&sp=rl&sig=...", "msft:expiry": "..."}; a blob under the
    # guarded prefix needs the query string of a token not yet expired.
    def token(self, collection):
        srv = self.server
        with srv.log_lock:
            srv.tokens_issued += 1
            n = srv.tokens_issued
        expiry = time.time() + srv.sas_lifetime
        sig = "SECRET%dx%s" % (n, collection)
        with srv.log_lock:
            srv.valid_sigs[sig] = expiry
        token = "st=2026-12-07T00%%3A00%%3A00Z&se=%s&sp=rl&sv=2021-06-08&sr=c&skoid=abc&sig=%s" % (
            urllib.parse.quote(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))), sig)
        body = json.dumps({"msft:expiry": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry)), "token": token}).encode()
        self.simple(200, body, {"Content-Type": "application/json"})

    def signed(self, query):
        sig = query.get("sig", [""])[0]
        srv = self.server
        with srv.log_lock:
            expiry = srv.valid_sigs.get(sig)
            if expiry is not None and srv.sas_revoke_after > 0:
                # The first token is revoked after so many uses, as a rotated key revokes it.
                srv.signed_uses += 1
                if srv.signed_uses == srv.sas_revoke_after:
                    srv.valid_sigs.clear()
                    return False
        return expiry is not None and expiry > time.time()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a reader opening 16 connections
    # at once, and each dropped one waits a second to try again.
    request_queue_size = 128


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--port", type=int, default=0, help="0: one the system chooses")
    p.add_argument("--port-file", default="", help="where to write the port once it accepts connections")
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--rate-mbps", type=float, default=0, help="MB/s per connection; 0: no cap")
    p.add_argument("--p503", type=float, default=0)
    p.add_argument("--once", default="", help="one-off faults: 429, reset, truncate (comma-separated)")
    p.add_argument("--not-found", default="", help="paths matching this regular expression answer 404")
    p.add_argument("--forbidden", default="", help="paths matching this regular expression answer 403")
    p.add_argument("--sas-prefix", default="", help="blobs under this path need a SAS token's query string")
    p.add_argument("--sas-lifetime-s", type=float, default=3600)
    p.add_argument("--sas-revoke-after", type=int, default=0, help="signed requests after which the tokens given are revoked")
    p.add_argument("--new-etag-after", default="", help="KEY=N: the object at path KEY gets a new ETag after N ranged reads of it")
    p.add_argument("--s3-key", default="", help="KEY_ID:SECRET: every request must be signed with it (SigV4)")
    p.add_argument("--requester-pays", action="store_true", help="every request must say x-amz-request-payer: requester")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log", default="")
    args = p.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.root = os.path.realpath(args.root)
    srv.latency = args.latency_ms / 1000.0
    srv.rate = args.rate_mbps * 1e6
    srv.faults = Faults(args)
    srv.sas_prefix = args.sas_prefix
    srv.sas_lifetime = args.sas_lifetime_s
    srv.sas_revoke_after = args.sas_revoke_after
    key, _, n = args.new_etag_after.rpartition("=")
    srv.new_etag_key, srv.new_etag_after = key, int(n or 0)
    srv.s3_key = tuple(args.s3_key.split(":", 1)) if args.s3_key else None
    srv.requester_pays = args.requester_pays
    srv.ranged_reads = {}
    srv.signed_uses = 0
    srv.tokens_issued = 0
    srv.valid_sigs = {}
    srv.log_lock = threading.Lock()
    srv.log = open(args.log, "a") if args.log else None
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
