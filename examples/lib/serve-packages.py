#!/usr/bin/env python3
"""A loopback package mirror for the lock-file examples: serves the fixture packages of
tests/fixtures/packages/ the way each ecosystem's registry (or an internal mirror of it) does.

usage: serve-packages.py [--port N] [--port-file FILE] [--log FILE] [--fixtures DIR]

It binds 127.0.0.1 only (port 0, the default, picks a free one; --port-file gets the port once it
listens) and serves, under one prefix per ecosystem:

  /pypi/simple/<project>/        the PEP 503 (HTML) or PEP 691 (JSON, by Accept) page of a project,
                                 from the wheels and sdists in pypi/; each file's URL is under
                                 https://python-index.internal.example/files/ (the name the locks
                                 and specs use; a client maps it here with a mirror)
  /pypi/files/<file>             the file
  /crates/index/config.json      a registry index's config, whose `dl` is
                                 https://crates.internal.example/api/v1/crates
  /crates/api/v1/crates/<crate>/<version>/download
                                 crates/<crate>-<version>.crate
  /npm/<name>/-/<file>           the tarball npm/<file> (<name> from its package.json, so
                                 /npm/@scope/name/-/name-1.0.0.tgz for a scoped package)
  /go/<escaped module>/@v/<file> the module proxy files in go/ (.mod, .zip)

Anything else is a 404. Every request is logged to --log (one "METHOD PATH" a line), so a test can
tell that a build asked for nothing. The fixtures are read once, at start.
"""

import argparse
import hashlib
import html
import io
import json
import os
import re
import sys
import tarfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PYPI_ORIGIN = "https://python-index.internal.example/"
CRATES_DL = "https://crates.internal.example/api/v1/crates"
PEP691 = "application/vnd.pypi.simple.v1+json"


def normalize(name):
    """PEP 503's normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_project(file_name):
    """The project a wheel or sdist file name is of (`six-1.16.0-py2.py3-none-any.whl` -> six)."""
    if file_name.endswith(".whl"):
        return normalize(file_name.split("-")[0])
    for ending in (".tar.gz", ".zip"):
        if file_name.endswith(ending):
            return normalize(file_name[: -len(ending)].rsplit("-", 1)[0])
    return None


def read_fixtures(root):
    files = {}  # URL path -> (bytes, content type)
    pypi = {}  # project -> [(file name, sha256)]
    pypi_dir = os.path.join(root, "pypi")
    for name in sorted(os.listdir(pypi_dir)) if os.path.isdir(pypi_dir) else []:
        project = pypi_project(name)
        if project is None:
            continue
        body = open(os.path.join(pypi_dir, name), "rb").read()
        files["/pypi/files/" + name] = (body, "application/octet-stream")
        pypi.setdefault(project, []).append((name, hashlib.sha256(body).hexdigest()))

    crates_dir = os.path.join(root, "crates")
    for name in sorted(os.listdir(crates_dir)) if os.path.isdir(crates_dir) else []:
        match = re.fullmatch(r"(.+)-(\d+\.\d+\.\d+[^/]*)\.crate", name)
        if match:
            body = open(os.path.join(crates_dir, name), "rb").read()
            path = "/crates/api/v1/crates/%s/%s/download" % match.groups()
            files[path] = (body, "application/gzip")
    config = {"dl": CRATES_DL, "api": "https://crates.internal.example"}
    files["/crates/index/config.json"] = (json.dumps(config).encode(), "application/json")

    npm_dir = os.path.join(root, "npm")
    for name in sorted(os.listdir(npm_dir)) if os.path.isdir(npm_dir) else []:
        if name.endswith(".tgz"):
            body = open(os.path.join(npm_dir, name), "rb").read()
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                package = json.load(tar.extractfile("package/package.json"))["name"]
            files["/npm/%s/-/%s" % (package, name)] = (body, "application/octet-stream")

    go_dir = os.path.join(root, "go")
    for directory, _, names in os.walk(go_dir):
        if os.path.basename(directory) != "@v":
            continue
        for name in names:
            path = os.path.join(directory, name)
            content_type = "application/zip" if name.endswith(".zip") else "text/plain; charset=utf-8"
            url_path = "/go/" + os.path.relpath(path, go_dir).replace(os.sep, "/")
            files[url_path] = (open(path, "rb").read(), content_type)
    return files, pypi


def simple_page(project, entries, as_json):
    """The simple index page of `project`: PEP 691 JSON or PEP 503 HTML."""
    urls = [(name, PYPI_ORIGIN + "files/" + name, sha256) for name, sha256 in entries]
    if as_json:
        document = {
            "meta": {"api-version": "1.0"},
            "name": project,
            "files": [{"filename": name, "url": url, "hashes": {"sha256": sha256}} for name, url, sha256 in urls],
        }
        return json.dumps(document).encode(), PEP691
    links = "".join(
        '<a href="%s#sha256=%s">%s</a><br/>\n' % (html.escape(url), sha256, html.escape(name))
        for name, url, sha256 in urls
    )
    page = "<!DOCTYPE html>\n<html><body><h1>Links for %s</h1>\n%s</body></html>\n" % (project, links)
    return page.encode(), "text/html"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--log")
    parser.add_argument("--fixtures", default=os.path.join(HERE, "..", "..", "tests", "fixtures", "packages"))
    args = parser.parse_args()
    files, pypi = read_fixtures(args.fixtures)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            if args.log:
                with open(args.log, "a") as log:
                    log.write("%s %s\n" % (self.command, self.path))
            path = self.path.split("?")[0].split("#")[0]
            parts = [part for part in path.split("/") if part]
            if len(parts) == 3 and parts[:2] == ["pypi", "simple"]:
                project = normalize(parts[2])
                if project not in pypi:
                    return self.reply(404, b"no such project\n", "text/plain")
                accept = self.headers.get("Accept", "")
                return self.reply(200, *simple_page(project, pypi[project], PEP691 in accept))
            if path in files:
                return self.reply(200, *files[path])
            return self.reply(404, b"not found\n", "text/plain")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.port_file:
        with open(args.port_file + ".part", "w") as port_file:
            port_file.write("%d\n" % server.server_address[1])
        os.replace(args.port_file + ".part", args.port_file)
    print("serving on http://127.0.0.1:%d/" % server.server_address[1], file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
