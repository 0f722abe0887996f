#!/usr/bin/env node
// Real Yjs updates for the attribution tests: stock `yjs` docs, one per user, each with a
// fixed client id, play a script of edits; every local transaction's update is recorded
// (with who made it) and delivered to the other docs, as a server would relay it.
//
//   kind "text": Y.Text "content"
//   kind "xml":  Y.XmlFragment "default" written the way Tiptap (y-prosemirror) writes it:
//                one Y.XmlElement per block (paragraph, heading with a `level` attribute…)
//                holding one Y.XmlText whose marks are formatting attributes ({bold: {}}).
//
// Positions are in code points (converted here to Yjs' UTF-16 indexes). Ops:
//   {who, op: "type", pos, text, [block], [marks]}   one transaction per code point typed
//   {who, op: "paste", pos, text, [block], [marks]}  the whole text in one transaction
//   {who, op: "delete", pos, len, [block]}           one transaction
//   {who, op: "format", pos, len, marks, [block]}
//   {who, op: "block", at, tag, [attrs], [text], [marks]}    xml: a new block (one transaction)
//   {who, op: "unblock", at}                         xml: delete a whole block
//   {who, op: "tree", at, node}                      xml: a whole block built as y-prosemirror
//        does (prelim types filled before insertion); node = {tag, attrs, children} or
//        {text: [[string, marks], …]}
//   {who, op: "offline"} / {who, op: "online"}       stop / resume delivery to and from `who`
//                                                    (on "online" both sides exchange diffs)
//
// Configuration: JSON in env INTEROP_CONFIG: {kind, clients: {user: clientId}, ops}.
// Prints {updates: [{who, hex}], state: hex, stateVector: hex, text, xml} on stdout
// (state, text and xml of the first user's doc, after every doc has converged).

import * as Y from 'yjs'

const config = JSON.parse(process.env.INTEROP_CONFIG ?? '{}')
const kind = config.kind ?? 'text'
const users = Object.keys(config.clients ?? {})
if (users.length === 0) {
  console.error('no clients')
  process.exit(2)
}

const docs = new Map()
const offline = new Set()
const updates = []

for (const user of users) {
  const doc = new Y.Doc()
  doc.clientID = config.clients[user]
  docs.set(user, doc)
}
for (const [user, doc] of docs) {
  doc.on('update', (update, origin) => {
    // An offline user's edits reach the others (and the log) in its diff on "online".
    if (origin === 'remote' || offline.has(user)) return
    updates.push({ who: user, hex: Buffer.from(update).toString('hex') })
    for (const [other, otherDoc] of docs) {
      if (other !== user && !offline.has(other)) Y.applyUpdate(otherDoc, update, 'remote')
    }
  })
}

const root = (doc) => (kind === 'xml' ? doc.getXmlFragment('default') : doc.getText('content'))

function target (doc, op) {
  if (kind !== 'xml') return root(doc)
  const block = root(doc).get(op.block ?? 0)
  return block.get(0)
}

// A code point position in `str` as a UTF-16 index.
const utf16 = (str, pos) => Array.from(str).slice(0, pos).join('').length

function play (op) {
  const doc = docs.get(op.who)
  if (op.op === 'offline') {
    offline.add(op.who)
    return
  }
  if (op.op === 'online') {
    offline.delete(op.who)
    for (const [other, otherDoc] of docs) {
      if (other === op.who || offline.has(other)) continue
      // Each side sends what the other lacks, as y-websocket's sync step 2 does; the
      // update the reconnecting user sends is recorded as theirs.
      const mine = Y.encodeStateAsUpdate(doc, Y.encodeStateVector(otherDoc))
      const theirs = Y.encodeStateAsUpdate(otherDoc, Y.encodeStateVector(doc))
      updates.push({ who: op.who, hex: Buffer.from(mine).toString('hex') })
      Y.applyUpdate(otherDoc, mine, 'remote')
      Y.applyUpdate(doc, theirs, 'remote')
    }
    return
  }
  if (op.op === 'block') {
    doc.transact(() => {
      const el = new Y.XmlElement(op.tag ?? 'paragraph')
      for (const [k, v] of Object.entries(op.attrs ?? {})) el.setAttribute(k, v)
      const text = new Y.XmlText()
      el.insert(0, [text])
      root(doc).insert(op.at ?? root(doc).length, [el])
      if (op.text) text.insert(0, op.text, op.marks ?? {})
    })
    return
  }
  if (op.op === 'tree') {
    doc.transact(() => root(doc).insert(op.at ?? root(doc).length, [build(op.node)]))
    return
  }
  if (op.op === 'unblock') {
    root(doc).delete(op.at, 1)
    return
  }
  const t = target(doc, op)
  const str = kind === 'xml' ? deltaText(t) : t.toString()
  if (op.op === 'type') {
    let pos = op.pos
    for (const ch of Array.from(op.text)) {
      const cur = kind === 'xml' ? deltaText(t) : t.toString()
      if (kind === 'xml') t.insert(utf16(cur, pos), ch, op.marks ?? {})
      else if (op.marks) t.insert(utf16(cur, pos), ch, op.marks)
      else t.insert(utf16(cur, pos), ch)
      pos += 1
    }
  } else if (op.op === 'paste') {
    if (kind === 'xml' || op.marks) t.insert(utf16(str, op.pos), op.text, op.marks ?? {})
    else t.insert(utf16(str, op.pos), op.text)
  } else if (op.op === 'delete') {
    const start = utf16(str, op.pos)
    t.delete(start, utf16(str, op.pos + op.len) - start)
  } else if (op.op === 'format') {
    const start = utf16(str, op.pos)
    t.format(start, utf16(str, op.pos + op.len) - start, op.marks)
  } else {
    console.error(`unknown op ${op.op}`)
    process.exit(2)
  }
}

function build (node) {
  if (node.text !== undefined) {
    const text = new Y.XmlText()
    text.applyDelta(node.text.map(([insert, marks]) => (marks ? { insert, attributes: marks } : { insert })))
    return text
  }
  const el = new Y.XmlElement(node.tag)
  for (const [k, v] of Object.entries(node.attrs ?? {})) el.setAttribute(k, v)
  el.insert(0, (node.children ?? []).map(build))
  return el
}

// The plain characters of a Y.Text / Y.XmlText (toString of an XmlText renders marks).
const deltaText = (t) => t.toDelta().map((d) => (typeof d.insert === 'string' ? d.insert : '')).join('')

for (const op of config.ops ?? []) play(op)

const first = docs.get(users[0])
const out = {
  updates,
  state: Buffer.from(Y.encodeStateAsUpdate(first)).toString('hex'),
  stateVector: Buffer.from(Y.encodeStateVector(first)).toString('hex'),
  text: kind === 'xml' ? null : root(first).toString(),
  xml: kind === 'xml' ? root(first).toString() : null
}
for (const doc of docs.values()) {
  if (Buffer.compare(Y.encodeStateVector(doc), Y.encodeStateVector(first)) !== 0) {
    console.error('the docs did not converge (a user left offline?)')
    process.exit(1)
  }
}
process.stdout.write(JSON.stringify(out))
