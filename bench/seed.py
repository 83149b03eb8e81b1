#!/usr/bin/env python3
"""Seeds one side of scripts/bench.sh's end-to-end comparison through its own MCP tools.

Both sides (mcp-edge + the real backend, and the Node seed server) start empty before every
measured run; this creates the same PROJECTS projects (name and description alike) for the bench
token's tenant with `create_project` calls, then asks `list_projects` once and prints its answer's
size in bytes (about 7.9 KB for 20 projects: the answer the read rows measure), and writes
OUT_BODIES: one `create_task` body per seeded project, which the write rows' wrk script takes in
turn (and the list answer as OUT_BODIES.list-answer, to compare the sides). Fails when a call is
refused or a tool answers an error. Standard library only.

  seed.py URL TOKEN OUT_BODIES
"""

import json
import sys
import urllib.request

PROJECTS = 20
# With this description the 20 projects list in about 7.9 KB (issue 20's measurement).
DESCRIPTION = "Plans for {name}"
LIST_BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "list_projects", "arguments": {"limit": 20, "include_archived": False}}}


def call(url, token, body):
    """The JSON-RPC answer to body (a JSON response, or the first event of an SSE one) and its size."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "authorization": f"Bearer {token}", "content-type": "application/json",
        "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    text = raw.decode()
    if not text.lstrip().startswith("{"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    answer = json.loads(text)
    result = answer.get("result")
    if result is None or result.get("isError"):
        sys.exit(f"seed.py: {body['params']['name']} was answered {text[:400]}")
    return result, raw


def main():
    url, token, out_bodies = sys.argv[1:4]
    ids = []
    for i in range(1, PROJECTS + 1):
        name = f"Project {i:02d}"
        result, _ = call(url, token, {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
            "name": "create_project",
            "arguments": {"name": name, "description": DESCRIPTION.format(name=name)}}})
        ids.append(result["structuredContent"]["project"]["id"])
    result, answer = call(url, token, LIST_BODY)
    with open(out_bodies + ".list-answer", "wb") as f:
        f.write(answer)
    listed = [p["id"] for p in result["structuredContent"]["projects"]]
    if listed != ids:
        sys.exit(f"seed.py: list_projects lists {len(listed)} projects, not the {len(ids)} created")
    with open(out_bodies, "w") as f:
        for project_id in ids:
            f.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "create_task", "arguments": {
                    "project_id": project_id, "title": "Draft the release notes",
                    "priority": "high", "due_date": "2027-03-31"}}}, separators=(",", ":")) + "\n")
    print(len(answer))


if __name__ == "__main__":
    main()
