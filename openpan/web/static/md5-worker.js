// The md5 of a File, read in 8 MiB pieces so that a 2 GB file never sits in memory whole.
// hash-wasm's incremental md5 runs in WebAssembly (the CSP allows 'wasm-unsafe-eval' for it).
importScripts("./vendor/hash-wasm-md5.js");

const PIECE = 8 * 1024 * 1024;

self.onmessage = async (event) => {
  const { id, file } = event.data;
  try {
    const hasher = await self.hashwasm.createMD5();
    hasher.init();
    for (let offset = 0; offset < file.size; offset += PIECE) {
      const piece = new Uint8Array(await file.slice(offset, offset + PIECE).arrayBuffer());
      hasher.update(piece);
      self.postMessage({ id, done: Math.min(file.size, offset + PIECE) });
    }
    self.postMessage({ id, md5: hasher.digest("hex") });
  } catch (err) {
    self.postMessage({ id, error: String(err.message || err) });
  }
};
