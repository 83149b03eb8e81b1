// Validates the custom resources of rendered manifests (deploy/rendered/*.yaml) against the
// published schemas of the kubernetes-models packages: each document is checked by its model's
// JSON Schema validator (types, enums, patterns, required fields: generated from Envoy Gateway's
// Go API types, Istio's and Gateway API's CRDs), then, since those schemas let unknown fields
// through as a cluster would prune them, every document is type-checked by tsc against the
// package's TypeScript interface, whose excess-property check refuses a field the API does not
// have (a misspelt `failStrategy` would be dropped silently by a cluster).
// Core kinds (apiVersion v1, apps/v1, autoscaling/v2, policy/v1) are left to kubernetes-validate
// (tests/deploy_manifests.rs runs both). Prints `validated <kind>/<name>` per custom resource and
// `skipped <kind>/<name>` per core one; exits 1 on the first file with errors, saying which.
//
// usage: node validate.mjs FILE.yaml...

import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const CORE = new Set(["v1", "apps/v1", "autoscaling/v2", "policy/v1"]);
// apiVersion/kind → the module of its model (the class and `I<Kind>` interface it exports).
const MODELS = {
  "gateway.networking.k8s.io/v1/HTTPRoute": "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute",
  "gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy": "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy",
  "gateway.envoyproxy.io/v1alpha1/EnvoyPatchPolicy": "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1/EnvoyPatchPolicy",
  "gateway.envoyproxy.io/v1alpha1/EnvoyProxy": "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1/EnvoyProxy",
  "networking.istio.io/v1/ServiceEntry": "@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry",
  "networking.istio.io/v1/DestinationRule": "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule",
  "networking.istio.io/v1/VirtualService": "@kubernetes-models/istio/networking.istio.io/v1/VirtualService",
  "extensions.istio.io/v1alpha1/WasmPlugin": "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin",
};

const failures = [];
const typed = [];
for (const file of process.argv.slice(2)) {
  for (const parsed of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (parsed.errors.length) {
      failures.push(`${file}: ${parsed.errors.map(String).join("; ")}`);
      continue;
    }
    const doc = parsed.toJS();
    if (doc === null) continue;
    const name = `${doc.kind}/${doc.metadata?.name}`;
    if (CORE.has(doc.apiVersion)) {
      console.log(`skipped ${name}`);
      continue;
    }
    const module = MODELS[`${doc.apiVersion}/${doc.kind}`];
    if (!module) {
      failures.push(`${file}: ${name}: no schema for ${doc.apiVersion}`);
      continue;
    }
    const Model = (await import(module))[doc.kind];
    try {
      new Model(doc).validate();
    } catch (err) {
      failures.push(`${file}: ${name}: ${err.message}`);
      continue;
    }
    typed.push({ module, kind: doc.kind, doc, where: `${file}: ${name}` });
    console.log(`validated ${name}`);
  }
}

if (typed.length && !failures.length) {
  const lines = typed.map(({ module, kind }, i) => `import type { I${kind} as T${i} } from "${module}";`);
  typed.forEach(({ doc, where }, i) =>
    lines.push(`// ${where}`, `export const d${i}: T${i} = ${JSON.stringify(doc, null, 2)};`));
  // Beside node_modules, so the packages resolve; removed when tsc is done.
  const source = join(here, ".check.ts");
  writeFileSync(source, lines.join("\n") + "\n");
  try {
    execFileSync(process.execPath, [join(here, "node_modules/typescript/bin/tsc"), "--noEmit", "--strict",
      "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--skipLibCheck", source],
      { cwd: here, encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    failures.push(`tsc (unknown or mistyped fields):\n${err.stdout}${err.stderr}`);
  } finally {
    rmSync(source, { force: true });
  }
}

if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
