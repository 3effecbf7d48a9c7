// Toasts at the bottom, above the tab bar: a message, an optional action, gone after a while.
import { h, $ } from "./dom.js";

/** Show a toast; returns a function that dismisses it. timeout 0 keeps it until dismissed. */
export function toast(message, { action = null, onAction = null, timeout = 5000, id = null } = {}) {
  const box = $("#toasts");
  if (id) box.querySelector(`[data-toast="${id}"]`)?.remove();
  const el = h("div", { class: "toast", role: "status", dataset: id ? { toast: id } : {} }, h("span", {}, message));
  const dismiss = () => el.remove();
  if (action) {
    el.append(h("button", { type: "button", class: "toast-action", onclick: () => { dismiss(); onAction(); } }, action));
  }
  box.append(el);
  if (timeout) setTimeout(dismiss, timeout);
  return dismiss;
}
