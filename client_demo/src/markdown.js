// The small markdown subset of chat messages (docs/protocol.md, "Text"), parsed into flat
// tokens and rendered into DOM nodes — never through innerHTML: HTML in a message is text.
//
// The subset:
//   **bold**   *italic*   `code`   bare https:// URLs   newlines
// Spans do not nest (the inside of a span is plain text); a marker without its closing
// partner on the same line stays text. Only `https://` URLs become links (as the spec
// says); the renderer additionally refuses any href that is not http(s).

/**
 * @typedef {{type: 'text'|'bold'|'italic'|'code'|'break', text: string}
 *         | {type: 'link', text: string, href: string}} Token
 */

const URL_START = /^https:\/\//i
// A URL runs until whitespace or a character that never belongs in a bare link here.
const URL_BODY = /^[^\s<>"`]+/
const TRAILING = /[.,;:!?'*]+$/

/**
 * Split a message into tokens. Adjacent text is merged; `break` stands for a newline.
 * @param {string} text
 * @returns {Token[]}
 */
export function parseMessage (text) {
  const source = String(text ?? '').replace(/\r\n?/g, '\n')
  /** @type {Token[]} */
  const tokens = []
  let buffer = ''
  const flush = () => {
    if (buffer) tokens.push({ type: 'text', text: buffer })
    buffer = ''
  }
  const push = (token) => { flush(); tokens.push(token) }
  // The end of the line starting the search at `from`: spans never cross a newline.
  const lineEnd = (from) => {
    const n = source.indexOf('\n', from)
    return n === -1 ? source.length : n
  }

  let i = 0
  while (i < source.length) {
    const c = source[i]
    if (c === '\n') {
      push({ type: 'break', text: '\n' })
      i += 1
      continue
    }
    if (c === '`') {
      const j = source.indexOf('`', i + 1)
      if (j > i + 1 && j < lineEnd(i)) {
        push({ type: 'code', text: source.slice(i + 1, j) })
        i = j + 1
        continue
      }
      buffer += c
      i += 1
      continue
    }
    if (c === '*' && source[i + 1] === '*') {
      const end = lineEnd(i)
      const j = source.indexOf('**', i + 2)
      const inner = j === -1 ? '' : source.slice(i + 2, j)
      if (j !== -1 && j < end && inner.trim() && inner === inner.trim()) {
        push({ type: 'bold', text: inner })
        i = j + 2
        continue
      }
      buffer += '**'
      i += 2
      continue
    }
    if (c === '*') {
      const end = lineEnd(i)
      let j = source.indexOf('*', i + 1)
      while (j !== -1 && j < end && source[j + 1] === '*') j = source.indexOf('*', j + 2)
      const inner = j === -1 ? '' : source.slice(i + 1, j)
      if (j !== -1 && j < end && inner.trim() && inner === inner.trim()) {
        push({ type: 'italic', text: inner })
        i = j + 1
        continue
      }
      buffer += c
      i += 1
      continue
    }
    if ((c === 'h' || c === 'H') && URL_START.test(source.slice(i, i + 8)) &&
        (i === 0 || !/[\p{L}\p{N}_]/u.test(source[i - 1]))) {
      const link = readUrl(source.slice(i))
      if (link) {
        push({ type: 'link', text: link, href: new URL(link).href })
        i += link.length
        continue
      }
    }
    buffer += c
    i += 1
  }
  flush()
  return tokens
}

/** The URL at the start of `rest`, without trailing punctuation; null when not a valid URL. */
function readUrl (rest) {
  let url = (URL_BODY.exec(rest) || [''])[0].replace(TRAILING, '')
  // A closing parenthesis belongs to the URL only when it has its opening partner inside.
  while (url.endsWith(')') && count(url, '(') < count(url, ')')) {
    url = url.slice(0, -1).replace(TRAILING, '')
  }
  if (url.length <= 'https://'.length) return null
  try {
    const parsed = new URL(url)
    return parsed.protocol === 'https:' && parsed.hostname ? url : null
  } catch {
    return null
  }
}

function count (s, ch) {
  let n = 0
  for (const x of s) if (x === ch) n++
  return n
}

/** `href` when it is an absolute http(s) URL, otherwise null. */
export function safeHref (href) {
  try {
    const url = new URL(String(href))
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null
  } catch {
    return null
  }
}

/**
 * Render a message as DOM nodes: `<strong>`, `<em>`, `<code>`, `<a>` (rel="noopener
 * noreferrer", target="_blank", http(s) hrefs only) and `<br>`, every piece of text a
 * text node. Built with createElement/createTextNode only — HTML in the text stays text.
 * @param {string} text
 * @param {Document} [doc=globalThis.document]
 * @returns {DocumentFragment}
 */
export function renderMessage (text, doc = globalThis.document) {
  if (!doc || typeof doc.createElement !== 'function') {
    throw new TypeError('renderMessage needs a document (pass one outside a browser)')
  }
  const fragment = doc.createDocumentFragment()
  const wrap = (tag, content) => {
    const element = doc.createElement(tag)
    element.appendChild(doc.createTextNode(content))
    return element
  }
  for (const token of parseMessage(text)) {
    switch (token.type) {
      case 'bold': fragment.appendChild(wrap('strong', token.text)); break
      case 'italic': fragment.appendChild(wrap('em', token.text)); break
      case 'code': fragment.appendChild(wrap('code', token.text)); break
      case 'break': fragment.appendChild(doc.createElement('br')); break
      case 'link': {
        const href = safeHref(token.href)
        if (href === null) {
          fragment.appendChild(doc.createTextNode(token.text))
          break
        }
        const a = wrap('a', token.text)
        a.setAttribute('href', href)
        a.setAttribute('rel', 'noopener noreferrer')
        a.setAttribute('target', '_blank')
        fragment.appendChild(a)
        break
      }
      default: fragment.appendChild(doc.createTextNode(token.text))
    }
  }
  return fragment
}
