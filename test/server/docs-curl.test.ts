/**
 * The curl examples of the docs, run as written. Every ```sh block of
 * docs/standalone.md's "Try it" and of docs/api.md runs, in order, in one
 * bash session against the standalone server (on a fresh test database with
 * the demo data), and what it prints must be the ```json or ```text block
 * that follows it, but for what differs on every run: times, event ids and
 * cursors.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { DEMO_ADMIN_ID, DEMO_ORGANIZATION_ID, DEMO_SECOND_USER_ID, DEMO_USER_ID, seedDemoData } from '../../server/development.js'
import { startStandalone } from './helper-server.js'

t.setTimeout(180_000)

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SECRET = 'docs-curl-secret-0123456789abcdefABCDEF'
const DOCUMENTED_BASE = 'http://127.0.0.1:2212'
const DEMO_IDS = new Set([DEMO_ORGANIZATION_ID, DEMO_USER_ID, DEMO_SECOND_USER_ID, DEMO_ADMIN_ID])

interface Example { page: string, command: string, expected: string }

/** The ```sh blocks of `markdown` (from `from` on, up to the next `## ` heading when `section`), each with the output block after it. */
function examples (page: string, markdown: string, section?: string): Example[] {
  let text = markdown
  if (section !== undefined) {
    const start = text.indexOf(`\n## ${section}\n`)
    if (start === -1) throw new Error(`${page} has no section ${section}`)
    const end = text.indexOf('\n## ', start + 1)
    text = text.slice(start, end === -1 ? undefined : end)
  }
  const blocks = [...text.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((match) => ({ lang: match[1] ?? '', body: match[2] ?? '' }))
  const found: Example[] = []
  blocks.forEach((block, index) => {
    const next = blocks[index + 1]
    if (block.lang === 'sh' && next !== undefined && (next.lang === 'json' || next.lang === 'text')) {
      found.push({ page, command: block.body, expected: next.body })
    }
  })
  return found
}

/** What differs on every run, replaced by its kind. */
function normalize (value: unknown, key?: string): unknown {
  if (Array.isArray(value)) return value.map((item) => normalize(item))
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([name, inner]) => [name, normalize(inner, name)]))
  if (typeof value === 'string') {
    if (key === 'nextCursor' || key === 'id') return '<id or cursor>'
    if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(value)) return '<time>'
    if (/^[0-9a-f]{24}$/.test(value) && !DEMO_IDS.has(value)) return '<generated id>'
  }
  return value
}

function normalizeLine (line: string): unknown {
  try {
    return normalize(JSON.parse(line))
  } catch {
    return line.trimEnd()
  }
}

const pages = [
  ...examples('docs/standalone.md', await readFile(join(ROOT, 'docs', 'standalone.md'), 'utf8'), 'Try it'),
  ...examples('docs/api.md', await readFile(join(ROOT, 'docs', 'api.md'), 'utf8'))
]

t.test('every curl example of the docs prints what the docs show', async (t) => {
  t.ok(pages.length >= 12, `the examples were found (${pages.length})`)
  const { dbName, db } = await createTestDatabase(t)
  await seedDemoData(db, 'users', 'organizations')
  const server = await startStandalone({ MONGODB_URI: uriForDatabase(dbName), JWT_SECRET: SECRET, LOG_LEVEL: 'silent', REQUEST_LOGGING: 'false' })
  t.teardown(async () => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return
    const gone = once(server.child, 'close')
    server.child.kill('SIGTERM')
    await gone
  })

  // One session, as a reader pastes them: variables set by the first block stay for the others.
  const marker = (index: number): string => `@@@ example ${index}`
  // curl -s prints no newline after a body: the echo before each marker ends the last line.
  const script = pages.map((example, index) => `echo; echo '${marker(index)}'\n${example.command.replaceAll(DOCUMENTED_BASE, server.base)}`).join('\n')
  const bash = spawn('bash', ['-c', script], { cwd: ROOT, env: { ...process.env, JWT_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  bash.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8') })
  bash.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
  const [code] = await once(bash, 'close') as [number]
  t.equal(code, 0, `the examples ran without error${stderr === '' ? '' : `: ${stderr.slice(-1000)}`}`)

  const outputs = stdout.split(/^@@@ example \d+\n/m).slice(1)
  t.equal(outputs.length, pages.length, 'every example printed its part')
  pages.forEach((example, index) => {
    // Two curls in one block print two bodies on one line; the docs show one a line.
    const printed = (outputs[index] ?? '').replaceAll('}{', '}\n{').split('\n').filter((line) => line.trim() !== '')
    const documented = example.expected.split('\n').filter((line) => line.trim() !== '')
    const title = example.command.split('\n').find((line) => line.startsWith('#')) ?? example.command.split('\n')[0]
    t.same(printed.map(normalizeLine), documented.map(normalizeLine), `${example.page}: ${title}`)
  })
})
