// Runs a wasm32-wasip1 program under Node's WASI, that is under V8, the engine Envoy runs the
// filter in. The filter's code links proxy-wasm's host imports (module "env", "proxy_*"); the
// programs run here never call them, so each is a stub that fails loudly if it ever is.
// Usage: node run.mjs <program.wasm> [args...]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [path, ...args] = argv.slice(2);
const wasi = new WASI({ version: "preview1", args: [path, ...args], env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(path));
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "wasi_snapshot_preview1") continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => {
    throw new Error(`host function ${imp.module}.${imp.name} called outside Envoy`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// The filter's library exports `_initialize` (a proxy-wasm reactor) beside the program's `_start`;
// WASI refuses a module with both, so it is given the program's exports only.
const { _initialize, ...program } = instance.exports;
exit(wasi.start({ exports: program }));
