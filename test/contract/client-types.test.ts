// Type-level proof that the contract's generated types work for clients
// (openapi-fetch + TypeBox validation) and for Fastify routes with
// TypeBoxTypeProvider: the fixtures type-check with the project's tsconfig,
// and each `@ts-expect-error` in them marks a real error.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import t, { test } from 'tap'
import { buildApp } from '../fixtures/route-example.js'

// Two full type-checks of fastify + openapi-fetch take ~20-30 s.
t.setTimeout(180_000)

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const fixtures = ['test/fixtures/client-example.ts', 'test/fixtures/route-example.ts', 'test/fixtures/plugin-types.ts'].map((f) => join(root, f))

function compilerOptions (): ts.CompilerOptions {
  const configPath = join(root, 'tsconfig.json')
  const config = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p))
  if (config.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, '\n'))
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, { noEmit: true }, configPath)
  return parsed.options
}

let previous: ts.Program | undefined

/** Type-checks the fixtures, optionally rewriting their text first (reusing the previous program's unchanged files). */
function check (rewrite?: (text: string) => string): ts.Diagnostic[] {
  const options = compilerOptions()
  const host = ts.createCompilerHost(options)
  const read = host.readFile.bind(host)
  if (rewrite !== undefined) {
    host.readFile = (fileName) => {
      const text = read(fileName)
      return text !== undefined && fixtures.includes(fileName) ? rewrite(text) : text
    }
    const getSourceFile = host.getSourceFile.bind(host)
    host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
      if (!fixtures.includes(fileName)) return getSourceFile(fileName, languageVersion, onError, shouldCreate)
      const text = host.readFile(fileName)
      return text === undefined ? undefined : ts.createSourceFile(fileName, text, languageVersion)
    }
  }
  const program = ts.createProgram(fixtures, options, host, previous)
  previous = program
  return [...ts.getPreEmitDiagnostics(program)]
}

function describe (diagnostics: readonly ts.Diagnostic[]): string {
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => root,
    getNewLine: () => '\n'
  })
}

test('client and route fixtures type-check with zero diagnostics', async (t) => {
  const diagnostics = check()
  t.equal(diagnostics.length, 0, describe(diagnostics))
})

test('each @ts-expect-error in the fixtures marks a real type error', async (t) => {
  const marker = /^\s*\/\/ @ts-expect-error\b.*$/
  const expected: string[] = []
  const stripped = check((text) => text.split('\n').map((line) => (marker.test(line) ? '' : line)).join('\n'))
  for (const file of fixtures) {
    const lines = ts.sys.readFile(file)?.split('\n') ?? []
    lines.forEach((line, i) => { if (marker.test(line)) expected.push(`${file}:${i + 2}`) })
  }
  t.ok(expected.length >= 8, `fixtures carry their @ts-expect-error checks (${expected.length})`)
  const errorLines = new Set(stripped.map((d) => {
    const start = d.file?.getLineAndCharacterOfPosition(d.start ?? 0)
    return `${d.file?.fileName ?? '?'}:${(start?.line ?? -1) + 1}`
  }))
  for (const where of expected) t.ok(errorLines.has(where), `an error is reported at ${where.slice(root.length + 1)}`)
  const unexpected = stripped.filter((d) => {
    const start = d.file?.getLineAndCharacterOfPosition(d.start ?? 0)
    return !expected.includes(`${d.file?.fileName ?? '?'}:${(start?.line ?? -1) + 1}`)
  })
  t.equal(unexpected.length, 0, `no error elsewhere: ${describe(unexpected)}`)
  const messages = describe(stripped)
  t.match(messages, /"vonage"/, 'the wrong provider literal is what fails')
  t.match(messages, /phoneNumber/, 'the missing phoneNumber is what fails')
})

test('the route fixture serves the contract at run time', async (t) => {
  const app = buildApp()
  t.teardown(() => app.close())
  const url = '/api/organizations/5f7b1c2e8a1d4e0012c3b4a1/phone-numbers'
  const body = { targetUserId: '5f7b1c2e8a1d4e0012c3b4a6', provider: 'twilio', phoneNumber: '+14165550102' }

  const ok = await app.inject({ method: 'POST', url, payload: body })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), {
    success: true,
    message: 'twilio phone number assigned',
    assignment: {
      userId: body.targetUserId,
      provider: 'twilio',
      phoneNumber: body.phoneNumber,
      isDefault: true,
      isInboundEnabled: true,
      createdAt: '2026-01-05T10:00:00.000Z',
      updatedAt: '2026-01-05T10:00:00.000Z'
    }
  })
  const conflict = await app.inject({ method: 'POST', url, payload: { ...body, label: 'conflict' } })
  t.equal(conflict.statusCode, 409)
  t.same(conflict.json(), { error: 'Conflict', details: 'retry' })

  for (const bad of [{ ...body, provider: 'vonage' }, { ...body, phoneNumber: '4165550102' }, { ...body, label: 'x'.repeat(65) }]) {
    t.equal((await app.inject({ method: 'POST', url, payload: bad })).statusCode, 400, JSON.stringify(bad))
  }
  t.equal((await app.inject({ method: 'POST', url: '/api/organizations/nope/phone-numbers', payload: body })).statusCode, 400, 'bad organizationId')

  const removed = await app.inject({ method: 'DELETE', url, payload: body })
  t.same(removed.json(), { success: true, message: 'twilio phone number removed' })
  const list = await app.inject({ method: 'GET', url, query: { provider: 'sinch' } })
  t.same(list.json(), { phoneNumbers: [], nextCursor: null })
  t.equal((await app.inject({ method: 'GET', url, query: { provider: 'nope' } })).statusCode, 400)
})
