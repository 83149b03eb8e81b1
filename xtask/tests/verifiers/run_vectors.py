"""Runs docs/verify/verify_gateway.py on every check of a signature-vectors file and prints each
verdict as JSON (one array), for xtask/tests/signature_vectors.rs to compare with the contract's."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "docs" / "verify"))
from verify_gateway import GatewayError, verify_gateway  # noqa: E402

doc = json.loads(pathlib.Path(sys.argv[1]).read_text(encoding="utf-8"))
verdicts = []
for check in doc["checks"]:
    try:
        identity = verify_gateway(
            check["secret"],
            check["headers"],
            check["method"],
            check["path"],
            check["protocol_version"],
            check["body"].encode("utf-8"),
            now=check["now"],
        )
        request_id = identity.pop("request_id")
        verdict = {"ok": True, "identity": identity, "request_id": request_id}
    except GatewayError as e:
        verdict = {"ok": False, "error": e.error, "field": e.field}
    verdicts.append({"name": check["name"], "verdict": verdict})
sys.stdout.write(json.dumps(verdicts))
