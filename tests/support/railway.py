#!/usr/bin/env python3
"""Railway's GraphQL API, played locally for ship's tests (Railway itself cannot be reached).

Every document it receives is validated against Railway's published schema with graphql-core;
an invalid one is answered 400 and logged as invalid, so a renamed field fails the tests.

Usage:
  railway.py validate SCHEMA_JSON FILE...     validate documents; print errors; exit 1 if any
  railway.py serve SCHEMA_JSON LOG SCENARIO   serve on 127.0.0.1 (a free port, printed first)

SCENARIO (JSON): {
  "token": "...", "project": false,        # the token, and whether it comes as Project-Access-Token
  "statuses": ["QUEUED", "BUILDING", ...],  # what successive deployment(id) queries answer
  "errors": {"ServiceInstanceUpdate": "message"},  # operations answered with a GraphQL error
  "transient": {"Deployment": 2},          # operations answered 503 this many times first
  "hang": ["Deployment"],                  # operations never answered
  "previous": "dep-old"                    # the last successful deployment
}
LOG gets one JSON line per request: operation, variables, auth ("bearer", "project", None), valid.
"""
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import graphql
from graphql import build_client_schema, parse, validate
from graphql.type import validate_schema


def load_schema(path):
    data = json.load(open(path))
    schema = build_client_schema(data.get("data", data))
    # Railway's published schema deprecates Team.id while Node.id, which Team implements, is not
    # deprecated: graphql-core refuses such a schema before validating any document. That one
    # rule is relaxed, and only after checking that it is the only objection.
    problems = [str(e) for e in validate_schema(schema)]
    unexpected = [p for p in problems if "Team.id" not in p or "deprecated" not in p]
    if unexpected:
        sys.exit("the schema has other problems: " + "; ".join(unexpected))
    schema._validation_errors = []
    return schema


def check(schema, text):
    try:
        doc = parse(text)
    except graphql.GraphQLError as e:
        return [str(e)]
    return [str(e) for e in validate(schema, doc)]


def main_validate(schema_path, files):
    schema = load_schema(schema_path)
    bad = 0
    for f in files:
        for e in check(schema, open(f).read()):
            print(f"{f}: {e}")
            bad += 1
    if bad == 0:
        print(f"{len(files)} documents valid")
    sys.exit(1 if bad else 0)


def main_serve(schema_path, log_path, scenario):
    schema = load_schema(schema_path)
    lock = threading.Lock()
    state = {"polls": 0, "transient": dict(scenario.get("transient", {}))}
    log = open(log_path, "a")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            req = json.loads(self.rfile.read(length) or b"{}")
            op = req.get("operationName")
            bearer = self.headers.get("Authorization", "")
            project = self.headers.get("Project-Access-Token")
            auth = "bearer" if bearer.startswith("Bearer ") else ("project" if project else None)
            given = bearer[len("Bearer "):] if auth == "bearer" else project
            problems = check(schema, req.get("query", ""))
            with lock:
                log.write(json.dumps({"operation": op, "variables": req.get("variables"), "auth": auth,
                                      "valid": not problems, "problems": problems}) + "\n")
                log.flush()
            want = "project" if scenario.get("project") else "bearer"
            if auth != want or given != scenario.get("token"):
                return self.answer(401, {"errors": [{"message": "Not Authorized"}]})
            if problems:
                return self.answer(400, {"errors": [{"message": p} for p in problems]})
            if op in scenario.get("hang", []):
                time.sleep(3600)
            with lock:
                left = state["transient"].get(op, 0)
                if left:
                    state["transient"][op] = left - 1
            if left:
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if op in scenario.get("errors", {}):
                return self.answer(200, {"data": None, "errors": [{"message": scenario["errors"][op]}]})
            if op == "ServiceInstanceUpdate":
                return self.answer(200, {"data": {"serviceInstanceUpdate": True}})
            if op == "ServiceInstanceDeploy":
                return self.answer(200, {"data": {"serviceInstanceDeployV2": "dep-new"}})
            if op == "Deployment":
                statuses = scenario.get("statuses", ["SUCCESS"])
                with lock:
                    i = min(state["polls"], len(statuses) - 1)
                    state["polls"] += 1
                return self.answer(200, {"data": {"deployment": {
                    "id": req["variables"]["id"], "status": statuses[i], "url": None,
                    "staticUrl": "hello.up.railway.app", "createdAt": "2026-11-28T00:00:00Z"}}})
            if op == "SuccessfulDeployments":
                prev = scenario.get("previous")
                edges = [{"node": {"id": prev, "status": "SUCCESS", "createdAt": "2026-11-27T00:00:00Z"}}] if prev else []
                return self.answer(200, {"data": {"deployments": {"edges": edges}}})
            if op == "DeploymentRollback":
                return self.answer(200, {"data": {"deploymentRollback": True}})
            return self.answer(400, {"errors": [{"message": f"the stand-in does not know {op}"}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "validate":
        main_validate(sys.argv[2], sys.argv[3:])
    else:
        main_serve(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
