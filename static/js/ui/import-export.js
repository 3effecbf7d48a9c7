// Settings: import contacts (CSV or vCard), download clients.csv / touches.csv, and the private
// calendar feed URL (copy, rotate). Plain DOM via dom.js; no inline styles or scripts (CSP).
// The feed's link stays the same until the rep asks for a new one (the old URL then stops working).
import { h, mount } from "./dom.js";
import { refreshToken } from "../api.js";

const BASE = "/api/v1";

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

async function upload(file, csrfToken) {
  const body = new FormData();
  body.append("file", file, file.name);
  const response = await fetch(`${BASE}/import`, {
    method: "POST",
    body,
    headers: { Accept: "application/json", "X-CSRFToken": await csrfToken() },
    credentials: "same-origin",
    cache: "no-store",
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `The server answered ${response.status}.`;
    throw new Error(message);
  }
  return data;
}

function summaryView(result) {
  const { created, updated, skipped, errors } = result;
  return h(
    "div",
    { class: "import-summary" },
    h("p", {}, `${plural(created, "client")} added, ${updated} updated, ${skipped} unchanged.`),
    errors.length > 0 &&
      h(
        "details",
        { open: errors.length <= 5 },
        h("summary", {}, plural(errors.length, "problem")),
        h("ul", {}, errors.map((e) => h("li", {}, `Line ${e.line}: ${e.message}`))),
      ),
  );
}

function importSection(csrfToken) {
  const status = h("div", { class: "import-status", role: "status", "aria-live": "polite" });
  const input = h("input", {
    type: "file",
    id: "import-file",
    name: "file",
    class: "file-input tap",
    accept: ".csv,.vcf,text/csv,text/vcard,text/x-vcard",
  });
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    input.disabled = true;
    mount(status, h("p", {}, `Importing ${file.name}…`));
    try {
      mount(status, summaryView(await upload(file, csrfToken)));
    } catch (err) {
      mount(status, h("p", { class: "error", role: "alert" }, err.message || "The import failed."));
    } finally {
      input.disabled = false;
      input.value = "";
    }
  });
  return h(
    "section",
    { class: "settings-block", "aria-labelledby": "import-heading" },
    h("h2", { id: "import-heading" }, "Import contacts"),
    h("label", { class: "label", htmlFor: "import-file" }, "Import contacts (CSV or vCard)"),
    input,
    h("p", { class: "hint" }, "Google or Outlook CSV, a spreadsheet saved as CSV, or a phone's .vcf file, up to 5 MB. Importing the same file again adds nobody twice."),
    status,
  );
}

function exportSection() {
  const link = (path, label, filename) =>
    h("a", { class: "btn tap", href: `${BASE}${path}`, download: filename }, label);
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
