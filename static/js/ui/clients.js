// Clients: instant local search, add and edit (offline too: the phone picks the id), archive.
import { h, mount, field } from "./dom.js";
import { state, activeClients, saveClient, changed } from "../data.js";
import * as outbox from "../outbox.js";
import { toast } from "./toast.js";

let query = "";
const TIER = /^tier[\s:_-]*([abc])$/i;

function matches(client, words) {
  const text = [client.name, client.company, client.email, client.phone, ...(client.tags || [])].join(" ").toLowerCase();
  const digits = text.replace(/[^\d]/g, "");
  return words.every((w) => text.includes(w) || (/^\d{3,}$/.test(w) && digits.includes(w)));
}

export function renderClients(view) {
  const list = h("ul", { class: "list client-list", "aria-label": "Clients" });
  const drawList = () => {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    const found = activeClients()
      .filter((c) => matches(c, words))
      .sort((a, b) => a.name.localeCompare(b.name));
    mount(
      list,
      found.length
        ? found.map((c) =>
            h(
              "li",
              { class: "row" },
              h(
                "a",
                { class: "row-main", href: `#/clients/${c.id}` },
                h("span", { class: "name" }, c.name),
                h("span", { class: "company" }, [c.company, c.phone].filter(Boolean).join(" · ") || "No phone yet"),
              ),
            ),
          )
        : h("li", { class: "empty" }, query ? "No client matches." : "No clients yet."),
    );
  };
  mount(
    view,
    h(
      "div",
      { class: "toolbar" },
      h("input", {
        type: "search",
        class: "search",
        placeholder: "Search clients",
        "aria-label": "Search clients",
        value: query,
        oninput: (ev) => { query = ev.target.value; drawList(); },
      }),
      h("a", { class: "btn primary", href: "#/clients/new" }, "Add client"),
    ),
    list,
  );
  drawList();
  return drawList;
}

function splitTags(tags) {
  let tier = "";
  const rest = [];
  for (const tag of tags || []) {
    const m = TIER.exec(tag.trim());
    if (m && !tier) tier = m[1].toUpperCase();
    else if (/^[abc]$/i.test(tag.trim()) && !tier) tier = tag.trim().toUpperCase();
    else rest.push(tag);
  }
  return { tier, rest };
}

export function renderEdit(view, { id = null } = {}) {
  const client = id ? state.clients.get(id) : null;
  if (id && !client) {
    mount(view, h("p", { class: "empty" }, "This client is not on this phone."));
    return null;
  }
  const c = client || {};
  const { tier, rest } = splitTags(c.tags);
  const tierSelect = h(
    "select",
    { name: "tier", id: "client-tier", "aria-describedby": "client-tier-hint" },
    [["", "No tier"], ["A", "A (most valued)"], ["B", "B"], ["C", "C"]].map(([v, label]) => h("option", { value: v, selected: v === tier }, label)),
  );
  const form = h(
    "form",
    { class: "form", novalidate: false },
    field("Name", { name: "name", required: true, value: c.name || "", autocomplete: "off" }),
    field("Phone", { name: "phone", type: "tel", value: c.phone || "", autocomplete: "off" }),
    field("Email", { name: "email", type: "email", value: c.email || "", autocomplete: "off" }),
    field("Company", { name: "company", value: c.company || "" }),
    field("Talking points", { tag: "textarea", name: "talking_points", rows: 3, value: c.talking_points || "" }),
    field("Notes", { tag: "textarea", name: "notes", rows: 3, value: c.notes || "" }),
    field("Tags", { name: "tags", value: rest.join(", ") }, "Separate tags with commas."),
    h(
      "div",
      { class: "field" },
      h("label", { class: "label", htmlFor: "client-tier" }, "Tier"),
      tierSelect,
      h("span", { class: "hint", id: "client-tier-hint" }, "Sets the check-in rhythm (A monthly, B quarterly, C twice a year)."),
    ),
    field("Check in every (days)", { name: "cadence_days", type: "number", min: 1, max: 3650, inputmode: "numeric", value: c.cadence_days ?? "" }, "Leave empty to follow the tier."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn primary wide" }, client ? "Save changes" : "Add client")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    save(form, client);
  });
  mount(
    view,
    form,
    client &&
      h(
        "div",
        { class: "danger-zone" },
        h("p", { class: "muted" }, "Archiving takes the client off your lists and cancels open callbacks. The call history stays."),
        h("button", { type: "button", class: "btn danger wide", onclick: () => archive(client) }, "Archive client"),
      ),
  );
  return null;
}

function formValues(form) {
  const data = Object.fromEntries(new FormData(form));
  const tags = data.tags.split(",").map((t) => t.trim()).filter(Boolean);
  if (data.tier) tags.push(`Tier ${data.tier}`);
  const text = (v) => (v.trim() ? v.trim() : null);
  return {
    name: data.name.trim(),
    phone: text(data.phone),
    email: text(data.email),
    company: text(data.company),
    talking_points: text(data.talking_points),
    notes: text(data.notes),
    tags,
    cadence_days: data.cadence_days ? Number(data.cadence_days) : null,
  };
}

function save(form, client) {
  if (!form.reportValidity()) return;
  const values = formValues(form);
  const now = new Date().toISOString();
  if (client) {
    const changes = {};
    for (const [k, v] of Object.entries(values)) {
      if (JSON.stringify(v) !== JSON.stringify(client[k] ?? (k === "tags" ? [] : null))) changes[k] = v;
    }
    if (Object.keys(changes).length) {
      saveClient({ ...client, ...changes, updated_at: now });
      outbox.add({ kind: "client_update", method: "PATCH", path: `/clients/${client.id}`, body: changes, label: `Edit ${values.name}` });
    }
    changed();
    location.hash = `#/clients/${client.id}`;
  } else {
    const id = crypto.randomUUID();
    const body = { id, ...values };
    saveClient({
      ...values,
      id,
      created_at: now,
      updated_at: now,
      archived_at: null,
      last_touch_at: null,
      last_reached_at: null,
      attempts_since_reached: 0,
      open_callback: null,
    });
    outbox.add({ kind: "client_create", method: "POST", path: "/clients", body, label: `Add ${values.name}` });
    changed();
    location.hash = `#/clients/${id}`;
  }
  outbox.flush();
}

function archive(client) {
  const now = new Date().toISOString();
  saveClient({ ...client, archived_at: now, open_callback: null, updated_at: now });
  for (const cb of state.callbacks.values()) {
    if (cb.client_id === client.id && cb.status === "open") state.callbacks.set(cb.id, { ...cb, status: "cancelled" });
  }
  outbox.add({ kind: "client_archive", method: "DELETE", path: `/clients/${client.id}`, body: null, label: `Archive ${client.name}` });
  changed();
  outbox.flush();
  location.hash = "#/clients";
  toast(`${client.name} archived.`);
}
