// The API as the signed-in curator: the key lives in sessionStorage (gone when the tab closes) and
// travels only in the Authorization header, never in a URL.

const KEY = "fewshot.key";
const NAME = "fewshot.name";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? body.error : {};
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.code = detail.code || String(status);
    this.field = detail.field || null;
    this.duplicates = detail.duplicates || [];  // a 409 "duplicate": which examples the input repeats
  }
}

// An example deleted (by someone else): the service answers 404 to reading it, 409 (field id) to writing to it.
export function isDeleted(error) {
  return error instanceof ApiError && (error.status === 404 || (error.status === 409 && error.field === "id"));
}

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  get name() { return sessionStorage.getItem(NAME) || ""; },
  signIn(key, name) {
    if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
    if (name) sessionStorage.setItem(NAME, name); else sessionStorage.removeItem(NAME);
  },
  signOut() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(NAME); },
};

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  if (session.key) out.Authorization = `Bearer ${session.key}`;
  // Without keys the service records this name as the actor (with keys the key's name is used).
  else if (session.name) out["X-Fewshot-Actor"] = session.name;
  return out;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, String(one));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export async function call(method, path, { body, extraHeaders } = {}) {
  const init = { method, headers: headers(extraHeaders), cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  // A key refused mid-session: the shell takes the curator back to the sign-in form.
  if (response.status === 401 && session.key) window.dispatchEvent(new Event("fewshot:unauthorized"));
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export async function image(path) {
  const response = await fetch(path, { headers: headers({ Accept: "image/png" }), cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, null);
  return URL.createObjectURL(await response.blob());
}

export async function text(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, null);
  return response.text();
}
