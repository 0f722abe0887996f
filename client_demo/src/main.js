// Atelier's demo web client: a hash router over four screens (demo sign-in, "Mes
// espaces", a room, a teacher's class page), the page shell and the language switch.

import './style.css'
import { ApiError, adoptEntSession, api, endEntSession, session } from './api.js'
import { h, fill } from './dom.js'
import { getLang, setLang, t } from './i18n.js'
import { renderSignin } from './screens/signin.js'
import { renderSpaces } from './screens/spaces.js'
import { renderRoom } from './screens/room.js'
import { renderClass } from './screens/classpage.js'
import { renderTodo } from './screens/todo.js'
import { renderAssignments } from './screens/assignments.js'
import { renderAssignment } from './screens/assignment.js'
import { renderRendu } from './screens/rendu.js'
import { renderGroups } from './screens/groupspage.js'
import { renderAdmin } from './screens/admin.js'
import { renderMyData } from './screens/mydata.js'
import { bell, startNotifications, stopNotifications } from './notifications.js'

const app = document.getElementById('app')
let current = null // the mounted screen: {destroy?(), title}
let renderSeq = 0

function parseRoute () {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
  if (parts[0] === 'room' && parts[1]) return { name: 'room', room: parts[1], doc: parts[2] || 'rapport' }
  if (parts[0] === 'class' && parts[1] && parts[2] === 'travaux') return { name: 'assignments', classId: parts[1] }
  if (parts[0] === 'class' && parts[1] && parts[2] === 'groupes') return { name: 'groups', classId: parts[1] }
  if (parts[0] === 'class' && parts[1]) return { name: 'class', classId: parts[1] }
  if (parts[0] === 'admin') return { name: 'admin' }
  if (parts[0] === 'donnees') return { name: 'mydata' }
  if (parts[0] === 'todo') return { name: 'todo', child: parts[1] ?? null }
  if (parts[0] === 'assignment' && parts[1]) return { name: 'assignment', assignmentId: parts[1], work: parts[2] ?? null }
  if (parts[0] === 'work' && parts[1]) return { name: 'rendu', workId: parts[1] }
  if (parts[0] === 'signin') return { name: 'signin' }
  return { name: 'spaces' }
}

export function go (hash) {
  if (location.hash === hash) render()
  else location.hash = hash
}

export async function signOut (message) {
  stopNotifications()
  // Signed in through the ENT: end the server's session too (its tokens die with it).
  if (session.isEnt()) await endEntSession()
  session.clear()
  go('#/signin')
  if (message) sessionStorage.setItem('atelier.notice', message)
}

// The ENT session ended elsewhere (signed out in another tab, expired): back to sign-in.
window.addEventListener('atelier:session-ended', () => { if (session.token()) signOut(t('error.session')) })

function shell (route) {
  const me = session.get()?.me
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '#/' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'A'), t('app.name')),
    me && h('nav', { class: 'topnav', 'aria-label': t('nav.label') },
      h('a', { href: '#/', 'aria-current': route.name === 'spaces' ? 'page' : undefined }, t('nav.spaces')),
      (me.role === 'student' || me.role === 'parent') &&
        h('a', { href: '#/todo', id: 'nav-todo', 'aria-current': route.name === 'todo' ? 'page' : undefined }, me.role === 'parent' ? t('nav.children') : t('nav.todo')),
      me.role === 'admin' &&
        h('a', { href: '#/admin', id: 'nav-admin', 'aria-current': route.name === 'admin' ? 'page' : undefined }, t('nav.admin')),
      h('a', { href: '#/donnees', id: 'nav-data', 'aria-current': route.name === 'mydata' ? 'page' : undefined }, me.role === 'admin' ? t('nav.dataAdmin') : t('nav.data'))),
    h('div', { class: 'topbar-end' },
      me && bell(),
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
  if (session.token()) startNotifications()
  const main = shell(route)
  main.append(h('p', { class: 'loading', role: 'status' }, t('loading')))
  try {
    let screen
    if (route.name === 'signin') screen = await renderSignin(main, { go })
    else if (route.name === 'spaces') screen = await renderSpaces(main, { go })
    else if (route.name === 'room') screen = await renderRoom(main, { go, signOut, reload: () => render(true), room: route.room, doc: route.doc })
    else if (route.name === 'class') screen = await renderClass(main, { go, classId: route.classId })
    else if (route.name === 'assignments') screen = await renderAssignments(main, { go, classId: route.classId })
    else if (route.name === 'assignment') screen = await renderAssignment(main, { go, assignmentId: route.assignmentId, work: route.work })
    else if (route.name === 'admin') screen = await renderAdmin(main, { go })
    else if (route.name === 'mydata') screen = await renderMyData(main, { go })
    else if (route.name === 'groups') screen = await renderGroups(main, { go, classId: route.classId })
    else if (route.name === 'todo') screen = await renderTodo(main, { go, child: route.child })
    else if (route.name === 'rendu') screen = await renderRendu(main, { go, workId: route.workId })
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
// A tab of a browser signed in through the ENT gets its token before the first screen.
adoptEntSession().finally(() => render())

// Re-check the session at each render is cheap; keep a hook for tests and debugging.
export const _debug = { render, get current () { return current } }
window.__atelier = _debug
export { api }
