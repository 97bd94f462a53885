// The page's one way to the server: the 123pan API and /web/api, both answering the envelope
// {code, message, data}. The session cookie authenticates; every request carries the session's
// CSRF token, kept in memory only (never in storage).
let csrf = "";
let onSignedOut = () => {};

export function setCsrf(token) {
  csrf = token || "";
}

export function whenSignedOut(handler) {
  onSignedOut = handler;
}

export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withQuery(path, query) {
  if (!query) return path;
  const pairs = Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? `${path}?${new URLSearchParams(pairs)}` : path;
}

// GET with `query`, or a JSON `body` (POST unless `method` says otherwise). Rate-limited
// answers (429) are retried with a growing pause, as every client of the real service does.
export async function call(path, { method, body, query } = {}) {
  const verb = method || (body === undefined ? "GET" : "POST");
  const headers = { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  for (let attempt = 0; ; attempt++) {
    let answer;
    try {
      const response = await fetch(withQuery(path, query), {
        method: verb,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
      answer = await response.json();
    } catch (err) {
      throw new ApiError(-1, String(err.message || err));
    }
    if (answer.code === 429 && attempt < 6) {
      await sleep(250 * 2 ** attempt);
      continue;
    }
    if (answer.code === 401 && path !== "/web/api/login") onSignedOut();
    if (answer.code !== 0) throw new ApiError(answer.code, answer.message);
    return answer.data;
  }
}

// PUT one slice with progress (fetch reports no upload progress); resolves on HTTP 2xx.
export function putSlice(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let message = `HTTP ${xhr.status}`;
      try {
        message = JSON.parse(xhr.responseText).message || message;
      } catch {}
      reject(new ApiError(xhr.status, message));
    };
    xhr.onerror = () => reject(new ApiError(-1, "network error"));
    xhr.send(blob);
  });
}
