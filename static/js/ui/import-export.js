// Settings: import contacts (CSV or vCard), download clients.csv / touches.csv, and the private
// calendar feed URL (copy, rotate). Plain DOM via dom.js; no inline styles or scripts (CSP).
// The feed's link stays the same until the rep asks for a new one (the old URL then stops working).
// An import is not queued in the outbox: it needs the server there and then, so offline it says
// so, keeps the picked file, and offers "Try again" (importing the same file twice is harmless).
import { h, mount } from "./dom.js";
import { refreshToken, NetworkError } from "../api.js";
import { sync } from "../sync.js";

const BASE = "/api/v1";

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The upload could not reach the server. `sent`: whether the file may have got there. */
class NoConnection extends Error {
  constructor(sent) {
    super("no connection");
    this.sent = sent;
  }
}

const MAX_BYTES = 5 * 1024 * 1024; // the server's limit (413 above it)

async function upload(file, csrfToken) {
  // Said before sending: a server may cut a far larger upload short instead of answering 413.
  if (file.size > MAX_BYTES) throw new Error("The file is larger than 5 MB. Split it and import the parts.");
  if (navigator.onLine === false) throw new NoConnection(false);
  let token;
  try {
    token = await csrfToken();
  } catch (err) {
    if (err instanceof NetworkError) throw new NoConnection(false);
    throw err;
  }
  const body = new FormData();
  body.append("file", file, file.name);
  let response;
  try {
    response = await fetch(`${BASE}/import`, {
      method: "POST",
      body,
      headers: { Accept: "application/json", "X-CSRFToken": token },
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new NoConnection(true);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `The server answered ${response.status}.`;
    throw new Error(message);
  }
  return data;
}

/** Pull the imported clients into the phone's own copy. A sync round already under way may
 * have pulled before the import was written: let it finish, then pull again. */
async function refreshLocalCopy() {
  await sync();
  return sync();
}

function summaryView(file, result) {
  const { created, updated, skipped, errors } = result;
  const count = (n, label, kind) => h("li", { class: `count ${kind}` }, h("strong", {}, String(n)), " ", h("span", {}, label));
  return h(
    "div",
    { class: "import-summary" },
    h("p", { class: "import-file" }, `Imported “${file.name}”`),
    h(
      "ul",
      { class: "counts", "aria-label": "What the import did" },
      count(created, "added", "created"),
      count(updated, "updated", "updated"),
      count(skipped, "unchanged", "skipped"),
    ),
    errors.length > 0 &&
      h(
        "details",
        { class: "problems", open: errors.length <= 5 },
        h("summary", {}, `${plural(errors.length, "line")} to check`),
        h("p", { class: "hint" }, "Each line says what happened to it; the rest went in as they are. Fix the file and import it again if you like: nobody is added twice."),
        h("ul", {}, errors.map((e) => h("li", {}, h("strong", {}, `Line ${e.line}:`), ` ${e.message}`))),
      ),
    h("a", { class: "btn primary wide tap", href: "#/clients" }, "See your clients"),
  );
}

function offlineView(err, retry) {
  const again = h("button", { type: "button", class: "btn primary wide tap" }, "Try again");
  again.addEventListener("click", retry);
  const message = err.sent
    ? "The connection dropped before the server answered, so the import may or may not have happened. Importing the file again is safe: nobody is added twice."
    : "No connection: nothing was imported, and nothing changed. Your file is still picked: tap “Try again” when you have signal.";
  return [h("p", { class: "error", role: "alert" }, message), again];
}

function importSection(csrfToken) {
  const status = h("div", { class: "import-status", "aria-live": "polite" });
  const input = h("input", {
    type: "file",
    id: "import-file",
    name: "file",
    class: "file-input tap",
    accept: ".csv,.vcf,text/csv,text/vcard,text/x-vcard",
  });

  async function run(file) {
    input.disabled = true;
    mount(status, h("p", { class: "importing" }, `Importing “${file.name}”…`));
    let keep = false; // offline, the file stays picked for "Try again"
    try {
      const result = await upload(file, csrfToken);
      mount(status, summaryView(file, result));
      refreshLocalCopy();
    } catch (err) {
      keep = err instanceof NoConnection;
      if (keep) mount(status, ...offlineView(err, () => run(file)));
      else mount(status, h("p", { class: "error", role: "alert" }, err.message || "The import failed."));
    } finally {
      input.disabled = false;
      if (!keep) input.value = "";
    }
  }

  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (file) run(file);
  });
  return h(
    "section",
    { class: "settings-block", "aria-labelledby": "import-heading" },
    h("h2", { id: "import-heading" }, "Import contacts"),
    h("label", { class: "label", htmlFor: "import-file" }, "Choose a CSV or vCard file"),
    input,
    h("p", { class: "hint" }, "Google or Outlook CSV, a spreadsheet saved as CSV, or a phone's .vcf file, up to 5 MB. Importing the same file again adds nobody twice."),
    status,
  );
}

function exportSection() {
  const status = h("div", { class: "export-status", "aria-live": "polite" });
  const link = (path, label, filename) => {
    const a = h("a", { class: "btn tap", href: `${BASE}${path}`, download: filename }, label);
    a.addEventListener("click", (ev) => {
      if (navigator.onLine !== false) {
        mount(status);
        return;
      }
      ev.preventDefault(); // a download needs the server: say so rather than fail in the browser
      mount(status, h("p", { class: "error", role: "alert" }, "No connection: downloads need the server. Try again when you have signal."));
    });
    return a;
  };
  return h(
    "section",
    { class: "settings-block", "aria-labelledby": "export-heading" },
    h("h2", { id: "export-heading" }, "Export"),
    h(
      "div",
      { class: "row-actions" },
      link("/export/clients.csv", "Download clients (CSV)", "touchbase-clients.csv"),
      link("/export/touches.csv", "Download call log (CSV)", "touchbase-calls.csv"),
    ),
    status,
  );
}

function calendarSection(api) {
  const box = h("div", { class: "calendar-feed", "aria-live": "polite" });

  function show(data) {
    const rotate = h("button", { type: "button", class: "btn tap" }, "New link");
    rotate.addEventListener("click", async () => {
      if (!window.confirm("Make a new calendar link? The old one will stop working.")) return;
      rotate.disabled = true;
      try {
        show(await api("POST", "/calendar/rotate"));
      } catch (err) {
        rotate.disabled = false;
        mount(box, h("p", { class: "error", role: "alert" }, err.message || "Could not make a new link."));
      }
    });
    const field = h("input", { type: "text", id: "calendar-url", class: "tap", readOnly: true, value: data.url });
    const copy = h("button", { type: "button", class: "btn primary tap" }, "Copy link");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(data.url);
        copy.textContent = "Copied";
      } catch {
        field.select();
      }
    });
    mount(
      box,
      h("label", { class: "label", htmlFor: "calendar-url" }, "Calendar link (private)"),
      field,
      h("p", { class: "hint" }, "Add it to your phone's calendar as a subscription. Keep it to yourself: anyone with the link sees your callbacks. “New link” stops the old one."),
      h("div", { class: "row-actions" }, copy, rotate),
    );
  }

  api("GET", "/calendar").then(show, (err) => {
    mount(box, h("p", { class: "error", role: "alert" }, err.message || "Could not load the calendar link."));
  });
  return h(
    "section",
    { class: "settings-block", "aria-labelledby": "calendar-heading" },
    h("h2", { id: "calendar-heading" }, "Calendar feed"),
    h("p", { class: "hint" }, "Your promised callbacks in your phone's calendar."),
    box,
  );
}

/**
 * Render the import, export and calendar settings into `container`.
 * `api` is api.js's `api(method, path, body)`; `csrfToken` returns the CSRF token for the
 * multipart upload (api.js only sends JSON), by default a fresh one from /api/v1/csrf.
 */
export function renderImportExport(container, api, csrfToken = refreshToken) {
  mount(container, importSection(csrfToken), exportSection(), calendarSection(api));
  return container;
}
