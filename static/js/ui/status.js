// What is saved where: an offline banner, and "N changes waiting to sync" or "All saved".
import { $ } from "./dom.js";
import * as outbox from "../outbox.js";

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function renderStatus() {
  const { waiting, failed } = outbox.counts();
  const el = $("#sync-status");
  let text = "All saved";
  if (failed) text = `${plural(failed, "change")} failed`;
  else if (waiting) text = `${plural(waiting, "change")} waiting to sync`;
  el.textContent = text;
  el.dataset.state = failed ? "failed" : waiting ? "waiting" : "saved";
  $("#offline-banner").hidden = navigator.onLine;
}

export function initStatus() {
  outbox.onChange(renderStatus);
  window.addEventListener("online", renderStatus);
  window.addEventListener("offline", renderStatus);
  renderStatus();
}
