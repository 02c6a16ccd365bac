// Calls to the llmft API with the signed-in key (Authorization: Bearer KEY). Every failure becomes
// an ApiError carrying the server's {"error": {code, message, details}}, so the page can show it.
const STORAGE = "llmft.key";

export const apiKey = {
  get: () => sessionStorage.getItem(STORAGE),
  set: (value) => sessionStorage.setItem(STORAGE, value),
  clear: () => sessionStorage.removeItem(STORAGE),
};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export async function api(method, path, body, headers = {}) {
  const response = await send(method, path, body, { headers });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.status === 401) window.dispatchEvent(new CustomEvent("llmft:unauthorized"));
  if (!response.ok) throw toError(response.status, data, `${method} ${path}`);
  if (data === null) throw new ApiError(response.status, "bad_response", `${method} ${path}: the answer is not JSON`);
  return data;
}

// POST `body` and hand each server-sent event's JSON to onEvent until [DONE] (the OpenAI stream format).
export async function streamEvents(path, body, onEvent, signal) {
  const response = await send("POST", path, body, { signal });
  if (!response.ok) throw toError(response.status, await response.json().catch(() => null), `POST ${path}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new ApiError(0, "stream_cut", "the stream ended before [DONE]");
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const data = lines.filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.error) throw toError(500, event, "the stream");
      onEvent(event);
    }
  }
}

async function send(method, path, body, { headers: extra = {}, signal } = {}) {
  const headers = { ...extra, Authorization: `Bearer ${apiKey.get()}` };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  try {
    return await fetch(path, { method, headers, body: payload, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", `${method} ${path}: ${error.message}`);
  }
}

function toError(status, data, what) {
  const error = data && data.error;
  if (error && typeof error === "object") {
    return new ApiError(status, error.code || error.type || "error", error.message || what, error.details);
  }
  return new ApiError(status, `http_${status}`, `${what} answered HTTP ${status}`);
}
