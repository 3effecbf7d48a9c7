// Dialling: a tel: link that remembers who was called, so that coming back to the app opens
// the outcome sheet for them (the call itself happens in the phone app, out of our sight).
import { h } from "./dom.js";
import { kv } from "../store.js";

const FRESH = 3 * 60 * 60 * 1000; // a return after three hours is not "back from the call"

let dialled = null;

export function dialLink(client, text, cls) {
  return h(
    "a",
    {
      class: cls,
      href: `tel:${client.phone}`,
      "aria-label": `Call ${client.name}`,
      onclick: () => {
        dialled = { clientId: client.id, at: Date.now() };
        kv.set("dialled", dialled);
      },
    },
    text,
  );
}

/** The client dialled last, once: null when none or long ago. */
export async function takeDialled() {
  const last = dialled || (await kv.get("dialled"));
  if (!last) return null;
  dialled = null;
  await kv.del("dialled");
  return Date.now() - last.at < FRESH ? last.clientId : null;
}

export function hasDialled() {
  return dialled !== null;
}
