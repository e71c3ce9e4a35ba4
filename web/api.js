// The API client: every request goes through api(), which sends the
// credentials the user gave (HTTP Basic) and, when the server answers
// 401, asks for them (the login dialog) and tries again. The inbox
// picker scopes requests with the /api/v1/inboxes/NAME/ prefix.

const KEY = 'mailsnare.auth';
let credentials = sessionStorage.getItem(KEY) || '';
let scope = '';
let loginPrompt = null;        // set by app.js: () => Promise<[user, pass] | null>
let pendingLogin = null;

export function setLoginPrompt(fn) { loginPrompt = fn; }
export function signedIn() { return credentials !== ''; }

export function setCredentials(user, pass) {
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  credentials = user === '' ? '' : btoa(String.fromCharCode(...bytes));
  if (credentials) sessionStorage.setItem(KEY, credentials);
  else sessionStorage.removeItem(KEY);
}

export function setScope(inbox) { scope = inbox; }
export function getScope() { return scope; }

// "/api/v1/messages" -> "/api/v1/inboxes/dev/messages" when scoped.
export function scoped(path) {
  if (!scope || !path.startsWith('/api/v1/')) return path;
  return `/api/v1/inboxes/${encodeURIComponent(scope)}/${path.slice(8)}`;
}

// X-Requested-With: the server leaves the Basic challenge out of its 401
// (src/http.c), so the browser opens no prompt of its own over ours.
export function authHeaders(extra = {}) {
  const h = { ...extra, 'X-Requested-With': 'mailsnare-web' };
  if (credentials) h.Authorization = `Basic ${credentials}`;
  return h;
}

async function askLogin() {
  if (!loginPrompt) return false;
  // Requests that fail at once share one dialog.
  pendingLogin ??= loginPrompt().finally(() => { pendingLogin = null; });
  const got = await pendingLogin;
  if (!got) return false;
  setCredentials(got[0], got[1]);
  return true;
}

export class ApiError extends Error {
  constructor(status, text) {
    super(`${status}: ${text}`);
    this.status = status;
    this.text = text;            // the server's own words, for the user
  }
}

// fetch with credentials and the login retry; returns the Response.
export async function request(path, { method = 'GET', body, scopedPath = true, signal } = {}) {
  const url = scopedPath ? scoped(path) : path;
  for (let tries = 0; ; tries++) {
    const sent = credentials;
    const headers = authHeaders(body !== undefined ? { 'Content-Type': 'application/json' } : {});
    const res = await fetch(url, {
      method, headers, signal, cache: 'no-store',
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    // Credentials that came while this request was out are tried first.
    if (res.status === 401 && tries < 3 && (credentials !== sent || await askLogin())) continue;
    if (!res.ok) throw new ApiError(res.status, (await res.text()).slice(0, 300));
    return res;
  }
}

export async function json(path, opts) {
  return (await request(path, opts)).json();
}

// Server-Sent Events read over fetch (EventSource cannot send an
// Authorization header), resumed with Last-Event-ID after a drop.
export async function events(path, onEvent, signal) {
  let lastId = '';
  while (!signal.aborted) {
    try {
      const headers = authHeaders(lastId ? { 'Last-Event-ID': lastId } : {});
      const sent = credentials;
      const res = await fetch(scoped(path), { headers, signal, cache: 'no-store' });
      if (res.status === 401) {
        if (credentials === sent && !await askLogin()) return;
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const ev = parseEvent(buf.slice(0, end));
          buf = buf.slice(end + 2);
          if (ev.id) lastId = ev.id;
          if (ev.type && ev.data) onEvent(ev.type, ev.data);
        }
        if (buf.length > 4 * 1024 * 1024) buf = '';   // no such event: resync
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function parseEvent(block) {
  const ev = { id: '', type: 'message', data: null };
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') ev.id = value;
    else if (field === 'event') ev.type = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length) {
    try { ev.data = JSON.parse(data.join('\n')); } catch { ev.data = null; }
  }
  return ev;
}
