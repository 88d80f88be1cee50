// The console's one door to Kiln: where the API is, the token, and every call made with it.
// Every face answers errors in its own shape; ApiError.message is the text the face gave.

const TOKEN_KEY = "kiln.console.token";

/** The API root: this page's origin plus the path before /console/ (an API Gateway stage). */
export function apiRoot(loc = window.location) {
  const at = loc.pathname.indexOf("/console");
  const prefix = at >= 0 ? loc.pathname.slice(0, at) : "";
  return loc.origin + prefix;
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

// -- the token ---------------------------------------------------------------------------------
export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token, remember) {
  clearToken();
  (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
}

/** What the token says of itself (not verified here: the API verifies it). */
export function tokenClaims(token = getToken()) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const json = new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}

export function tenantOf(claims) {
  return claims.tenant || claims["custom:tenant"] || claims["kiln:tenant"] || "";
}

export function roleOf(claims) {
  return claims.role || claims["custom:role"] || claims["kiln:role"] || "";
}

// -- errors ------------------------------------------------------------------------------------
/** The message a face put in its error body: Kiln's problem details, Glance's message,
 *  Cachito's error(s), the app registry's error.message, or the text itself. */
export function errorMessage(body, status, statusText) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string" && body.detail) return body.detail;
    if (typeof body.message === "string" && body.message) return body.message;
    if (typeof body.error === "string" && body.error) return body.error;
    if (body.error && typeof body.error.message === "string") return body.error.message;
    if (body.errors && typeof body.errors === "object") {
      return Object.entries(body.errors)
        .map(([field, text]) => `${field}: ${text}`)
        .join("; ");
    }
    if (typeof body.title === "string") return body.title;
  }
  if (typeof body === "string" && body.trim()) {
    // Glance's plain text: "404 Not Found\n\nmessage\n\n"
    const lines = body.split("\n").map((l) => l.trim()).filter(Boolean);
    return lines.length > 1 && /^\d{3} /.test(lines[0]) ? lines.slice(1).join(" ") : lines.join(" ");
  }
  return `${status} ${statusText || "error"}`.trim();
}

let onUnauthorized = () => {};
/** Called with the ApiError when the API refuses the token (401): the console signs out. */
export function handleUnauthorized(callback) {
  onUnauthorized = callback;
}

async function bodyOf(response) {
  const type = response.headers.get("content-type") || "";
  const text = await response.text();
  if (type.includes("json") || /^\s*[{[]/.test(text)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** A call to the API: ``path`` from the API root; JSON answers parsed; ApiError otherwise. */
export async function api(path, { method = "GET", body, token = getToken(), signal, quiet } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiRoot() + path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `Kiln did not answer (${err.message}). Is the service up?`, null);
  }
  const parsed = await bodyOf(response);
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      errorMessage(parsed, response.status, response.statusText),
      parsed,
    );
    if (response.status === 401 && !quiet) onUnauthorized(error);
    throw error;
  }
  return parsed;
}

// -- downloads ---------------------------------------------------------------------------------
function filenameOf(response, fallback) {
  const disposition = response.headers.get("content-disposition") || "";
  const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(disposition);
  if (star) return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
  const plain = /filename="?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1] : fallback;
}

/** Hands a Blob to the browser as a file download. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.style.display = "none";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Downloads what an authenticated GET answers (the token goes in the header, so a plain link
 *  cannot): fetch, then save the blob. A redirect (Glance's 303 to a presigned URL) is
 *  followed by the browser. ``onProgress(received, total)`` as the bytes come. */
export async function downloadWithToken(path, fallbackName, onProgress) {
  const headers = { Accept: "*/*" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(apiRoot() + path, { headers });
  } catch (err) {
    throw new ApiError(0, `The download failed: ${err.message}`, null);
  }
  if (!response.ok) {
    const parsed = await bodyOf(response);
    const error = new ApiError(
      response.status,
      errorMessage(parsed, response.status, response.statusText),
      parsed,
    );
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  const name = filenameOf(response, fallbackName);
  const blob = await readWithProgress(response, onProgress);
  saveBlob(blob, name);
  return { name, size: blob.size };
}

async function readWithProgress(response, onProgress) {
  const total = Number(response.headers.get("content-length")) || 0;
  if (!onProgress || !response.body) return response.blob();
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onProgress(received, total);
  }
  return new Blob(chunks, { type: response.headers.get("content-type") || "" });
}

/** Downloads a presigned URL (no token) under ``filename``; when the store does not allow
 *  this page to read it (no CORS), the browser opens the URL itself. */
export async function downloadPresigned(url, filename) {
  try {
    const response = await fetch(url, { mode: "cors", credentials: "omit" });
    if (!response.ok) throw new Error(`${response.status}`);
    saveBlob(await response.blob(), filename);
  } catch {
    window.open(url, "_blank", "noopener");
  }
}
