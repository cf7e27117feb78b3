// The pages talk to rollcall's public API with the bearer token the person signs in with, sent in an
// Authorization header and never in a URL. A header rather than a session cookie: the browser never
// attaches it by itself, so no other site can make these requests (there is no CSRF to defend
// against), every replica accepts it, and revoking the token ends the session. It is kept in
// sessionStorage (this tab and the tabs it opens, gone when they close); the pages' policy
// (Content-Security-Policy: default-src 'self') keeps out any script that could read it.

const TOKEN_KEY = "rollcall.token";

// This file is served at <root>/ui/assets/api.js.
export const uiRoot = new URL("../", import.meta.url);
const apiRoot = new URL("../../", import.meta.url);

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => sessionStorage.removeItem(TOKEN_KEY),
};

/// Called when the API no longer accepts the token (revoked, or signed out in another tab).
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/// An API error answer (RFC 9457 problem JSON), or a network failure (status 0).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/// The error of a failed answer; a 401 to the session's own token ends the session.
async function errorOf(response, { sessionToken = true } = {}) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { title: response.statusText };
  }
  if (response.status === 401 && sessionToken) onUnauthorized();
  return new ApiError(response.status, problem);
}

function headers(accept, token = session.token()) {
  return { Authorization: `Bearer ${token}`, Accept: accept };
}

/// A JSON request to `path` (relative to the API root, e.g. `v1/deploys`), with the session's token
/// or the one given (signing in tries it first).
export async function api(path, { method = "GET", body, token, signal } = {}) {
  const init = { method, headers: headers("application/json", token), cache: "no-store", signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, apiRoot), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "rollcall cannot be reached", detail: String(error) });
  }
  if (!response.ok) throw await errorOf(response, { sessionToken: token === undefined });
  return response.json();
}

/// Reads Server-Sent Events from the bytes of a response body: `onFrame({id, event, data})` per
/// dispatched event; `retry` hints go to `onRetry`. Follows the HTML standard's parsing rules.
export class SseParser {
  constructor(onFrame, onRetry = () => {}) {
    this.onFrame = onFrame;
    this.onRetry = onRetry;
    this.pending = "";
    this.reset();
    this.lastEventId = "";
  }

  reset() {
    this.event = "";
    this.data = [];
    this.hasId = false;
  }

  push(text) {
    const buffer = this.pending + text;
    const terminator = /\r\n|\n|\r/g;
    let start = 0;
    let match;
    while ((match = terminator.exec(buffer))) {
      // A "\r" at the very end may be the first half of "\r\n": wait for what follows.
      if (match[0] === "\r" && match.index === buffer.length - 1) break;
      this.line(buffer.slice(start, match.index));
      start = terminator.lastIndex;
    }
    this.pending = buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.onFrame({ id: this.lastEventId, event: this.event || "message", data: this.data.join("\n") });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
  }
}

/// Follows an SSE endpoint with `fetch`, since EventSource cannot send an Authorization header.
/// Reconnects after the server's retry hint, resuming with `Last-Event-ID`, until `stop()`; a 4xx
/// answer ends it. `onState` hears "connecting", "live", "reconnecting", "ended" and "refused".
export function follow(path, { onEvent, onState = () => {} }) {
  const controller = new AbortController();
  let retry = 2000;
  const parser = new SseParser(onEvent, (millis) => (retry = millis));
  const run = async () => {
    let attempt = 0;
    while (!controller.signal.aborted) {
      onState(attempt === 0 ? "connecting" : "reconnecting");
      try {
        const request = { headers: headers("text/event-stream"), cache: "no-store", signal: controller.signal };
        if (parser.lastEventId) request.headers["Last-Event-ID"] = parser.lastEventId;
        const response = await fetch(new URL(path, apiRoot), request);
        if (!response.ok) {
          const error = await errorOf(response);
          if (response.status < 500) {
            onState("refused", error);
            return;
          }
          throw error;
        }
        onState("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
        parser.reset();
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      if (controller.signal.aborted) return;
      onState("reconnecting");
      attempt += 1;
      await new Promise((resolve) => setTimeout(resolve, retry));
    }
  };
  run().finally(() => onState("ended"));
  return { stop: () => controller.abort() };
}
