// The browser suite: Playwright driving Debian's Chromium against a real Atelier server
// in demo mode. Started by tests/browser/test_client.py; the runner, the results file and
// the page helpers are in helpers.mjs.

import {
  BASE, T, VIEWPORT, assert, axe, browser, consoleProblems, docText, openRoom,
  run, scenario, shot, signInDemo, switchDoc, typeInEditor, waitSaved
} from './helpers.mjs'

async function newUser (userId, { path: start = '/' } = {}) {
  const person = await signInDemo(userId)
  const { page } = person
  if (start !== '/') {
    await page.evaluate((hash) => { location.hash = hash }, start)
  }
  return person
}

// ---------------------------------------------------------------------------- run

async function main () {
  let lea, hugo, teacher, parent

  await scenario('signin', async () => {
    const context = await browser.newContext({ viewport: VIEWPORT, locale: 'fr-FR' })
    const page = await context.newPage()
    await page.goto(BASE + '/')
    await page.getByRole('heading', { level: 1, name: 'Connexion de démonstration' }).waitFor({ timeout: T })
    assert(await page.locator('#demo-user option').count() > 60, 'demo users listed')
    await axe(page, 'signin')
    await shot(page, '1-connexion')
    // keyboard only: tab to the select, pick s-01, submit with Enter
    await page.locator('#demo-user').focus()
    await page.keyboard.press('Tab')
    assert(await page.evaluate(() => document.activeElement.textContent) === 'Entrer', 'Tab reaches the button')
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor({ timeout: T })
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('atelier.session')).token)
    assert(typeof token === 'string' && token.length > 20, 'token kept in sessionStorage')
    await context.close()
  })

  await scenario('spaces', async () => {
    lea = await newUser('s-01')
    const { page } = lea
    await page.getByRole('heading', { name: 'Ma classe' }).waitFor()
    await page.getByRole('link', { name: 'Seconde A' }).waitFor()
    await page.getByRole('link', { name: /Groupe 1/ }).waitFor()
    // the skip link moves the focus to the content without leaving the screen
    assert(await page.evaluate(() => document.querySelector('a[href], button, input, select, textarea').className) === 'skip-link', 'skip link first')
    await page.locator('.skip-link').focus()
    await page.keyboard.press('Enter')
    assert(await page.evaluate(() => document.activeElement.id) === 'main', 'focus on main')
    await page.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
    await axe(page, 'spaces')
    await shot(page, '2-mes-espaces')
  })

  await scenario('coedit', async () => {
    hugo = await newUser('s-02')
    await lea.page.getByRole('link', { name: /Groupe 1/ }).click()
    await lea.page.locator('#conn-state[data-state="online"]').waitFor()
    await openRoom(hugo.page, '2nde-a-g1')
    assert(await lea.page.locator('#doc-title').innerText() === 'Document « rapport »', 'rapport opens by default')
    await typeInEditor(lea.page, 'Notre rapport sur la photosynthèse.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Notre rapport sur la photosynthèse.' }).waitFor()
    await typeInEditor(hugo.page, ' Hugo ajoute une phrase.')
    await lea.page.locator('#editor .doc-text', { hasText: 'Hugo ajoute une phrase.' }).waitFor()
    // named carets: each sees the other's caret with their name
    await lea.page.locator('#editor .caret[data-user="s-02"] .caret-label', { hasText: 'Hugo' }).waitFor()
    await hugo.page.locator('#editor .caret[data-user="s-01"] .caret-label', { hasText: 'Léa' }).waitFor()
    assert(await lea.page.locator('#editor .caret[data-user="s-01"]').count() === 0, 'no caret of my own')
  })

  await scenario('saved_indicator', async () => {
    await waitSaved(lea.page)
    await waitSaved(hugo.page)
  })

  await scenario('chat', async () => {
    await lea.page.fill('#chat-input', 'Salut Hugo, je fais **l’introduction** !')
    await lea.page.keyboard.press('Enter')
    await hugo.page.locator('#chat-log .msg', { hasText: 'Salut Hugo' }).waitFor()
    assert(await hugo.page.locator('#chat-log .msg strong', { hasText: 'l’introduction' }).count() === 1, 'markdown rendered')
    await hugo.page.fill('#chat-input', 'Ok Léa, je prends la conclusion. <b>pas de HTML</b>')
    await hugo.page.click('button:has-text("Envoyer")')
    await lea.page.locator('#chat-log .msg', { hasText: 'je prends la conclusion' }).waitFor()
    assert(await lea.page.locator('#chat-log .msg b').count() === 0, 'HTML stays text')
    assert(await lea.page.locator('#chat-log .msg', { hasText: '<b>pas de HTML</b>' }).count() === 1, 'HTML shown as text')
    // edit and delete my own
    const mine = lea.page.locator('#chat-log .msg-mine', { hasText: 'Salut Hugo' })
    await mine.getByRole('button', { name: /Modifier/ }).click()
    await lea.page.locator('.edit-form textarea').fill('Salut Hugo, je fais l’introduction et le plan.')
    await lea.page.locator('.edit-form button[type="submit"]').click()
    await hugo.page.locator('#chat-log .msg', { hasText: 'et le plan' }).waitFor()
    await lea.page.fill('#chat-input', 'message à supprimer')
    await lea.page.keyboard.press('Enter')
    const gone = lea.page.locator('#chat-log .msg-mine', { hasText: 'message à supprimer' })
    await gone.getByRole('button', { name: /Supprimer/ }).click()
    await hugo.page.locator('#chat-log .msg-deleted', { hasText: 'Message supprimé' }).waitFor()
  })

  await scenario('presence', async () => {
    for (const { page } of [lea, hugo]) {
      await page.locator('#here-list .person[data-user="s-01"]').waitFor()
      await page.locator('#here-list .person[data-user="s-02"]').waitFor()
      await page.locator('#here-list .person[data-user="s-02"]', { hasText: 'sur « rapport »' }).waitFor()
    }
    // typing shows
    await hugo.page.locator('#editor .doc-text').click()
    await hugo.page.keyboard.type('x')
    await lea.page.locator('#here-list .person[data-user="s-02"] .typing').waitFor()
    await hugo.page.keyboard.press('Backspace')
    // two tabs are one person
    const second = await lea.context.newPage()
    await second.goto(BASE + '/#/room/2nde-a-g1/brouillon')
    await second.locator('#demo-user, #conn-state[data-state="online"]').first().waitFor()
    // a new tab has its own sessionStorage: sign in again there when needed
    if (await second.locator('#demo-user').count()) {
      await second.selectOption('#demo-user', 's-01')
      await second.getByRole('button', { name: /^Entrer$/ }).click()
      await second.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
      await openRoom(second, '2nde-a-g1', 'brouillon')
    }
    await hugo.page.locator('#here-list .person[data-user="s-01"]', { hasText: '2 onglets' }).waitFor()
    assert(await hugo.page.locator('#here-list .person[data-user="s-01"]').count() === 1, 'two tabs = one person')
    await axe(lea.page, 'room (student)')
    await shot(lea.page, '3-salle-groupe')
    await second.close()
    await hugo.page.locator('#here-list .person[data-user="s-01"]', { hasText: '2 onglets' }).waitFor({ state: 'detached' })
  })

  await scenario('teacher_class_page', async () => {
    teacher = await newUser('t-martin')
    await teacher.page.getByRole('link', { name: 'Suivi de la classe' }).first().click()
    await teacher.page.getByRole('heading', { level: 1, name: /Suivi de la classe · Seconde A/ }).waitFor()
    const g1 = teacher.page.locator('.group-card[data-group="2nde-a-g1"]')
    await g1.locator('.person[data-user="s-01"]').waitFor()
    await g1.locator('.person[data-user="s-02"]').waitFor()
    await g1.locator('.count-badge', { hasText: '2 en ligne' }).waitFor()
    await teacher.page.locator('.group-card[data-group="2nde-a-g2"] .count-badge', { hasText: '0 en ligne' }).waitFor()
    assert(/document|discussion/.test(await g1.locator('.last').innerText()), 'last activity shown')
    await axe(teacher.page, 'class page')
    await shot(teacher.page, '4-suivi-classe')
  })

  await scenario('teacher_lock', async () => {
    await teacher.page.locator('.group-card[data-group="2nde-a-g1"] a.group-open').click()
    await teacher.page.locator('#conn-state[data-state="online"]').waitFor()
    const toggle = teacher.page.locator('#lock-toggle')
    await toggle.click()
    await teacher.page.locator('#lock-toggle[aria-pressed="true"]').waitFor()
    await lea.page.locator('#readonly-banner', { hasText: 'verrouillé' }).waitFor()
    await lea.page.locator('#editor .doc-text[contenteditable="false"]').waitFor()
    await axe(lea.page, 'room (locked)')
    await shot(lea.page, '6-document-verrouille')
    await shot(teacher.page, '8-enseignant-salle-groupe')
    // teacher moderates: deletes a student message
    await teacher.page.locator('#chat-log .msg', { hasText: 'je prends la conclusion' }).getByRole('button', { name: /Supprimer/ }).click()
    await lea.page.locator('#chat-log .msg-deleted', { hasText: 'modération' }).waitFor()
    await toggle.click()
    await teacher.page.locator('#lock-toggle[aria-pressed="false"]').waitFor()
    await lea.page.locator('#readonly-banner').waitFor({ state: 'detached' })
    await lea.page.locator('#editor .doc-text[contenteditable="true"]').waitFor()
    await axe(teacher.page, 'room (teacher)')
  })

  await scenario('parent_readonly', async () => {
    parent = await newUser('p-01')
    await parent.page.getByRole('link', { name: 'Seconde A' }).click()
    await parent.page.locator('#editor .doc-text').waitFor()
    await parent.page.locator('#readonly-banner', { hasText: 'Lecture seule' }).waitFor()
    await parent.page.locator('#editor .doc-text[contenteditable="false"]').waitFor()
    assert(await parent.page.locator('#chat-input').count() === 0, 'no chat for parents')
    // the class doc as the teacher writes it reaches the parent, read-only
    await openRoom(teacher.page, '2nde-a')
    await typeInEditor(teacher.page, 'Sortie au musée jeudi.')
    await parent.page.locator('#editor .doc-text', { hasText: 'Sortie au musée jeudi.' }).waitFor()
    await parent.page.locator('#editor .doc-text').click()
    await parent.page.keyboard.type('intrus')
    await parent.page.waitForTimeout(300)
    assert(!(await parent.page.locator('#editor .doc-text').innerText()).includes('intrus'), 'parent cannot type')
    await axe(parent.page, 'room (parent, read-only)')
    await shot(parent.page, '5-parent-lecture-seule')
  })

  await scenario('offline_merge', async () => {
    const { page, context } = lea
    await waitSaved(page)
    await context.setOffline(true)
    await page.locator('#conn-state[data-state="offline"]').waitFor()
    await typeInEditor(page, ' Ajout hors ligne.')
    await page.locator('#save-state[data-state="offline"]', { hasText: 'Hors ligne — modifications conservées' }).waitFor()
    // meanwhile Hugo writes too
    await typeInEditor(hugo.page, ' Hugo en ligne.')
    await page.waitForTimeout(500)
    assert(!(await hugo.page.locator('#editor .doc-text').innerText()).includes('Ajout hors ligne'), 'offline edit not sent')
    assert(await page.locator('#editor .doc-text', { hasText: 'Ajout hors ligne.' }).count() === 1, 'offline edit stays on screen')
    await axe(page, 'room (offline)')
    await shot(page, '7-hors-ligne')
    await context.setOffline(false)
    await hugo.page.locator('#editor .doc-text', { hasText: 'Ajout hors ligne.' }).waitFor({ timeout: 20000 })
    await page.locator('#editor .doc-text', { hasText: 'Hugo en ligne.' }).waitFor({ timeout: 20000 })
    await page.locator('#conn-state[data-state="online"]').waitFor({ timeout: 20000 })
    await waitSaved(page)
    const a = await docText(page)
    const b = await docText(hugo.page)
    assert(a === b, `both replicas converge:\n${a}\n---\n${b}`)
  })

  await scenario('doc_reconnect_jitter', async () => {
    // Cut Léa's doc socket from the client side: our handler cancels y-websocket's own
    // (unjittered) retry and schedules one with full jitter; the doc comes back and syncs.
    const { page } = lea
    const before = await page.evaluate(() => {
      const s = window.__atelier.current.docSession()
      s.provider.ws.close()
      return { retries: s.retries ?? 0 }
    })
    await page.waitForFunction((n) => (window.__atelier.current.docSession().retries ?? 0) > n, before.retries)
    const after = await page.evaluate(() => {
      const s = window.__atelier.current.docSession()
      return { retries: s.retries, delay: s.lastDelay }
    })
    assert(after.retries === before.retries + 1, `one retry of ours: ${JSON.stringify(after)}`)
    assert(after.delay >= 0 && after.delay <= 500, `first retry within the jitter window: ${after.delay}`)
    await page.locator('#conn-state[data-state="online"]').waitFor()
    await typeInEditor(page, ' Après reconnexion.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Après reconnexion.' }).waitFor()
    await waitSaved(page)
  })

  await scenario('english_switch', async () => {
    const { page } = hugo
    await page.getByRole('button', { name: 'Switch the interface to English' }).click()
    await page.getByRole('heading', { level: 2, name: 'Chat' }).waitFor()
    assert(await page.evaluate(() => document.documentElement.lang) === 'en', 'lang=en')
    await page.getByRole('button', { name: "Passer l'interface en français" }).click()
    await page.getByRole('heading', { level: 2, name: 'Discussion' }).waitFor()
  })

  // ------------------------------------------------------------------ progress (issue part 4)
  // Léa and Hugo write a new doc "suivi" of 2nde-a-g1 while M. Martin watches the console,
  // on an old laptop's width: the group's card gets the doc live, with both of them in it.
  await scenario('progress_console', async () => {
    const { page } = teacher
    await page.setViewportSize({ width: 1024, height: 768 })
    await page.evaluate(() => { location.hash = '#/class/2nde-a' })
    await page.getByRole('heading', { level: 1, name: /Suivi de la classe · Seconde A/ }).waitFor()
    await page.locator('#console-live[data-state="open"]').waitFor()
    const g1 = page.locator('.group-card[data-group="2nde-a-g1"]')
    // the overview already lists the group's docs (rapport, written earlier)
    await g1.locator('.doc-block[data-doc="rapport"] .doc-preview', { hasText: 'Notre rapport' }).waitFor()
    await page.evaluate(() => { window.__notReloaded = true })
    assert(await g1.locator('.doc-block[data-doc="suivi"]').count() === 0, 'no "suivi" doc yet')

    await switchDoc(lea.page, '2nde-a-g1', 'suivi')
    await switchDoc(hugo.page, '2nde-a-g1', 'suivi')
    await typeInEditor(lea.page, 'Léa écrit le suivi.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Léa écrit le suivi.' }).waitFor()
    await typeInEditor(hugo.page, ' Hugo complète.')
    await lea.page.locator('#editor .doc-text', { hasText: 'Hugo complète.' }).waitFor()

    const block = g1.locator('.doc-block[data-doc="suivi"]')
    await block.locator('.doc-preview', { hasText: 'Léa écrit le suivi.' }).waitFor()
    await block.locator('.doc-preview', { hasText: 'Hugo complète.' }).waitFor()
    for (const [id, name] of [['s-01', 'Léa'], ['s-02', 'Hugo']]) {
      const row = block.locator(`.contrib-list li[data-user="${id}"]`)
      await row.waitFor()
      await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.inserted) > 0,
        `.group-card[data-group="2nde-a-g1"] .doc-block[data-doc="suivi"] .contrib-list li[data-user="${id}"]`)
      const text = await row.innerText()
      assert(text.includes(name), `${id}'s row names them: ${text}`)
      assert(/[1-9]\d* caractères? ajoutés?/.test(text), `${id}'s row writes the count out: ${text}`)
      assert(await block.locator(`.contrib-bar .seg[data-user="${id}"]`).count() === 1, `${id} has a segment in the bar`)
    }
    const activity = await block.locator('.activity-text').innerText()
    assert(/^[1-9]\d* modifications? dans la dernière heure$/.test(activity), `activity written out: ${activity}`)
    assert(await block.locator('svg.spark rect').count() > 1, 'the sparkline draws bars')
    assert(/mots?/.test(await block.locator('.doc-size').innerText()), 'word count shown')
    assert(await block.locator('a', { hasText: 'Ouvrir « suivi »' }).getAttribute('href') === '#/room/2nde-a-g1/suivi', 'link to the doc')
    // the rest of the group has not written: flagged by name
    await g1.locator('.flag-student[data-user="s-03"]', { hasText: "n'a pas encore contribué" }).waitFor()
    assert(await g1.locator('.flag-student[data-user="s-01"]').count() === 0, 'Léa is not flagged')
    assert(await page.evaluate(() => window.__notReloaded === true), 'updated in place, without reloading')
    // one socket for the figures: the class channel (the group channels are presence)
    await axe(page, 'class console')
    await block.scrollIntoViewIfNeeded()
    await shot(page, '9-suivi-classe-direct')
  })

  await scenario('who_wrote_what', async () => {
    const { page } = lea
    await waitSaved(page)
    await waitSaved(hugo.page)
    const toggle = page.locator('#authors-toggle')
    await toggle.focus()
    await page.keyboard.press('Enter')
    await page.locator('#authors-toggle[aria-pressed="true"]').waitFor()
    await page.locator('#authorship').waitFor()
    assert(!(await page.locator('#editor').isVisible()), 'the editor gives way to the view')
    const legend = page.locator('#authorship .author-legend')
    await legend.locator('li[data-author="s-01"]', { hasText: 'Léa' }).waitFor()
    await legend.locator('li[data-author="s-02"]', { hasText: 'Hugo' }).waitFor()
    const runs = page.locator('#authorship .by-author')
    const lea1 = runs.filter({ hasText: 'Léa écrit le suivi.' })
    assert(await lea1.getAttribute('data-author') === 's-01', 'Léa’s sentence is hers')
    assert(await lea1.getAttribute('title') === 'Écrit par Léa', 'titled with her name')
    const hugo1 = runs.filter({ hasText: 'Hugo complète.' })
    assert(await hugo1.getAttribute('data-author') === 's-02', 'Hugo’s sentence is his')
    assert(await hugo1.getAttribute('title') === 'Écrit par Hugo', 'titled with his name')
    assert(/\[Léa\]/.test(await lea1.textContent()), 'a screen-reader marker names the author')
    // not colour alone: each author has their own underline style
    const styles = await page.$$eval('#authorship .author-legend .author-sample', (els) => els.map((e) => getComputedStyle(e).textDecorationStyle))
    assert(new Set(styles).size === styles.length, `one underline style per author: ${styles}`)
    // the view follows the doc while shown
    await typeInEditor(hugo.page, ' Encore Hugo.')
    await page.locator('#authorship .by-author[data-author="s-02"]', { hasText: 'Encore Hugo.' }).waitFor()
    await axe(page, 'who wrote what')
    await shot(page, '11-qui-a-ecrit-quoi')
    await toggle.focus()
    await page.keyboard.press('Space')
    await page.locator('#authors-toggle[aria-pressed="false"]').waitFor()
    await page.locator('#editor .doc-text').waitFor({ state: 'visible' })
    assert(await page.locator('#authorship').count() === 0, 'the view is gone')
  })

  await scenario('history_panel', async () => {
    const { page } = lea
    await page.setViewportSize({ width: 1024, height: 768 })
    await waitSaved(page)
    await waitSaved(hugo.page)
    const opener = page.locator('#history-open')
    const dialog = page.locator('#history-dialog')
    // keyboard: open, name the doc as it is, close with Escape, focus comes back
    await opener.focus()
    await page.keyboard.press('Enter')
    await dialog.waitFor()
    await page.locator('#version-name').fill('Premier jet')
    await page.keyboard.press('Enter')
    const named = dialog.locator('.version[data-kind="named"]', { hasText: 'Premier jet' })
    await named.waitFor()
    assert(/nommée/.test(await named.innerText()), 'kind in words')
    assert(/par Léa/.test(await named.innerText()), 'who made it')
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
    assert(await page.evaluate(() => document.activeElement?.id) === 'history-open', 'focus back on the button')

    await typeInEditor(page, ' Ajout après la version.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Ajout après la version.' }).waitFor()
    await waitSaved(page)

    await opener.click()
    await named.waitFor()
    await named.locator('.version-view').click()
    const content = dialog.locator('#version-detail .version-content')
    await content.waitFor()
    const old = await content.innerText()
    assert(old.includes('Léa écrit le suivi.') && old.includes('Hugo complète.'), `the named version's text: ${old}`)
    assert(!old.includes('Ajout après la version.'), 'without what came after')
    assert(await dialog.locator('#version-detail').evaluate((el) => el.contains(document.activeElement)), 'focus on the version shown')
    await axe(page, 'history panel')
    await shot(page, '10-historique')

    await named.locator('.version-compare').click()
    await dialog.locator('#version-detail .diff ins', { hasText: 'Ajout après la version.' }).waitFor()
    await dialog.locator('#version-detail .by-author-list li[data-user="s-01"]', { hasText: 'Léa' }).waitFor()
    await axe(page, 'history (compare)')
    await shot(page, '10b-historique-comparer')

    // Restaurer asks first; Escape cancels the question, not the panel
    await named.locator('.version-restore').click()
    await dialog.locator('#restore-question', { hasText: 'Restaurer cette version ? Le document actuel sera conservé dans l\'historique.' }).waitFor()
    await page.keyboard.press('Escape')
    await dialog.locator('#restore-question').waitFor({ state: 'detached' })
    assert(await dialog.isVisible(), 'the panel stays open')
    await named.locator('.version-restore').click()
    await dialog.locator('#restore-confirm').click()
    // every connected client gets the old text at once
    await hugo.page.waitForFunction(() => {
      const text = document.querySelector('#editor .doc-text')?.textContent ?? ''
      return !text.includes('Ajout après la version.') && text.includes('Hugo complète.')
    })
    await page.locator('#editor .doc-text', { hasText: 'Hugo complète.' }).waitFor()
    assert(!(await docText(page)).includes('Ajout après la version.'), 'my editor too')
    // the state before the restore is itself a version
    const before = dialog.locator('.version[data-kind="restore"]').first()
    await before.waitFor()
    assert(/avant restauration/.test(await before.innerText()), 'kind in words')
    await before.locator('.version-view').click()
    await dialog.locator('#version-detail .version-content', { hasText: 'Ajout après la version.' }).waitFor()
    await axe(page, 'history (restored)')
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
  })

  // The assignment loop, end to end: the teacher publishes to each group, two groups
  // write, g1 hands in, the deadline passes with g2 not handed in, both are frozen and
  // later edits refused, the teacher returns g1's work with feedback, and the student and
  // her parent see it. test_client.py then checks the ENT receiver got each
  // notification once.
  await scenario('assignment_story', async () => {
    const TITLE = 'Exposé – La photosynthèse'
    // Its doc name: the title's slug, made unique within the class by a short suffix.
    const DOC_PREFIX = 'expose-la-photosynthese'
    const tp = teacher.page
    await tp.evaluate(() => { location.hash = '#/' })
    await tp.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
    await tp.getByRole('link', { name: /^Travaux — / }).first().click()
    await tp.getByRole('heading', { level: 1, name: /^Travaux — / }).waitFor()
    await axe(tp, 'assignments (teacher)')
    await tp.getByLabel('Titre').fill(TITLE)
    await tp.getByLabel('Consigne').fill('Expliquez la **photosynthèse** en une page.\n- les réactifs\n- les produits')
    await tp.getByLabel('Ressources (facultatif)').fill('Manuel, chapitre 3 | https://example.org/manuel')
    await tp.getByLabel('Document de départ (facultatif)').fill('# La photosynthèse\n\nIntroduction :')
    // The due date: 35 s from now, in the browser's zone (the input takes seconds).
    const due = await tp.evaluate(() => {
      const d = new Date(Date.now() + 35000)
      const pad = (n) => String(n).padStart(2, '0')
      return { value: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`, at: d.getTime() }
    })
    await tp.getByLabel('Échéance (date et heure)').fill(due.value)
    await tp.getByRole('radio', { name: 'Chaque groupe de la classe' }).check()
    await tp.getByRole('button', { name: 'Publier' }).click()
    await tp.getByRole('heading', { level: 1, name: TITLE }).waitFor()
    const rows = tp.locator('#works-table tbody tr')
    await rows.first().waitFor()
    assert(await rows.count() >= 2, 'a row per group')
    await tp.locator('#works-table tr', { hasText: 'Groupe 1' }).locator('.phase[data-phase="not_started"]').waitFor()

    // Students: Léa (g1) from "À faire", and a student of g2 in the group room.
    const lp = lea.page
    await lp.evaluate(() => { location.hash = '#/todo' })
    await lp.getByRole('heading', { level: 1, name: 'À faire' }).waitFor()
    const card = lp.locator('.todo-card', { hasText: TITLE })
    await card.waitFor()
    assert(/photosynthèse/.test(await card.locator('.instructions').innerText()), 'instructions shown')
    assert(await card.locator('.resources a[href="https://example.org/manuel"]').count() === 1, 'resource linked')
    await card.locator('.phase[data-phase="not_started"]').waitFor()
    await axe(lp, 'todo (student)')
    await card.getByRole('link', { name: /Travailler/ }).click()
    await lp.locator('#doc-title', { hasText: DOC_PREFIX }).waitFor()
    const DOC = /« ([a-z0-9_-]+) »/.exec(await lp.locator('#doc-title').innerText())[1]
    assert(DOC.startsWith(DOC_PREFIX), `doc ${DOC}`)
    await lp.locator('#editor .doc-text', { hasText: 'Introduction' }).waitFor()
    await lp.locator('#conn-state[data-state="online"]').waitFor()
    await lp.locator('.work-box', { hasText: TITLE }).waitFor()
    await typeInEditor(lp, ' la plante capte la lumière.')
    await waitSaved(lp)

    const g2 = await newUser('s-07')
    await openRoom(g2.page, '2nde-a-g2', DOC)
    await g2.page.locator('#editor .doc-text', { hasText: 'Introduction' }).waitFor()
    await typeInEditor(g2.page, ' brouillon du groupe deux.')
    await waitSaved(g2.page)

    // Léa hands in from the doc, with the confirmation.
    await lp.getByRole('button', { name: 'Rendre le travail' }).click()
    const question = lp.locator('.handin-question')
    await question.waitFor()
    assert(await lp.evaluate(() => document.activeElement?.classList.contains('handin-question')), 'focus on the question')
    await axe(lp, 'hand-in confirmation')
    await lp.getByRole('button', { name: 'Oui, rendre' }).click()
    await lp.locator('.work-box[data-status="handed_in"] .handin-done').waitFor()
    await lp.locator('#readonly-banner').waitFor()
    await lp.locator('#editor .doc-text[contenteditable="false"]').waitFor()
    await lp.locator('.work-box[data-status="handed_in"]').waitFor({ timeout: T })
    await tp.locator('#works-table tr', { hasText: 'Groupe 1' }).locator('.phase[data-phase="handed_in"]').waitFor({ timeout: T })

    // The deadline: g2's editor is locked where it is, and what it types is refused.
    const wait = due.at - Date.now()
    assert(wait < 60000, `the deadline is still ${wait} ms away`)
    await g2.page.locator('#editor .doc-text[contenteditable="false"]').waitFor({ timeout: wait + 15000 })
    await g2.page.locator('#readonly-banner').waitFor()
    await g2.page.locator('#editor .doc-text').click()
    await g2.page.keyboard.type(' APRES-ECHEANCE', { delay: 5 })
    assert(!(await docText(g2.page)).includes('APRES-ECHEANCE'), 'a locked editor takes no text')
    await axe(g2.page, 'room (work frozen)')
    const g2Row = tp.locator('#works-table tr', { hasText: 'Groupe 2' })
    await g2Row.locator('.phase[data-phase="missed"]').waitFor({ timeout: T })

    // The teacher opens g2's rendu (frozen at the deadline), then g1's, and returns it.
    await g2Row.getByRole('button', { name: /Voir le rendu/ }).click()
    await tp.locator('#rendu-body', { hasText: 'brouillon du groupe deux' }).waitFor()
    assert(!(await tp.locator('#rendu-body').innerText()).includes('APRES-ECHEANCE'), 'nothing after the deadline in the rendu')
    const g1Row = tp.locator('#works-table tr', { hasText: 'Groupe 1' })
    await g1Row.getByRole('button', { name: /Voir le rendu/ }).click()
    await tp.locator('#rendu-body', { hasText: 'la plante capte la lumière' }).waitFor()
    assert(await tp.locator('#rendu-title').evaluate((el) => el === document.activeElement), 'focus on the rendu')
    await tp.getByLabel('Commentaire').fill('Bonne introduction, développez la **chlorophylle**.')
    await tp.getByLabel('Appréciation').fill('Très bien')
    await tp.getByLabel('Note').fill('16/20')
    await axe(tp, 'assignment (teacher, rendu)')
    await tp.getByRole('button', { name: 'Rendre la copie corrigée' }).click()
    await tp.locator('#fb-note', { hasText: 'Correction rendue' }).waitFor()
    await g1Row.locator('.phase[data-phase="returned"]').waitFor({ timeout: T })

    // Léa: the bell rings live (her room channel), "À faire" shows the feedback.
    const bellCount = lp.locator('#bell')
    await lp.locator('#bell[data-unread]:not([data-unread="0"])').waitFor({ timeout: T })
    await bellCount.click()
    await lp.locator('.bell-item[data-kind="returned"]').waitFor()
    await axe(lp, 'notifications')
    await lp.locator('.bell-item[data-kind="returned"] a').click()
    await lp.getByRole('heading', { level: 1, name: 'À faire' }).waitFor()
    const done = lp.locator('.todo-card', { hasText: TITLE })
    await done.locator('.phase[data-phase="returned"]').waitFor()
    const feedback = await done.locator('.feedback').innerText()
    assert(/Très bien/.test(feedback) && /16\/20/.test(feedback) && /chlorophylle/.test(feedback), `feedback: ${feedback}`)

    // The parent: the child's work with its feedback, never a hand-in button.
    const pp = parent.page
    await pp.evaluate(() => { location.hash = '#/' })
    await pp.locator('#nav-todo').click()
    await pp.getByRole('heading', { level: 1, name: /^Travaux de / }).waitFor()
    const pcard = pp.locator('.todo-card', { hasText: TITLE })
    await pcard.locator('.phase[data-phase="returned"]').waitFor()
    assert(/16\/20/.test(await pcard.locator('.feedback').innerText()), 'the parent sees the feedback')
    assert(await pp.locator('[data-action="hand-in"]').count() === 0, 'no hand-in for a parent')
    await axe(pp, 'todo (parent)')
    await pp.locator('#bell').click()
    await pp.locator('.bell-item[data-kind="assigned"]').waitFor()
    await pp.locator('.bell-item[data-kind="returned"]').waitFor()
    await shot(pp, '13-travaux-parent')
    await tp.evaluate(() => window.scrollTo(0, 0))
    await shot(tp, '12-travaux-enseignant')
    await g2.context.close()
  })

  // "Gérer les groupes": the teacher creates a group and moves a student into it while
  // the student has the old group open: the student's page loses the group at once.
  await scenario('manage_groups', async () => {
    const tp = teacher.page
    const student = await newUser('s-12')
    await openRoom(student.page, '2nde-a-g2')
    await tp.evaluate(() => { location.hash = '#/' })
    await tp.getByRole('link', { name: /^Gérer les groupes/ }).first().click()
    await tp.getByRole('heading', { level: 1, name: /^Gérer les groupes — / }).waitFor()
    await tp.getByLabel('Nom du groupe').fill('Atelier théâtre')
    await tp.getByRole('button', { name: 'Créer' }).click()
    const created = tp.locator('.group-card', { has: tp.getByRole('heading', { level: 2, name: 'Atelier théâtre', exact: true }) })
    await created.waitFor()
    await axe(tp, 'manage groups')
    const row = tp.locator('.group-card[data-group="2nde-a-g2"] li[data-user="s-12"]')
    const target = await created.getAttribute('data-group')
    await row.locator('select').selectOption(target)
    await row.getByRole('button', { name: /Déplacer/ }).click()
    await tp.locator('#groups-note', { hasText: 'est maintenant dans' }).waitFor()
    await created.locator('li[data-user="s-12"]').waitFor()
    // The student's open room of group 2 is closed for them within moments.
    await student.page.locator('#readonly-banner').waitFor({ timeout: 5000 })
    await student.page.locator('#editor .doc-text[contenteditable="false"]').waitFor({ timeout: 5000 })
    await student.context.close()
  })

  // "Administration": an admin checks a roster file dry (the diff by kind), and reads the
  // settings without their secrets. Nothing is imported (later scenarios keep the roster).
  await scenario('admin', async () => {
    const admin = await newUser('a-admin')
    const ap = admin.page
    await ap.locator('#spaces-admin').click()
    await ap.getByRole('heading', { level: 1, name: 'Administration' }).waitFor()
    const roster = [
      'kind,id,name,role,school,class,user,room,parent,student',
      'school,demo,Lycée Jean Moulin,,,,,,,',
      'class,2nde-a,Seconde A,,demo,,,,,',
      'user,a-admin,Administration,admin,,,,,,'
    ].join('\n')
    await ap.locator('#roster-file').setInputFiles({ name: 'annuaire.csv', mimeType: 'text/csv', buffer: Buffer.from(roster) })
    await ap.locator('#roster-check').click()
    // Nearly every user would go: the check says so, and refuses it without "Forcer".
    await ap.locator('#roster-result [data-status="refused"]').waitFor()
    const removed = await ap.locator('#roster-diff tr[data-kind="users"] td').nth(2).innerText()
    assert(Number(removed.replace(/\s/g, '')) > 60, `users removed: ${removed}`)
    const secret = await ap.locator('.settings-table tr', { hasText: 'ATELIER_JWT_SECRET' }).locator('td').first().innerText()
    assert(secret === 'set', `the secret shows as ${secret}`)
    // "Journal d'audit": what the teacher did in the earlier scenarios (the lock, the
    // moderated message, the groups), filtered, and downloaded as CSV.
    const trail = ap.locator('#audit-table tbody')
    await trail.locator('tr[data-action="doc.lock"]').first().waitFor()
    await trail.locator('tr[data-action="group.move"]').first().waitFor()
    await ap.getByLabel('Action').selectOption('chat.delete')
    await ap.locator('#audit-filter').click()
    await trail.locator('tr[data-action="doc.lock"]').first().waitFor({ state: 'detached' })
    const deletions = trail.locator('tr[data-action="chat.delete"]')
    await deletions.first().waitFor()
    assert(await trail.locator('tr').count() === await deletions.count(), 'the filter keeps only deletions')
    const line = await deletions.first().innerText()
    assert(/t-martin/.test(line) && /s-0\d/.test(line), `a deletion says who and whose: ${line}`)
    assert(!/je prends la conclusion/.test(line), 'never the message text')
    const [download] = await Promise.all([ap.waitForEvent('download'), ap.locator('#audit-csv').click()])
    const csv = await new Promise((resolve, reject) => {
      download.createReadStream().then((stream) => {
        const chunks = []
        stream.on('data', (c) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks).toString('utf8'))).on('error', reject)
      }, reject)
    })
    const rows = csv.trim().split(/\r?\n/)
    assert(rows[0] === 'id,at,actor,node,action,target,detail', `CSV header: ${rows[0]}`)
    assert(rows.length > 1 && rows.slice(1).every((r) => r.includes(',chat.delete,')), 'the CSV has the filtered rows')
    assert(/\.csv$/.test(download.suggestedFilename()), download.suggestedFilename())
    await axe(ap, 'administration')
    await admin.context.close()
  })

  // "Mes données": a student (s-29, in no other scenario) writes, sees what Atelier keeps,
  // downloads her export and asks for erasure; a parent sees their child's; the admin
  // finds the request, erases her after a confirmation and reads the report. Her next
  // screen sends her back to the sign-in: her account is gone.
  await scenario('my_data', async () => {
    const student = await newUser('s-29')
    const sp = student.page
    await openRoom(sp, '2nde-a-g5', 'rapport')
    await typeInEditor(sp, 'Le texte de Anna reste au groupe. ')
    await waitSaved(sp)
    await sp.fill('#chat-input', 'Un message que Anna veut voir effacé')
    await sp.keyboard.press('Enter')
    await sp.locator('#chat-log .msg', { hasText: 'Anna veut voir effacé' }).waitFor()
    await sp.locator('#nav-data').click()
    await sp.getByRole('heading', { level: 1, name: 'Mes données' }).waitFor()
    const chats = await sp.locator('#person-s-29-counts tr[data-class="chat"] td').innerText()
    assert(chats === '1', `chat messages counted: ${chats}`)
    const days = await sp.locator('#data-retention tr[data-class="chat"] td').first().innerText()
    assert(/jours/.test(days), `chat retention shown: ${days}`)
    await axe(sp, 'my data (student)')
    const [file] = await Promise.all([sp.waitForEvent('download'), sp.locator('#export-s-29').click()])
    assert(file.suggestedFilename() === 'atelier-donnees-s-29.zip', `download named ${file.suggestedFilename()}`)
    await sp.locator('[data-done="export"]').waitFor()
    sp.once('dialog', (dialog) => dialog.accept())
    await sp.locator('#erase-request-s-29').click()
    await sp.locator('[data-requested="yes"]').waitFor()
    assert(await sp.locator('#erase-request-s-29').isDisabled(), 'asked once')

    const parent = await newUser('p-01')
    await parent.page.locator('#nav-data').click()
    await parent.page.locator('section[data-person="s-01"] h2', { hasText: 'Léa' }).waitFor()
    await axe(parent.page, 'my data (parent)')
    await parent.context.close()

    const admin = await newUser('a-admin')
    const ap = admin.page
    await ap.locator('#nav-data').click()
    await ap.getByRole('heading', { level: 1, name: 'Mes données' }).waitFor()
    await ap.locator('#erase-requests li[data-person="s-29"]').waitFor()
    await ap.fill('#people-q', 'anna')
    await ap.locator('#people-search').click()
    await ap.locator('#people-found li[data-person="s-29"]').waitFor()
    await axe(ap, 'my data (admin)')
    await ap.locator('#erase-requests [data-erase="s-29"]').click()
    await ap.locator('#erase-requests [data-confirm-erase="s-29"]').click()
    await ap.locator('#erase-report[data-user="s-29"]').waitFor()
    const rows = await ap.locator('#erase-report tr[data-class="chat_messages"] td').innerText()
    assert(rows === '1', `chat messages emptied: ${rows}`)
    await ap.locator('#erase-requests', { hasText: 'Aucune demande' }).waitFor()
    await axe(ap, 'my data (erasure report)')
    await admin.context.close()

    await sp.evaluate(() => { location.hash = '#/' })
    await sp.getByRole('heading', { level: 1, name: 'Connexion de démonstration' }).waitFor()
    await student.context.close()
  })

  // "Noms affichés aux élèves": the teacher chooses pseudonyms on the class page; in a
  // group room a student then sees a classmate's pseudonym, never the name, in presence
  // and on the classmate's caret. Set back to full names afterwards.
  await scenario('pseudonymous_names', async () => {
    const tp = teacher.page
    const a = await newUser('s-19')
    const b = await newUser('s-20')
    const nameOf = async (page) => (await page.locator('.whoami > span:not(.avatar)').innerText()).split('(')[0].trim()
    const [nameA, nameB] = [await nameOf(a.page), await nameOf(b.page)]
    await openRoom(a.page, '2nde-a-g4', 'pseudo')
    await openRoom(b.page, '2nde-a-g4', 'pseudo')
    const seen = b.page.locator('#here-list .person[data-user="s-19"] .person-name')
    await b.page.locator('#here-list .person[data-user="s-19"] .person-name', { hasText: nameA }).waitFor()
    // The students are in the room when the teacher changes it: their pages rejoin.
    await tp.evaluate(() => { location.hash = '#/' })
    await tp.getByRole('link', { name: 'Suivi de la classe' }).first().click()
    await tp.getByLabel('Les élèves voient').selectOption('pseudonym')
    await tp.locator('#names-status', { hasText: 'Enregistré' }).waitFor()
    await axe(tp, 'class page (names)')
    await b.page.locator('#here-list .person[data-user="s-19"] .person-name', { hasText: nameA }).waitFor({ state: 'detached' })
    await seen.waitFor()
    await a.page.locator('#conn-state[data-state="online"]').waitFor()
    const shown = (await seen.innerText()).trim()
    assert(shown !== nameA && !shown.includes(nameA), `s-19 shows as ${shown}`)
    assert(/^\p{L}+ \p{L}+ \d{2}$/u.test(shown), `a pseudonym: ${shown}`)
    await typeInEditor(a.page, 'Bonjour ')
    const caret = b.page.locator('#editor .caret[data-user="s-19"] .caret-label')
    await caret.waitFor()
    assert((await caret.innerText()).trim() === shown, 'the caret carries the pseudonym')
    assert(!(await b.page.locator('#here-list').innerText()).includes(nameA), 'the name is nowhere in the list')
    assert(nameB.length > 0, 'names read')
    await tp.getByLabel('Les élèves voient').selectOption('full')
    await tp.locator('#names-status', { hasText: 'Enregistré' }).waitFor()
    await a.context.close()
    await b.context.close()
  })

  await scenario('no_token_in_console', async () => {
    assert(consoleProblems.length === 0, consoleProblems.join('\n'))
  })

  for (const u of [lea, hugo, teacher, parent]) await u?.context.close().catch(() => {})
}

run(main)
