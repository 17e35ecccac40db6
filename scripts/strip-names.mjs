// Drops the `name` custom section (function and data names) from a release .wasm, and keeps the
// unstripped file beside the build for reading stack traces.
//
//   node scripts/strip-names.mjs build/index_bg.wasm target/index_bg.names.wasm
//
// worker-build 0.8.7 always runs wasm-opt with --debuginfo, which keeps the names: ~45 KB of the
// gzipped .wasm, about a tenth. Nothing at runtime reads them; a panic is still logged with its
// message and source location ("Rust panic: panicked at src/...:line:col"), and only the JS stack
// shows `wasm-function[N]` instead of a Rust path. N is the function index, unchanged here: look it
// up in the kept copy (e.g. `twiggy` or `wasm-tools print` on it).
//
// Only whole custom sections named "name" are removed; every other byte is copied as is, so the
// code that runs is exactly the code wasm-opt produced. (A wasm-opt round trip with --strip-debug
// would also work but rewrites the module and came out 2 KB larger.)
import { readFileSync, writeFileSync, renameSync } from "node:fs";

const [wasmPath, namesPath] = process.argv.slice(2);
if (!wasmPath || !namesPath) {
  console.error("usage: node scripts/strip-names.mjs <file.wasm> <copy-with-names.wasm>");
  process.exit(2);
}

const bytes = readFileSync(wasmPath);
const header = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
if (bytes.length < 8 || !bytes.subarray(0, 8).equals(header)) {
  console.error(`${wasmPath}: not a wasm module (version 1)`);
  process.exit(1);
}

/** Reads an unsigned LEB128 at `offset`: [value, offset after it]. */
function leb(offset) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[offset++];
    if (byte === undefined) throw new Error(`${wasmPath}: truncated LEB128`);
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, offset];
  }
}

const kept = [bytes.subarray(0, 8)];
let removed = 0;
let offset = 8;
while (offset < bytes.length) {
  const start = offset;
  const id = bytes[offset];
  const [size, body] = leb(offset + 1);
  const end = body + size;
  if (end > bytes.length) throw new Error(`${wasmPath}: section at ${start} runs past the end`);
  let isName = false;
  if (id === 0) {
    const [nameLength, nameStart] = leb(body);
    isName = bytes.subarray(nameStart, nameStart + nameLength).toString("latin1") === "name";
  }
  if (isName) removed += end - start;
  else kept.push(bytes.subarray(start, end));
  offset = end;
}

renameSync(wasmPath, namesPath);
writeFileSync(wasmPath, Buffer.concat(kept));
console.log(
  `strip-names: removed ${removed} bytes of names from ${wasmPath}; the named copy is ${namesPath}`,
);
