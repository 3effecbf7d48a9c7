// Logging in and out (here or everywhere), and deleting the account. A log-out runs the hooks
// other modules left (push unsubscribes there), then forgets every local record on this phone.
import { api, setToken, ApiError, NetworkError } from "./api.js";
import { state, setMe, forgetAll, changed } from "./data.js";
import { kv } from "./store.js";
import * as outbox from "./outbox.js";
import { syncState } from "./sync.js";

const logoutHooks = [];

/** Run `fn` (may be async) before a log-out; e.g. push.js drops the push subscription. */
export function onLogout(fn) {
  logoutHooks.push(fn);
}

/** Log in or register; stores the user and the fresh token. Throws ApiError / NetworkError. */
export async function authenticate(path, body) {
  const answer = await api("POST", path, body);
  const previous = state.me && state.me.id;
  if (previous && previous !== answer.user.id) {
    await forgetAll(); // another rep on this phone: nothing of the last one's stays
    syncState.pulled = false;
  }
  await setToken(answer.csrf_token);
  await setMe(answer.user);
  return answer.user;
}

async function runHooks() {
  for (const fn of logoutHooks) {
    try {
      await fn();
    } catch (err) {
      console.warn("log-out hook failed", err);
    }
  }
}

async function forget() {
  await forgetAll();
  syncState.pulled = false;
  await outbox.load();
  await kv.del("csrf");
  changed();
}

/** Log out; `everywhere` ends every session of the rep's, and throws (forgetting nothing) when
 * the server does not do it. */
export async function logOut(everywhere = false) {
  const { waiting } = outbox.counts();
  if (waiting && !confirm(`${waiting} change(s) are not synced yet and will be lost. Log out anyway?`)) return;
  await runHooks();
  try {
    await api("POST", everywhere ? "/auth/logout-all" : "/auth/logout");
  } catch (err) {
    if (everywhere || !(err instanceof ApiError || err instanceof NetworkError)) throw err;
  }
  await forget();
  location.hash = "#/login";
}

/** Delete the account (throws on a wrong password or offline), then all of it on this phone. */
export async function deleteAccount(password) {
  await api("DELETE", "/me", { password });
  await runHooks();
  await forget();
  outbox.hooks.unauthorized("Your account was deleted.");
}
