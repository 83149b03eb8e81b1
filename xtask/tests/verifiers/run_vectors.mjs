// Runs docs/verify/verify_gateway.mjs on every check of a signature-vectors file and prints each
// verdict as JSON (one array), for xtask/tests/signature_vectors.rs to compare with the contract's.
import { readFileSync } from "node:fs";
import { verifyGateway, GatewayError } from "../../../docs/verify/verify_gateway.mjs";

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const verdicts = doc.checks.map((check) => {
  try {
    const { request_id, ...identity } = verifyGateway({
      secret: check.secret,
      headers: check.headers,
      method: check.method,
      path: check.path,
      protocolVersion: check.protocol_version,
      body: Buffer.from(check.body, "utf8"),
      now: check.now,
    });
    return { name: check.name, verdict: { ok: true, identity, request_id } };
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    return { name: check.name, verdict: { ok: false, error: e.error, field: e.field } };
  }
});
process.stdout.write(JSON.stringify(verdicts));
