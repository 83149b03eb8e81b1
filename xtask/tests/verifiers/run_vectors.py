"""Runs docs/verify/verify_identity.py on every check of an assertion-vectors file and prints each
verdict as JSON (one array), for xtask/tests/assertion_vectors.rs to compare with the expected ones.

PyJWT reads the clock itself (`datetime.now` in jwt.api_jwt) and takes no "now": each check runs
with that clock stopped at the check's `now`. A PyJWT that read the time otherwise would see the
real date, long after the vectors expired, and every accepted check would fail."""

import datetime
import json
import pathlib
import sys

import jwt.api_jwt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "docs" / "verify"))
from verify_identity import IdentityError, verify_identity  # noqa: E402


def stopped_clock(now):
    class Stopped(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(now, tz)

    return Stopped


doc = json.loads(pathlib.Path(sys.argv[1]).read_text(encoding="utf-8"))
verdicts = []
for check in doc["checks"]:
    jwt.api_jwt.datetime = stopped_clock(check["now"])
    try:
        identity = verify_identity(
            check["secret"],
            check["headers"],
            check["method"],
            check["path"],
            check["body"].encode("utf-8"),
            issuer=check["issuer"],
            audience=check["audience"],
        )
        request_id = identity.pop("request_id")
        verdicts.append({"name": check["name"], "verdict": {"ok": True, "identity": identity, "request_id": request_id}})
    except IdentityError as e:
        verdict = {"ok": False, "error": e.error, "claim": e.claim}
        verdicts.append({"name": check["name"], "verdict": verdict, "why": str(e)})
sys.stdout.write(json.dumps(verdicts))
