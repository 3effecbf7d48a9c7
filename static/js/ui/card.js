// A client's card: everything that gives the rep a reason to call, and the buttons to act.
import { h, mount } from "./dom.js";
import { state, prefs, touchesFor, mergeServer, changed } from "../data.js";
import { formatDue, effectiveCadence, cadenceName } from "../rules.js";
import { persistenceText, repPrompts } from "../habit.js";
import { api } from "../api.js";
import { dialLink } from "./dial.js";
import { openSheet } from "./sheet.js";
import { OUTCOME_LABELS } from "../log.js";

function section(title, ...content) {
  return h("section", { class: "card-section" }, h("h3", {}, title), ...content);
}

function when(iso) {
  const { timezone } = prefs();
  return formatDue(iso, { now: new Date(), timezone });
}

async function fetchHistory(clientId) {
  try {
    const page = await api("GET", `/clients/${clientId}/touches?limit=20`);
    const fresh = page.items.filter((t) => !state.touches.has(t.id) || state.touches.get(t.id).local);
    if (fresh.length) {
      await mergeServer("touches", fresh);
      changed();
    }
  } catch {
    // Offline or not synced yet: the local history is what we have.
  }
}

/** Something to say before dialling: the client's talking points, else the rep's prompts. */
function reasonsToCall(client) {
  if (client.talking_points) return section("Talking points", h("p", { class: "prose", id: "talking-points" }, client.talking_points));
  return h(
    "section",
    { class: "card-section prompts", "aria-labelledby": "prompts-title" },
    h("h3", { id: "prompts-title" }, "Ideas to open with"),
    h("ul", { class: "prompt-list" }, repPrompts(state.me).map((p) => h("li", {}, p))),
    h(
      "p",
      { class: "muted small" },
      "No talking points for this client yet. Jot one after the call, or ",
      !client.archived_at ? h("a", { href: `#/clients/${client.id}/edit` }, "add them now") : "edit the client",
      ".",
    ),
  );
}

export function renderCard(view, { id }) {
  fetchHistory(id);
  const draw = () => {
    const client = state.clients.get(id);
    if (!client) {
      mount(view, h("div", { class: "empty" }, h("p", {}, "This client is not on this phone."), h("a", { class: "btn", href: "#/clients" }, "All clients")));
      return;
    }
    const history = touchesFor(id);
    const lastNote = history.find((t) => t.note);
    const cb = client.open_callback;
    const { tiers } = prefs();
    const cadence = effectiveCadence(client.cadence_days, client.tags || [], tiers);
    const tries = persistenceText(client.attempts_since_reached || 0);
    mount(
      view,
      h(
        "div",
        { class: "card-head" },
        h("h2", { class: "card-name" }, client.name),
        client.company && h("p", { class: "company" }, client.company),
        client.archived_at && h("p", { class: "badge" }, "Archived"),
        tries && h("p", { class: "tries" }, tries),
      ),
      h(
        "div",
        { class: "card-actions" },
        client.phone && dialLink(client, `Call ${client.phone}`, "btn call big"),
        h("button", { type: "button", class: "btn primary big", onclick: () => openSheet(id) }, "Log a call"),
      ),
      cb && section("Promised callback", h("p", {}, when(cb.due_at))),
      reasonsToCall(client),
      lastNote && section("Last note", h("p", { class: "prose" }, lastNote.note), h("p", { class: "muted" }, when(lastNote.happened_at))),
      section(
        "Contact",
        h(
          "dl",
          { class: "facts" },
          client.phone && [h("dt", {}, "Phone"), h("dd", {}, h("a", { href: `tel:${client.phone}` }, client.phone))],
          client.email && [h("dt", {}, "Email"), h("dd", {}, h("a", { href: `mailto:${client.email}` }, client.email))],
          client.company && [h("dt", {}, "Company"), h("dd", {}, client.company)],
          cadence && [h("dt", {}, "Check-in"), h("dd", {}, cadenceName(cadence) || `Every ${cadence} days`)],
          (client.tags || []).length > 0 && [h("dt", {}, "Tags"), h("dd", {}, client.tags.join(", "))],
        ),
      ),
      client.notes && section("Notes", h("p", { class: "prose" }, client.notes)),
      section(
        "Recent calls",
        history.length
          ? h(
              "ul",
              { class: "history" },
              history.slice(0, 10).map((t) =>
                h(
                  "li",
                  {},
                  h("span", { class: `outcome-tag ${t.outcome}` }, OUTCOME_LABELS[t.outcome] || t.outcome),
                  h("span", { class: "muted" }, ` ${when(t.happened_at)}`),
                  t.note && h("p", { class: "prose" }, t.note),
                ),
              ),
            )
          : h("p", { class: "muted" }, "Never contacted."),
      ),
      !client.archived_at && h("div", { class: "row-actions" }, h("a", { class: "btn ghost", href: `#/clients/${id}/edit` }, "Edit or archive")),
    );
  };
  draw();
  return draw;
}
