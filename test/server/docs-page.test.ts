/**
 * The API reference page (/docs): its switch and its routes in-process, then the
 * page itself in a real browser (Debian's chromium through playwright-core)
 * against a real listening standalone server, online and with the network cut
 * beyond loopback.
 */
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { openapiDocument } from '../../schemas/generated/openapi-document.js'
import app, { appOptions, serverOptions } from '../../server/app.js'
import { readConfig } from '../../server/config.js'
import { DOCS_PATH, docsUrl } from '../../server/docs.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { startStandalone, type StandaloneServer } from './helper-server.js'
import { TEST_SECRET } from '../helper.js'

t.setTimeout(180_000)

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
// .cache/ is git-ignored; CI keeps what lands under .cache/reports.
const SCREENSHOT = join(ROOT, '.cache', 'reports', 'docs-page.png')
// CI (.ci/run) installs Debian's chromium here; CHROMIUM_PATH points elsewhere on other systems.
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync']
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'])
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]'])

/** Every operation's summary, read from the contract's own file. */
async function operationSummaries (): Promise<string[]> {
  const contract = parse(await readFile(join(ROOT, 'schemas', 'openapi.yaml'), 'utf8')) as { paths: Record<string, Record<string, { summary?: string }>> }
  return Object.values(contract.paths).flatMap((operations) =>
    Object.entries(operations).filter(([method]) => HTTP_METHODS.has(method)).map(([, operation]) => operation.summary ?? ''))
}

interface BuiltApp {
  inject: FastifyInstance['inject']
  /** method url → schema as JSON, read once everything is registered. */
  routes: () => Map<string, string>
}

async function buildApp (t: Test, serveDocs: string): Promise<BuiltApp> {
  const { dbName } = await createTestDatabase(t)
  const config = readConfig({ MONGODB_URI: uriForDatabase(dbName), JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', SERVE_DOCS: serveDocs })
  const server = Fastify(serverOptions(config))
  const seen: RouteOptions[] = []
  server.addHook('onRoute', (route) => { seen.push(route) })
  await server.register(app, appOptions(config, { mongodbUri: uriForDatabase(dbName), jwtSecret: TEST_SECRET, seedDemoData: false }))
  await server.ready()
  t.teardown(() => server.close())
  const routes = (): Map<string, string> => new Map(seen.map((route) => [`${String(route.method)} ${route.url}`, JSON.stringify(route.schema ?? null)]))
  return { inject: server.inject.bind(server), routes }
}

t.test('SERVE_DOCS switches the page; the API routes and their schemas stay the same', async (t) => {
  t.equal(readConfig({}).serveDocs, true, 'on by default')
  t.equal(readConfig({ SERVE_DOCS: 'false' }).serveDocs, false)
  t.throws(() => readConfig({ SERVE_DOCS: 'maybe' }), /SERVE_DOCS=maybe must be true or false/)
  t.equal(docsUrl('127.0.0.1', 2212), 'http://127.0.0.1:2212/docs')
  t.equal(docsUrl('0.0.0.0', 2212), 'http://localhost:2212/docs', 'a wildcard address is shown as localhost')
  t.equal(docsUrl('::1', 80), 'http://[::1]:80/docs')

  const on = await buildApp(t, 'true')
  const off = await buildApp(t, 'false')

  const root = await on.inject({ method: 'GET', url: '/' })
  t.equal(root.statusCode, 302)
  t.equal(root.headers.location, DOCS_PATH)
  const page = await on.inject({ method: 'GET', url: DOCS_PATH })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.notMatch(page.body, /(src|href)="(https?:)?\/\//, 'the page loads nothing from another host')
  const shown = (await on.inject({ method: 'GET', url: `${DOCS_PATH}/json` })).json<Record<string, unknown>>()
  t.same({ ...shown, servers: undefined }, { ...openapiDocument, servers: undefined }, 'the page shows the contract as written')
  t.same(shown['servers'], [{ url: '/', description: 'This server (the one serving this page)' }, ...openapiDocument['servers'] as unknown[]],
    'with the serving origin first, so "Try it out" calls it')

  for (const url of ['/', DOCS_PATH, `${DOCS_PATH}/static/swagger-ui-bundle.js`]) {
    const missing = await off.inject({ method: 'GET', url })
    t.equal(missing.statusCode, 404, `SERVE_DOCS=false: ${url} is not served`)
  }

  // Every route the server has without the page, it has with it, schema for schema.
  const withPage = on.routes()
  const withoutPage = off.routes()
  t.ok(withoutPage.size >= 8, `the API's routes were seen (${withoutPage.size})`)
  for (const [route, schema] of withoutPage) t.equal(withPage.get(route), schema, `${route} unchanged`)
  const added = [...withPage.keys()].filter((route) => !withoutPage.has(route))
  t.ok(added.length > 0 && added.every((route) => /^\S+ \/(docs(\/.*)?)?$/.test(route)), `the page adds only / and /docs routes: ${added.join(', ')}`)
})

/** Loads the page from `/` and waits until Swagger UI has rendered every operation; returns the visible summaries. */
async function renderedSummaries (page: Page, base: string, expected: number): Promise<string[]> {
  await page.goto(`${base}/`)
  const summaries = page.locator('.opblock .opblock-summary-description')
  // Attached once Swagger UI has fetched the document and rendered at least `expected` operations.
  await summaries.nth(expected - 1).waitFor({ state: 'attached', timeout: 60_000 })
  return await summaries.filter({ visible: true }).allInnerTexts()
}

async function logged (server: StandaloneServer, message: string): Promise<Record<string, unknown> | undefined> {
  // The line follows listen(); the health check that found the server may come first.
  for (let tries = 0; tries < 100; tries++) {
    const line = server.logs.find((entry) => entry['msg'] === message)
    if (line !== undefined) return line
    await sleep(50)
  }
  return undefined
}

t.test('the page in a real browser: every operation shown, every request to the server itself', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`no chromium at ${CHROMIUM}: install Debian's (apt-get install -y --no-install-recommends chromium), as .ci/run does, or set CHROMIUM_PATH`)
    return
  }
  const summaries = await operationSummaries()
  t.ok(summaries.length >= 8 && summaries.every((summary) => summary !== ''), `every operation in openapi.yaml has a summary (${summaries.length})`)

  const { dbName } = await createTestDatabase(t)
  const server = await startStandalone({ LOG_LEVEL: 'info', MONGODB_URI: uriForDatabase(dbName), JWT_SECRET: TEST_SECRET })
  t.teardown(() => { server.child.kill('SIGKILL') })
  t.match(await logged(server, 'API reference page'), { url: `${server.base}${DOCS_PATH}` }, 'the start log says where the page is')

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS })
  t.teardown(() => browser.close())

  t.test('online', async (t) => {
    const page = await browser.newPage()
    const requested: string[] = []
    const errors: string[] = []
    page.on('request', (request) => { requested.push(request.url()) })
    page.on('pageerror', (error) => { errors.push(error.message) })

    const visible = await renderedSummaries(page, server.base, summaries.length)
    t.equal(new URL(page.url()).pathname, DOCS_PATH, '/ redirects to the page')
    t.same([...visible].sort(), [...summaries].sort(), 'every operation summary is visible')
    t.same(errors, [], 'no script error')

    // "Try it out" calls the server the page came from (the document's first server).
    const health = page.locator('#operations-Operations-get_health')
    await health.locator('.opblock-summary').click()
    await health.locator('.try-out__btn').click()
    await health.locator('.execute').click()
    const status = health.locator('.live-responses-table tr.response td.response-col_status').first()
    await status.waitFor({ timeout: 30_000 })
    t.equal((await status.innerText()).trim(), '200', 'Try it out on /health answers 200')
    t.ok(requested.includes(`${server.base}/health`), 'from this server')

    t.ok(requested.some((url) => url.endsWith(`${DOCS_PATH}/json`)) && requested.some((url) => url.endsWith('/swagger-ui-bundle.js')), `the requests were recorded (${requested.length})`)
    t.same(requested.filter((url) => new URL(url).origin !== server.base), [], `every request went to ${server.base}`)

    await rm(SCREENSHOT, { force: true })
    await mkdir(dirname(SCREENSHOT), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    const { size } = await stat(SCREENSHOT)
    t.ok(size > 0, `screenshot saved: ${SCREENSHOT} (${size} bytes)`)
    await page.close()
  })

  t.test('with the network cut beyond loopback', async (t) => {
    const context = await browser.newContext()
    t.teardown(() => context.close())
    const passed: string[] = []
    const cut: string[] = []
    await context.route('**/*', async (route) => {
      const url = route.request().url()
      if (LOOPBACK_HOSTS.has(new URL(url).hostname)) {
        passed.push(url)
        await route.continue()
      } else {
        cut.push(url)
        await route.abort('internetdisconnected')
      }
    })
    const page = await context.newPage()
    const visible = await renderedSummaries(page, server.base, summaries.length)
    t.same([...visible].sort(), [...summaries].sort(), 'the page still renders every operation')
    t.ok(passed.length > 0, `the route saw the page's requests (${passed.length})`)
    t.same(cut, [], 'nothing beyond loopback was attempted')
  })
})
