// A tiny DOM builder: h('button', {class: 'x', onclick}, 'text', child). Text is always a
// text node: nothing user-supplied ever goes through innerHTML.

export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value)
    else if (key === 'class') el.className = value
    else if (key === 'dataset') Object.assign(el.dataset, value)
    else if (key === 'value') el.value = value
    else if (key === 'checked' || key === 'disabled' || key === 'selected') el[key] = Boolean(value)
    else el.setAttribute(key, value === true ? '' : String(value))
  }
  append(el, children)
  return el
}

const SVG_NS = 'http://www.w3.org/2000/svg'

/** `h` for SVG elements (attributes only, no event handlers): svg('rect', {x: 1, y: 2}). */
export function svg (tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag)
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue
    el.setAttribute(key, String(value))
  }
  append(el, children)
  return el
}

export function append (el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return el
}

export function clear (el) {
  while (el.firstChild) el.removeChild(el.firstChild)
  return el
}

/** Replace the children of `el` with `children`. */
export function fill (el, ...children) {
  return append(clear(el), children)
}

const PALETTE = ['#1d4ed8', '#b91c1c', '#047857', '#6d28d9', '#c2410c', '#be185d', '#0e7490', '#4d7c0f']

/** A stable colour per user (dark enough for white text: contrast ≥ 4.5:1). */
export function colorOf (userId) {
  let hash = 0
  for (const c of String(userId)) hash = (hash * 31 + c.codePointAt(0)) >>> 0
  return PALETTE[hash % PALETTE.length]
}

/** Full-jitter exponential backoff (AWS architecture blog): uniform in [0, min(cap, base·2^n)]. */
export function jitteredDelay (attempt, { baseMs = 500, capMs = 30000, random = Math.random } = {}) {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** attempt))
}
