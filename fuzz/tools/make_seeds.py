#!/usr/bin/env python3
"""Writes hand-made seed inputs for each fuzz target into fuzz/corpus/<target>/ (seed-*).

The committed corpus is these seeds plus what libFuzzer found, minimized; rerun this to start over.
"""
import base64, hashlib, hmac, json, os, re

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")

def write(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

def call(i, tool, extra=""):
    return '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","arguments":{}%s}}' % (i, tool, extra)

bodies = {
    "call": call(1, "list_projects"),
    "call-create": call(2, "create_project"),
    "call-delete": call('"x"', "delete_project"),
    "escaped": '{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"de\\u006cete_project"}}',
    "dup": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","name":"delete_project"}}',
    "batch": "[%s,%s,{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]" % (call(1, "list_projects"), call(2, "get_project")),
    "list": '{"jsonrpc":"2.0","id":"L","method":"tools/list","params":{"cursor":"c"}}',
    "init": '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}',
    "resource": '{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"file:///a"}}',
    "complete": '{"jsonrpc":"2.0","id":8,"method":"completion/complete","params":{}}',
    "level": '{"jsonrpc":"2.0","id":9,"method":"logging/setLevel","params":{"level":"info"}}',
    "response": '{"jsonrpc":"2.0","id":3,"result":{"content":[1.5e300,-0,true,null]}}',
    "error": '{"jsonrpc":"2.0","id":4,"error":{"code":-32000,"message":"x"}}',
    "nameless": '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":7}}',
}
for k, b in bodies.items():
    write("strict_json", k, b)
write("strict_json", "surrogates", '{"a":"\\ud83d\\ude00","b":"\\u0000"}')
write("strict_json", "bom", b"\xef\xbb\xbf{}")

claims = {
    "rw": {"sub": "alice", "tenant_id": "acme", "scope": "mcp:read mcp:write", "rate_limit_tier": "pro"},
    "admin-limited": {"sub": "bob", "tenant_id": "acme", "scope": "mcp:read mcp:write mcp:admin",
                      "allowed_tools": ["list_projects", "delete_project"], "data_scope": "team:x"},
    "none": {"sub": "carol", "tenant_id": "globex", "allowed_tools": []},
    "read": {"sub": "dave", "tenant_id": "initech", "scope": "mcp:read"},
}
for ck, c in claims.items():
    for bk in ["call", "call-create", "call-delete", "batch", "list", "resource", "complete", "level", "escaped"]:
        for flags, mm, mn in [(0x01, "", ""), (0x32, "tools/call", "list_projects"), (0x03, "", "")]:
            data = bytes([flags]) + json.dumps(c).encode() + b"\0" + mm.encode() + b"\0" + mn.encode() + b"\0" + bodies[bk].encode()
            write("policy", "%s-%s-%02x" % (ck, bk, flags), data)

lib = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "lib.rs")).read()
jwks = re.search(r'const FIXED_JWKS: &str = r#"(.*?)"#;', lib, re.S).group(1)
write("jwks", "fixed-all", b"\x0f" + jwks.encode())
write("jwks", "fixed-default", b"\x00" + jwks.encode())
write("jwks", "oct-only", b"\x08" + b'{"keys":[{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","alg":"HS256","use":"sig"}]}')
write("jwks", "enc", b"\x07" + b'{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}')
write("jwks", "small-rsa", b"\x01" + b'{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"k"}]}')

secret = b"fuzz-hmac-key-fuzz-hmac-key-fuzz-hmac"
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
NOW = 1_800_000_000
good = {"iss": "https://as.example", "aud": "https://mcp.example/mcp", "sub": "alice", "exp": NOW + 600,
        "nbf": NOW - 10, "iat": NOW - 10, "tenant_id": "acme", "scope": "mcp:read", "allowed_tools": ["a"]}
variants = {
    "good": good,
    "aud-list": dict(good, aud=["x", "https://mcp.example/mcp"]),
    "expired": dict(good, exp=NOW - 100),
    "no-exp": {k: v for k, v in good.items() if k != "exp"},
    "future": dict(good, nbf=NOW + 100),
    "bad-iss": dict(good, iss="https://evil"),
    "bad-tenant": dict(good, tenant_id=42),
    "float-exp": dict(good, exp=NOW + 600.5),
}
headers = {
    "hs": {"alg": "HS256", "typ": "JWT", "kid": "hs-1"},
    "hs-nokid": {"alg": "HS256"},
    "rs": {"alg": "RS256", "kid": "rsa-1"},
    "none": {"alg": "none"},
    "unknown-kid": {"alg": "HS256", "kid": "zzz"},
}
for hk, h in headers.items():
    for vk, v in variants.items():
        if hk != "hs" and vk != "good":
            continue
        write("jwt", "%s-%s" % (hk, vk), b"\x03" + json.dumps(h).encode() + b"\0" + json.dumps(v).encode())
write("jwt", "hs-good-nohmac", b"\x01" + json.dumps(headers["hs"]).encode() + b"\0" + json.dumps(good).encode())
inp = b64(json.dumps(headers["hs"]).encode()) + "." + b64(json.dumps(good).encode())
tok = inp + "." + b64(hmac.new(secret, inp.encode(), hashlib.sha256).digest())
write("jwt", "raw-valid", b"\x02" + tok.encode())
write("jwt", "raw-bearer", b"\x02Bearer " + tok.encode())
write("jwt", "raw-garbage", b"\x00eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLTEifQ.eyJ9.AAAA")

tools = [{"name": n, "description": "d"} for n in ["list_projects", "get_project", "create_project", "delete_project", "x", "y"]]
resp = lambda i: {"jsonrpc": "2.0", "id": i, "result": {"tools": tools, "ttlMs": 5, "cacheScope": "public"}}
write("tools_list", "json", b"\x00\x00[1]\0" + json.dumps(resp(1)).encode())
write("tools_list", "json-batch", b"\x03\x07[1,\"t\"]\0" + json.dumps([resp(1), resp("t"), resp(2)]).encode())
sse = "event: message\r\nid: 1\r\ndata: %s\r\n\r\n: keep-alive\n\ndata:\n\n" % json.dumps(resp(5))
write("tools_list", "sse", b"\x01\x01[5]\0" + sse.encode())
split = "data: {\"jsonrpc\":\"2.0\",\"id\":5,\ndata: \"result\":{\"tools\":%s}}\n\n" % json.dumps(tools)
write("tools_list", "sse-split", b"\x02\x02[5]\0" + split.encode())
cr = "data: {\"jsonrpc\":\"2.0\",\"id\":5,\rdata: \"result\":{\"tools\":%s}}\r\r" % json.dumps(tools)
write("tools_list", "sse-cr", b"\x01\x03[5]\0" + cr.encode())
write("tools_list", "sse-bom", b"\x01\x04[5]\0\xef\xbb\xbfdata: " + json.dumps(resp(5)).encode() + b"\n\n")

for i, (tenant, user, scopes, ds, method, path, rid, t, body) in enumerate([
    ("acme", "alice", "mcp:read\x01mcp:write", "team:engineering", "POST", "/mcp", "r-1", "1800000000", b'{"jsonrpc":"2.0"}'),
    ("globex", "bob", "", "", "GET", "/mcp?x=1", "r-2", "5", b""),
    ("t", "u", "a\x01b\x01c", "d", "DELETE", "/", "id", "18446744073709551615", b"\x00\xff"),
]):
    for target in range(9):
        head = bytes([i, target, 3, 0, ord("Z")])
        fields = [tenant, user, scopes, ds, method, path, rid, t]
        write("signature", "%d-%d" % (i, target), head + b"\0".join(f.encode() for f in fields) + b"\0" + body)
