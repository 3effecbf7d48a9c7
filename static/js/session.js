// Logging in and out. A log-out runs the hooks other modules left (push unsubscribes there),
// then forgets every local record on this phone.
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

export async function logOut() {
  const { waiting } = outbox.counts();
  if (waiting && !confirm(`${waiting} change(s) are not synced yet and will be lost. Log out anyway?`)) return;
  for (const fn of logoutHooks) {
    try {
      await fn();
    } catch (err) {
      console.warn("log-out hook failed", err);
    }
  }
  try {
    await api("POST", "/auth/logout");
  } catch (err) {
    if (!(err instanceof ApiError || err instanceof NetworkError)) throw err;
  }
  await forgetAll();
  syncState.pulled = false;
  await outbox.load();
  await kv.del("csrf");
  changed();
  location.hash = "#/login";
}
