// The service worker: register it, and when a new version is waiting, offer
// "Update available · Reload" (the click activates it; the page reloads on controllerchange).
import { toast } from "./ui/toast.js";

let reloading = false;

function offer(worker) {
  toast("Update available", {
    id: "update",
    action: "Reload",
    timeout: 0,
    onAction: () => {
      reloading = true;
      worker.postMessage({ type: "skip-waiting" });
    },
  });
}

export async function initUpdates() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    // Only a reload the rep asked for: the very first install also changes the controller.
    if (reloading) location.reload();
  });
  // A module worker: it imports the app's outbox for the notification buttons (see sw.js).
  const reg = await navigator.serviceWorker.register("/sw.js", { type: "module" });
  const watch = (worker) => {
    worker.addEventListener("statechange", () => {
      if (worker.state === "installed" && navigator.serviceWorker.controller) offer(worker);
    });
  };
  if (reg.waiting && navigator.serviceWorker.controller) offer(reg.waiting);
  if (reg.installing) watch(reg.installing);
  reg.addEventListener("updatefound", () => watch(reg.installing));
  // An app left open all day still learns about a deploy.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reg.update().catch(() => {});
  });
  setInterval(() => reg.update().catch(() => {}), 60 * 60 * 1000);
}
