// Reads arrays of a Zarr store with zarrita (JavaScript) and prints what it
// got as one JSON document, for tests/interop/nonfinite.py to compare with
// the netCDF source.
//
// usage: node zarrita_read.mjs STORE FORMAT PATH...
//   FORMAT: 2 or 3 (each array is opened as that format only, so that a
//   refused document shows its own error rather than zarrita's fallback
//   to the other format).
//
// Prints {"direct": {PATH: RESULT}, "consolidated": {"error": ...} or
// {"nodes": N, "arrays": {PATH: RESULT}}}, where RESULT is {"shape",
// "dtype", "values" (flattened in C order; NaN and the infinities as the
// strings "NaN", "Infinity", "-Infinity"), "attrs"} or {"error": TEXT}.
// "direct" opens each array from its own documents; "consolidated" opens
// them through the consolidated metadata (v2 .zmetadata, v3 root zarr.json).
import * as zarr from "zarrita";
import FileSystemStore from "@zarrita/storage/fs";

const [storePath, format, ...paths] = process.argv.slice(2);
if (!storePath || !["2", "3"].includes(format)) {
  console.error("usage: node zarrita_read.mjs STORE 2|3 PATH...");
  process.exit(2);
}
const open = format === "3" ? zarr.open.v3 : zarr.open.v2;

function plain(x) {
  if (typeof x === "bigint") return x.toString();
  if (typeof x !== "number" || Number.isFinite(x)) return x;
  if (Number.isNaN(x)) return "NaN";
  return x > 0 ? "Infinity" : "-Infinity";
}

async function read(store, path) {
  try {
    const arr = await open(zarr.root(store).resolve(path), { kind: "array" });
    const { data, shape } = await zarr.get(arr);
    return {
      shape,
      dtype: arr.dtype,
      values: Array.from(data, plain),
      attrs: arr.attrs,
    };
  } catch (e) {
    const cause = e.cause ? `: ${e.cause.message ?? e.cause}` : "";
    return { error: `${e.name}: ${e.message}${cause}` };
  }
}

const fs = new FileSystemStore(storePath);
const out = { direct: {}, consolidated: {} };
for (const p of paths) out.direct[p] = await read(fs, p);
try {
  const c = await zarr.withConsolidatedMetadata(fs, { format: `v${format}` });
  out.consolidated = { nodes: c.contents().length, arrays: {} };
  for (const p of paths) out.consolidated.arrays[p] = await read(c, p);
} catch (e) {
  const cause = e.cause ? `: ${e.cause.message ?? e.cause}` : "";
  out.consolidated = { error: `${e.name}: ${e.message}${cause}` };
}
console.log(JSON.stringify(out));
