// Sign-up and log-in screens.
import { h, mount, field } from "./dom.js";
import { authenticate } from "../session.js";
import { ApiError } from "../api.js";

function form(title, fields, button, path, bodyOf, after, footer) {
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn primary wide" }, button);
  const el = h("form", { class: "form auth" }, h("h2", {}, title), ...fields, error, submit, footer);
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      await authenticate(path, bodyOf(Object.fromEntries(new FormData(el))));
      after();
    } catch (err) {
      if (err instanceof ApiError) {
        const fieldMsgs = err.fields ? Object.values(err.fields).flat().join(" ") : "";
        error.textContent = fieldMsgs || err.message;
      } else {
        error.textContent = "Can't reach the server. Check your connection and try again.";
      }
    } finally {
      submit.disabled = false;
    }
  });
  return el;
}

export function renderLogin(view, { after, message = "" }) {
  mount(
    view,
    message && h("p", { class: "notice" }, message),
    form(
      "Log in",
      [
        field("Email", { name: "email", type: "email", required: true, autocomplete: "username" }),
        field("Password", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
      ],
      "Log in",
      "/auth/login",
      (d) => ({ email: d.email, password: d.password }),
      after,
      h("p", { class: "switch" }, "New here? ", h("a", { href: "#/signup" }, "Create an account")),
    ),
  );
}

export function renderSignup(view, { after }) {
  const timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  mount(
    view,
    form(
      "Create your account",
      [
        field("Name", { name: "name", required: true, autocomplete: "name" }),
        field("Email", { name: "email", type: "email", required: true, autocomplete: "username" }),
        field("Password", { name: "password", type: "password", required: true, minLength: 10, autocomplete: "new-password" }, "At least 10 characters."),
        h("p", { class: "muted" }, `Time zone: ${timezone} (you can change it in Settings).`),
      ],
      "Sign up",
      "/auth/register",
      (d) => ({ name: d.name, email: d.email, password: d.password, timezone }),
      after,
      h("p", { class: "switch" }, "Have an account? ", h("a", { href: "#/login" }, "Log in")),
    ),
  );
}
