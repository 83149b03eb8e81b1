// Runs docs/verify/verify_identity.mjs on every check of an assertion-vectors file and prints each
// verdict as JSON (one array), for xtask/tests/assertion_vectors.rs to compare with the expected ones.
import { readFileSync } from "node:fs";
import { verifyIdentity, IdentityError } from "../../../docs/verify/verify_identity.mjs";

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const verdicts = [];
for (const check of doc.checks) {
  try {
    const { request_id, ...identity } = await verifyIdentity({
      secret: check.secret,
      headers: check.headers,
      method: check.method,
      path: check.path,
      body: Buffer.from(check.body, "utf8"),
      issuer: check.issuer,
      audience: check.audience,
      now: check.now,
    });
    verdicts.push({ name: check.name, verdict: { ok: true, identity, request_id } });
  } catch (e) {
    if (!(e instanceof IdentityError)) throw e;
    verdicts.push({ name: check.name, verdict: { ok: false, error: e.error, claim: e.claim }, why: e.message });
  }
}
process.stdout.write(JSON.stringify(verdicts));
