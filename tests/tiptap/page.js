// A Tiptap editor as an ENT page would embed one: the Collaboration extension over the
// stock @hocuspocus/provider, all the page's docs on one socket. The test sets
// window.ATELIER = {url, token, docs: [name, ...]} before the page loads; the page puts
// one editor per doc in #editors and reports on window.report (scope, synced, failures).
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import * as Y from 'yjs'

const { url, token, docs } = window.ATELIER
let socketsOpened = 0
class CountingWebSocket extends WebSocket {
  constructor (...args) { super(...args); socketsOpened += 1 }
}
const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: CountingWebSocket })
window.report = { docs: {}, get socketsOpened () { return socketsOpened } }
window.editors = {}

for (const name of docs) {
  const state = window.report.docs[name] = { scope: null, synced: false, failed: null }
  const ydoc = new Y.Doc()
  const holder = document.createElement('div')
  holder.className = 'editor'
  holder.dataset.doc = name
  document.getElementById('editors').append(holder)
  const editor = new Editor({
    element: holder,
    extensions: [StarterKit.configure({ undoRedo: false }), Collaboration.configure({ document: ydoc })]
  })
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name,
    document: ydoc,
    token,
    onAuthenticated: ({ scope }) => {
      state.scope = scope
      editor.setEditable(scope === 'read-write') // a readonly doc is shown, not editable
    },
    onAuthenticationFailed: ({ reason }) => { state.failed = reason },
    onSynced: () => { state.synced = true }
  })
  provider.attach()
  state.unsynced = () => provider.unsyncedChanges
  window.editors[name] = editor
}
