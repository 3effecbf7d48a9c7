// A tiny element builder: h("button", {class: "big", onclick}, "Call"). No innerHTML anywhere,
// so names and notes can never inject markup.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && key !== "list" && key !== "form") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function mount(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
  return parent;
}

let fieldCount = 0;

/** A labelled form field: the label names the control, the hint describes it. */
export function field(label, props = {}, hint = null) {
  fieldCount += 1;
  const id = props.id || `f${fieldCount}`;
  const hintId = hint ? `${id}-hint` : null;
  const control = h(props.tag || "input", { ...props, tag: null, id, "aria-describedby": hintId });
  return h(
    "div",
    { class: "field" },
    h("label", { class: "label", htmlFor: id }, label),
    control,
    hint && h("span", { class: "hint", id: hintId }, hint),
  );
}
