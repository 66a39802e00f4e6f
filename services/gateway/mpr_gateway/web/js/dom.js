// DOM building without innerHTML: every string from the API becomes a text node, so keys,
// filenames and FFmpeg logs can never add markup or script to the page.

/** Only http(s) URLs, hash routes and same-origin paths may become links or media sources. */
export function safeUrl(url) {
  if (typeof url !== "string") return "#";
  if (url.startsWith("#") || (url.startsWith("/") && !url.startsWith("//"))) return url;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "#";
  } catch {
    return "#";
  }
}

const URL_PROPS = new Set(["href", "src"]);

/** h("a", {href, class}, "text", child...) builds an element; strings become text nodes. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (URL_PROPS.has(name)) el.setAttribute(name, safeUrl(String(value)));
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of ``el``. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A <dl> from [label, value] pairs (values: text or nodes; null shows a dash). */
export function kv(pairs) {
  const dl = h("dl", { class: "kv" });
  for (const [label, value] of pairs) dl.append(h("dt", {}, label), h("dd", {}, value ?? "—"));
  return dl;
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}
