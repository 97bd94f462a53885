// Uploads through the same chunked flow every client uses: md5 (in a worker), create (an
// instant upload when the server already has the bytes), slices PUT in parallel to the URLs
// get_upload_url hands out, upload_complete, then upload_async_result until verified.
import { call, putSlice } from "./api.js";

const STEPS = { oss: "/upload/v1/oss/file", disk: "/upload/v1/file" };
const FILES_AT_ONCE = 2;
const SLICES_AT_ONCE = 4;

const items = [];
const listeners = new Set();
let nextId = 1;
let running = 0;
let worker = null;
const hashing = new Map();

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed() {
  for (const listener of listeners) listener(items.slice());
}

export function uploads() {
  return items.slice();
}

function md5Of(item) {
  worker ||= new Worker(new URL("./md5-worker.js", import.meta.url));
  worker.onmessage = (event) => {
    const { id, done, md5, error } = event.data;
    const job = hashing.get(id);
    if (!job) return;
    if (done !== undefined) return job.progress(done);
    hashing.delete(id);
    error ? job.reject(new Error(error)) : job.resolve(md5);
  };
  return new Promise((resolve, reject) => {
    hashing.set(item.id, { resolve, reject, progress: (done) => update(item, { hashed: done }) });
    worker.postMessage({ id: item.id, file: item.file });
  });
}

function update(item, fields) {
  Object.assign(item, fields);
  changed();
}

// Files go into `parentId` of `space` ("oss" or "disk"); `onDone(item)` runs for each success.
export function enqueue(files, { space, parentId, onDone }) {
  for (const file of files) {
    items.unshift({
      id: nextId++,
      file,
      name: file.name || "pasted.png",
      size: file.size,
      space,
      parentId,
      onDone,
      state: "waiting",
      hashed: 0,
      sent: 0,
      message: "",
      fileId: "",
      preuploadID: "",
    });
  }
  changed();
  pump();
}

export function retry(id) {
  const item = items.find((i) => i.id === id);
  if (!item || item.state !== "failed") return;
  update(item, { state: "waiting", message: "" });
  pump();
}

export function clearFinished() {
  for (let i = items.length - 1; i >= 0; i--) {
    if (["done", "instant"].includes(items[i].state)) items.splice(i, 1);
  }
  changed();
}

function pump() {
  while (running < FILES_AT_ONCE) {
    const item = [...items].reverse().find((i) => i.state === "waiting");
    if (!item) return;
    running++;
    update(item, { state: "hashing" });
    send(item)
      .catch((err) => update(item, { state: "failed", message: err.message || String(err) }))
      .finally(() => {
        running--;
        pump();
      });
  }
}

function createBody(item, etag) {
  if (item.space === "oss") {
    return { parentFileID: item.parentId || "", filename: item.name, etag, size: item.size, type: 1 };
  }
  // The cloud disk keeps both when the name is taken (duplicate 1: the new one is renamed).
  return { parentFileID: Number(item.parentId || 0), filename: item.name, etag, size: item.size, duplicate: 1 };
}

async function send(item) {
  const steps = STEPS[item.space];
  if (!item.preuploadID) {
    if (item.size === 0) throw new Error("empty file");
    const etag = item.etag || (await md5Of(item));
    update(item, { etag, hashed: item.size });
    const created = await call(`${steps}/create`, {
      body: createBody(item, etag),
    });
    if (created.reuse) {
      update(item, { state: "instant", sent: item.size, fileId: String(created.fileID) });
      item.onDone?.(item);
      return;
    }
    update(item, { preuploadID: created.preuploadID, sliceSize: created.sliceSize });
  }
  update(item, { state: "uploading" });
  await sendSlices(item, steps);
  update(item, { state: "verifying" });
  let result = await call(`${steps}/upload_complete`, { body: { preuploadID: item.preuploadID } });
  // Verifying a big file takes the server well under a second after its last slice: ask soon,
  // then less and less often (at most once a second).
  for (let wait = 100; !result.completed; wait = Math.min(1000, wait * 2)) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    result = await call(`${steps}/upload_async_result`, { body: { preuploadID: item.preuploadID } });
  }
  update(item, { state: "done", sent: item.size, fileId: String(result.fileID ?? result.fileId) });
  item.onDone?.(item);
}

async function sendSlices(item, steps) {
  const count = Math.ceil(item.size / item.sliceSize);
  // A retried upload sends only the slices the server does not hold yet.
  const held = new Set();
  if (item.resumed) {
    const parts = await call(`${steps}/list_upload_parts`, { body: { preuploadID: item.preuploadID } });
    for (const part of parts.parts || []) held.add(Number(part.partNumber));
  }
  item.resumed = true;
  const todo = [];
  for (let n = 1; n <= count; n++) if (!held.has(n)) todo.push(n);
  const inFlight = new Map();
  const base = [...held].reduce((sum, n) => sum + sliceLength(item, n), 0);
  const report = () => {
    let sent = base;
    for (const loaded of inFlight.values()) sent += loaded;
    update(item, { sent: Math.min(sent, item.size) });
  };
  async function lane() {
    while (todo.length) {
      const n = todo.shift();
      const start = (n - 1) * item.sliceSize;
      const { presignedURL } = await call(`${steps}/get_upload_url`, {
        body: { preuploadID: item.preuploadID, sliceNo: n },
      });
      await putSlice(presignedURL, item.file.slice(start, start + item.sliceSize), (loaded) => {
        inFlight.set(n, loaded);
        report();
      });
      inFlight.set(n, sliceLength(item, n));
      report();
    }
  }
  await Promise.all(Array.from({ length: Math.min(SLICES_AT_ONCE, todo.length) }, lane));
}

function sliceLength(item, n) {
  return Math.min(item.sliceSize, item.size - (n - 1) * item.sliceSize);
}
