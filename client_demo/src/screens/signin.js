// Sign-in. When the server offers it (GET /auth/session: oidc), "Se connecter avec
// l'ENT" goes through the ENT's OpenID provider (GET /auth/login); back here, main.js's
// adoptEntSession mints the tab's token. Demo sign-in: pick a person of the demo school
// (only when GET /api/demo/users answers), get a token (POST /api/demo/token), keep it in
// sessionStorage. Without demo mode, a token can also be pasted.

import { ApiError, api, authStatus, entLoginUrl, session } from '../api.js'
import { h } from '../dom.js'
import { t } from '../i18n.js'

const FEATURED = ['t-martin', 's-01', 's-02', 'p-01']

export async function renderSignin (main, { go }) {
  const notice = sessionStorage.getItem('atelier.notice')
  sessionStorage.removeItem('atelier.notice')
  const { oidc } = await authStatus()
  let users = null
  try {
    users = (await api('/api/demo/users', { auth: false })).users
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error
  }
  const status = h('p', { class: 'form-error', role: 'alert', 'aria-live': 'assertive' })

  async function signIn (userId) {
    status.textContent = ''
    try {
      const { token } = await api('/api/demo/token', { method: 'POST', body: { user: userId }, auth: false })
      session.set({ token })
      const me = await api('/api/me')
      session.set({ token, me })
      go('#/')
    } catch (error) {
      session.clear()
      status.textContent = t('signin.error', { error: error.message })
    }
  }

  const card = h('section', { class: 'card signin', 'aria-labelledby': 'signin-title' })
  const title = users ? t('signin.title') : oidc ? t('signin.entTitle') : t('app.name')
  main.replaceChildren(h('div', { class: 'narrow' },
    h('h1', { id: 'signin-title', tabindex: '-1' }, title),
    notice && h('p', { class: 'banner banner-warn', role: 'status' }, notice),
    card))

  if (oidc) {
    card.append(
      h('p', {}, t('signin.entIntro')),
      h('p', {}, h('a', { id: 'ent-signin', class: 'btn btn-primary', href: entLoginUrl() }, t('signin.ent'))),
      h('p', {}, users ? t('signin.entOr') : t('signin.orToken')))
  }

  if (!users) {
    const input = h('textarea', { id: 'token', name: 'token', rows: '4', required: true, autocomplete: 'off', spellcheck: 'false' })
    card.append(
      ...(oidc ? [] : [h('p', {}, t('signin.noDemo'))]),
      h('form', {
        onsubmit: async (e) => {
          e.preventDefault()
          session.set({ token: input.value.trim() })
          try {
            session.set({ token: input.value.trim(), me: await api('/api/me') })
            go('#/')
          } catch (error) {
            session.clear()
            status.textContent = t('signin.error', { error: error.message })
          }
        }
      }, h('label', { for: 'token' }, t('signin.token')), input, status,
      h('button', { type: 'submit', class: 'btn btn-primary' }, t('signin.tokenSubmit'))))
    return { title }
  }

  const byRole = { teacher: [], student: [], parent: [], other: [] }
  for (const u of users) (byRole[u.role] ?? byRole.other).push(u)
  const label = (u) => `${u.name} — ${u.id} (${t('role.' + u.role)})`
  const select = h('select', { id: 'demo-user', name: 'user', required: true },
    [['teacher', 'signin.teachers'], ['student', 'signin.students'], ['parent', 'signin.parents'], ['other', 'signin.others']]
      .filter(([role]) => byRole[role].length)
      .map(([role, key]) => h('optgroup', { label: t(key) }, byRole[role].map((u) => h('option', { value: u.id }, label(u))))))
  if (users.some((u) => u.id === 's-01')) select.value = 's-01'
  const featured = FEATURED.map((id) => users.find((u) => u.id === id)).filter(Boolean)

  card.append(
    h('p', {}, t('signin.intro')),
    featured.length > 0 && h('ul', { class: 'quick', 'aria-label': t('signin.user') },
      featured.map((u) => h('li', {}, h('button', {
        type: 'button', class: 'btn btn-tile', 'data-user': u.id, onclick: () => signIn(u.id)
      }, h('span', { class: 'tile-name' }, u.name), h('span', { class: 'tile-role' }, `${t('role.' + u.role)} · ${u.id}`))))),
    h('form', { class: 'row-form', onsubmit: (e) => { e.preventDefault(); signIn(select.value) } },
      h('div', { class: 'field' }, h('label', { for: 'demo-user' }, t('signin.user')), select),
      h('button', { type: 'submit', class: 'btn btn-primary' }, t('signin.submit'))),
    status)
  return { title: t('signin.title') }
}
