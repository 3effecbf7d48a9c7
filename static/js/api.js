// Talking to /api/v1: JSON in and out, the session cookie, and the CSRF header on every change.
// The token is kept in IndexedDB, so an outbox replayed after a reload still carries it.
import { kv } from "./store.js";

const BASE = "/api/v1";
const CHANGES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

let token = null;

/** An answer from the server that was not a 2xx, in the error shape of API.md. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `The server answered ${status}.`);
    this.status = status;
    this.code = err.code || "";
    this.fields = err.fields || null;
  }
}

/** No answer at all: offline, or the server could not be reached. */
export class NetworkError extends Error {}

export async function setToken(value) {
  token = value;
  await kv.set("csrf", value);
}

async function currentToken() {
  if (token === null) token = (await kv.get("csrf")) || null;
  if (token === null) await refreshToken();
  return token;
}

export async function refreshToken() {
  const { csrf_token: fresh } = await send("GET", "/csrf", undefined, false);
  await setToken(fresh);
  return fresh;
}

async function send(method, path, body, withToken) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (withToken) headers["X-CSRFToken"] = await currentToken();
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new NetworkError(err.message || "offline");
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function isCsrfError(err) {
  return err instanceof ApiError && (err.status === 400 || err.status === 403) && err.code === "csrf_failed";
}

/** Call the API; a CSRF failure refreshes the token once and retries. */
export async function api(method, path, body) {
  const change = CHANGES.has(method);
  try {
    return await send(method, path, body, change);
  } catch (err) {
    if (!change || !isCsrfError(err)) throw err;
    await refreshToken();
    return send(method, path, body, true);
  }
}

/** Every page of a list endpoint, as one array. */
export async function getAll(path, params = {}) {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ ...params, limit: "500" });
    if (cursor) query.set("cursor", cursor);
    const page = await api("GET", `${path}?${query}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}
