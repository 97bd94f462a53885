// The md5 of a File, read as a stream so that a 2 GB file never sits in memory whole: the
// browser reads ahead while this thread hashes (about twice the speed of slice-by-slice reads,
// measured in bench/web.py's notes). hash-wasm's incremental md5 runs in WebAssembly (the CSP
// allows 'wasm-unsafe-eval' for it).
importScripts("./vendor/hash-wasm-md5.js");

// Progress is reported every this many bytes, not for every chunk the stream hands over.
const REPORT = 8 * 1024 * 1024;

self.onmessage = async (event) => {
  const { id, file } = event.data;
  try {
    const hasher = await self.hashwasm.createMD5();
    hasher.init();
    const reader = file.stream().getReader();
    let done = 0;
    let reported = 0;
    for (;;) {
      const { done: finished, value } = await reader.read();
      if (finished) break;
      hasher.update(value);
      done += value.byteLength;
      if (done - reported >= REPORT) {
        reported = done;
        self.postMessage({ id, done });
      }
    }
    self.postMessage({ id, md5: hasher.digest("hex") });
  } catch (err) {
    self.postMessage({ id, error: String(err.message || err) });
  }
};
