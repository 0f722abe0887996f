// Atelier's demo web client: a hash router over four screens (demo sign-in, "Mes
// espaces", a room, a teacher's class page), the page shell and the language switch.

import './style.css'
import { ApiError, api, session } from './api.js'
import { h, fill } from './dom.js'
import { getLang, setLang, t } from './i18n.js'
import { renderSignin } from './screens/signin.js'
import { renderSpaces } from './screens/spaces.js'
import { renderRoom } from './screens/room.js'
import { renderClass } from './screens/classpage.js'

const app = document.getElementById('app')
let current = null // the mounted screen: {destroy?(), title}
let renderSeq = 0

function parseRoute () {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
  if (parts[0] === 'room' && parts[1]) return { name: 'room', room: parts[1], doc: parts[2] || 'rapport' }
  if (parts[0] === 'class' && parts[1]) return { name: 'class', classId: parts[1] }
  if (parts[0] === 'signin') return { name: 'signin' }
  return { name: 'spaces' }
}

export function go (hash) {
  if (location.hash === hash) render()
  else location.hash = hash
}

export function signOut (message) {
  session.clear()
  go('#/signin')
  if (message) sessionStorage.setItem('atelier.notice', message)
}

function shell (route) {
  const me = session.get()?.me
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '#/' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'A'), t('app.name')),
    me && h('nav', { class: 'topnav', 'aria-label': t('nav.label') },
      h('a', { href: '#/', 'aria-current': route.name === 'spaces' ? 'page' : undefined }, t('nav.spaces'))),
    h('div', { class: 'topbar-end' },
      me && h('span', { class: 'whoami' }, h('span', { class: 'avatar', 'aria-hidden': 'true' }, me.display_name.slice(0, 1)),
        h('span', {}, me.display_name, ' ', h('span', { class: 'muted-text' }, `(${t('role.' + me.role)})`))),
      h('button', {
        type: 'button', class: 'btn btn-ghost', lang: getLang() === 'fr' ? 'en' : 'fr',
        'aria-label': t('lang.switchLabel'),
        onclick: () => { setLang(getLang() === 'fr' ? 'en' : 'fr'); render(true) }
      }, t('lang.switch')),
      me && h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => signOut() }, t('nav.signout'))))
  const main = h('main', { id: 'main', tabindex: '-1' })
  const footer = h('footer', { class: 'footer' }, h('p', {}, 'Atelier — ', t('app.tagline')))
  fill(app, header, main, footer)
  const skip = document.querySelector('.skip-link')
  if (skip) skip.textContent = t('skip')
  return main
}

let currentRoute = null

async function render (force = false) {
  const seq = ++renderSeq
  const next = parseRoute()
  // Another doc of the same room: the room screen switches docs, keeping chat and presence.
  if (!force && next.name === 'room' && currentRoute?.name === 'room' && currentRoute.room === next.room &&
      current?.openDoc && session.token()) {
    currentRoute = next
    current.openDoc(next.doc)
    document.title = `${current.title} — ${t('app.name')}`
    return
  }
  currentRoute = next
  if (current?.destroy) { try { current.destroy() } catch (e) { console.error(e) } }
  current = null
  document.documentElement.lang = getLang()
  let route = parseRoute()
  if (!session.token() && route.name !== 'signin') { route = { name: 'signin' } }
  const main = shell(route)
  main.append(h('p', { class: 'loading', role: 'status' }, t('loading')))
  try {
    let screen
    if (route.name === 'signin') screen = await renderSignin(main, { go })
    else if (route.name === 'spaces') screen = await renderSpaces(main, { go })
    else if (route.name === 'room') screen = await renderRoom(main, { go, signOut, room: route.room, doc: route.doc })
    else if (route.name === 'class') screen = await renderClass(main, { go, classId: route.classId })
    if (seq !== renderSeq) { screen?.destroy?.(); return }
    current = screen
    document.title = `${screen?.title ? screen.title + ' — ' : ''}${t('app.name')}`
  } catch (error) {
    if (seq !== renderSeq) return
    if (error instanceof ApiError && error.status === 401) {
      signOut(t('error.session'))
      return
    }
    console.error(error)
    const message = error instanceof ApiError
      ? (error.status === 403 ? t('error.forbidden') : error.status === 0 ? t('error.network') : error.message)
      : String(error?.message ?? error)
    fill(main, h('h1', { tabindex: '-1' }, t('error.title')),
      h('p', { class: 'banner banner-error', role: 'alert' }, message),
      h('p', {}, h('a', { href: '#/' }, t('nav.spaces'))))
    document.title = `${t('error.title')} — ${t('app.name')}`
  }
  // Move focus to the new screen's heading, so keyboard and screen-reader users start there.
  const heading = main.querySelector('h1')
  if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true })
  else if (heading && !main.contains(document.activeElement)) heading.focus({ preventScroll: true })
}

window.addEventListener('hashchange', () => render())
// The skip link must not touch the hash (the router owns it): it moves the focus instead.
document.querySelector('.skip-link')?.addEventListener('click', (e) => {
  e.preventDefault()
  document.getElementById('main')?.focus()
})
render()

// Re-check the session at each render is cheap; keep a hook for tests and debugging.
export const _debug = { render, get current () { return current } }
window.__atelier = _debug
export { api }
