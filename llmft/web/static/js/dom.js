// Building the page: elements from data (text is always inserted as text, never parsed as markup),
// error boxes that show the server's message, and number and time formatting.
import { t } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  appendAll(el, children);
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttributes(el, attrs);
  appendAll(el, children);
  return el;
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

export function table(columns, rows, { empty = t("nothing_yet"), rowAttrs } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", {}, label)))),
    h("tbody", {}, rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {},
      columns.map(([, cell]) => h("td", {}, cell(row))))))));
}

export function errorBox(error) {
  const details = error.details && Object.keys(error.details).filter((k) => k !== "report").length
    ? h("details", {}, h("summary", {}, t("details")), h("pre", {}, JSON.stringify(error.details, null, 2)))
    : null;
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, error.status ? `${error.status} ${error.code}` : error.code || t("error")), " ",
    h("span", { class: "message" }, error.message), details);
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

export function link(href, text) {
  return h("a", { href }, text);
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function num(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString();
  const size = Math.abs(value);
  return size !== 0 && (size < 1e-3 || size >= 1e6) ? value.toExponential(2) : value.toPrecision(digits).replace(/\.?0+$/, "");
}

export function percent(share) {
  return share === null || share === undefined ? "—" : `${(100 * share).toFixed(1)}%`;
}

// Replace an element's children (nested lists flattened, null and false left out).
export function fill(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
  return el;
}
