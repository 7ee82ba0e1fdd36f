/**
 * The package as its users get it: `npm pack` (prepack builds), then the
 * tarball installed with npm into temporary projects outside the repository,
 * so nothing resolves from the repository's own node_modules:
 *
 * - current: the host's fastify, mongodb and @fastify/jwt at the versions this
 *   repository develops with;
 * - lowest: the floors package.json claims (fastify and mongodb peers, and each
 *   shared dependency pinned by the host at our floor so npm dedupes our copy
 *   to it), with @fastify/jwt 9 of its own, an older major than ours, so the
 *   plugin runs its own copy beside the host's;
 * - client: only the tarball, TypeBox and openapi-fetch, no fastify, no mongodb.
 *
 * Plugin hosts run fixtures/plugin-host.mjs with plain node (the host's own
 * fastify, mongodb and a MongoClient of its own on this run's test server) and
 * type-check fixtures/plugin-host.ts.tmpl against the installed .d.ts files
 * with strict settings and the repository's TypeScript. The client runs
 * fixtures/client.mjs and type-checks fixtures/client.ts.tmpl.
 *
 * Also, from the host trial of 2026-12-03: the current host runs the README's
 * `npx openapi-typescript …` command and type-checks a client on its output
 * (fixtures/readme-types.ts.tmpl: the same `paths` as the package's), and
 * documents two registrations (/v1, /v2) in one @fastify/swagger document
 * (fixtures/swagger-host.mjs) whose openapi-typescript output must type-check;
 * both plugin hosts answer an over-long path parameter as the README's table
 * says for their Fastify; the client host type-checks the /schemas entry under
 * moduleResolution node10 (fixtures/node10.ts.tmpl) and measures what its
 * install costs against the README's figures.
 *
 * Cost (2 cores): ~30 s. One build and one pack (~5 s), then the three hosts
 * in parallel: install (~3-8 s), runs (~2-5 s), type-checks (~5 s alone,
 * ~15 s when all three run at once). Installs come from npm's own cache
 * (--prefer-offline): only the first run ever downloads the lowest host's
 * versions. The hosts' node_modules are not cached between runs: that would
 * save only the install, and the hosts must stay outside the repository (a
 * package missing from a host would otherwise resolve from the repository's
 * node_modules). The file runs on both backends like the rest of the suite:
 * the lowest host's mongodb 6.0 driver meets each backend nowhere else.
 * KEEP_PACKAGE_HOSTS=1 keeps the temporary projects for a look.
 */
import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ObjectId, type Db } from 'mongodb'
import t, { type Test } from 'tap'
import { createTestDatabase, uniqueDatabaseName, uriForDatabase } from '../helper-database.js'

// ~30 s measured (above) before the types and swagger checks; 240 s ran out on a
// 2-core machine at load 10 with them (pack alone took 35 s), hence generous.
t.setTimeout(480_000)

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const fixtures = join(root, 'test', 'package', 'fixtures')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const PACKAGE = 'fastify-org-phone-numbers'
const JWT_SECRET = 'tarball-test-secret-at-least-32-characters'
const PHONE_NUMBER = '+14165550102'

interface Manifest {
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
  devDependencies: Record<string, string>
  exports: Record<string, unknown>
  main: string
  types: string
}
const manifest: Manifest = { dependencies: {}, peerDependencies: {}, peerDependenciesMeta: {}, devDependencies: {}, exports: {}, main: '', types: '', ...JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) }
const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> }
function locked (name: string): string {
  const version = lock.packages[`node_modules/${name}`]?.version
  if (version === undefined) throw new Error(`${name} is not in package-lock.json`)
  return version
}

/** Lowest version of a `^a.b.c || ^x.y.z` range. */
function floorOf (range: string): string {
  const floors = range.split('||').map((part) => part.trim().replace(/^\^/, ''))
  const key = (version: string): number[] => version.split('.').map(Number)
  floors.sort((a, b) => {
    const [x, y] = [key(a), key(b)]
    for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0)
    return 0
  })
  return floors[0] ?? range
}

/** What this repository develops with (the exact pins of devDependencies, as locked). */
const CURRENT: Record<string, string> = {
  fastify: locked('fastify'),
  mongodb: locked('mongodb'),
  '@fastify/jwt': locked('@fastify/jwt'),
  '@types/node': locked('@types/node'),
  // What the README's examples import besides the package (checked in this host).
  '@fastify/mongodb': locked('@fastify/mongodb'),
  '@fastify/swagger': locked('@fastify/swagger'),
  'openapi-fetch': locked('openapi-fetch'),
  // The README's `npx openapi-typescript …` command, and a swagger document's types.
  'openapi-typescript': locked('openapi-typescript')
}

// The README and the pages of docs/ it links to: their examples are checked alike.
const docsPages = (await readdir(join(root, 'docs'))).filter((name) => name.endsWith('.md')).sort().map((name) => join('docs', name))
const readmeText = (await Promise.all(['README.md', ...docsPages].map(async (page) => await readFile(join(root, page), 'utf8')))).join('\n')
/** Every ```ts block of the README: each is a complete module a user may paste. */
const readmeSnippets = [...readmeText.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] ?? '')
/** The README's command that generates a client's own types from the shipped openapi.yaml, run as written. */
const readmeTypesCommand = /^npx openapi-typescript [^\n#]*?(?=\s*(#|$))/m.exec(readmeText)?.[0]
/**
 * The lowest versions package.json claims (the floors of its ranges; a test below
 * holds the two together). The host installs each itself, so npm dedupes the
 * package's copy to it and the plugin runs on exactly that version.
 */
const FLOORS: Record<string, string> = {
  fastify: '5.0.0',
  mongodb: '6.0.0',
  '@fastify/error': '4.2.0',
  ajv: '8.13.0',
  '@sinclair/typebox': '0.34.0',
  'fastify-plugin': '6.0.0'
}
/** The host's own @fastify/jwt, a major below ours: npm gives the plugin its own copy. */
const HOST_OLD_JWT = '9.0.0'
const LOWEST: Record<string, string> = { ...FLOORS, '@fastify/jwt': HOST_OLD_JWT, '@types/node': CURRENT['@types/node'] ?? '' }
const CLIENT: Record<string, string> = {
  '@sinclair/typebox': locked('@sinclair/typebox'),
  'openapi-fetch': locked('openapi-fetch')
}

interface Ran { code: number | null, stdout: string, stderr: string, ms: number }

/** The environment without npm's script variables (npm_config_*, npm_package_*: a child npm would read them as its own configuration). */
function cleanEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== 'INIT_CWD') env[key] = value
  }
  return { ...env, ...extra }
}

async function run (command: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<Ran> {
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr, ms: Math.round(performance.now() - started) }))
  })
}

function failure (what: string, ran: Ran): Error {
  return new Error(`${what} exited with ${String(ran.code)}\n--- stdout\n${ran.stdout.slice(-4000)}\n--- stderr\n${ran.stderr.slice(-4000)}`)
}

const NPM_INSTALL = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error']

const work = await mkdtemp(join(tmpdir(), 'org-phone-numbers-package-'))
t.teardown(async () => {
  if (process.env['KEEP_PACKAGE_HOSTS'] === '1') t.comment(`kept ${work}`)
  else await rm(work, { recursive: true, force: true })
})

interface PackedFile { path: string, size: number }
interface Packed { tarball: string, files: PackedFile[], dryRunFiles: string[], size: number, unpackedSize: number, packMs: number, dryRunMs: number }

function parsePackJson (ran: Ran): { filename: string, files: PackedFile[], size: number, unpackedSize: number } {
  // Lifecycle output (prepack) goes to stderr; stdout is the JSON array.
  const parsed = JSON.parse(ran.stdout.slice(ran.stdout.indexOf('['))) as Array<{ filename: string, files: PackedFile[], size: number, unpackedSize: number }>
  const first = parsed[0]
  if (first === undefined) throw new Error(`npm pack printed no package: ${ran.stdout}`)
  return first
}

async function pack (): Promise<Packed> {
  const destination = join(work, 'pack')
  await mkdir(destination, { recursive: true })
  const ran = await run('npm', ['pack', '--json', '--pack-destination', destination], root)
  if (ran.code !== 0) throw failure('npm pack', ran)
  const result = parsePackJson(ran)
  // What `npm pack --dry-run` lists, without building a second time.
  const dry = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], root)
  if (dry.code !== 0) throw failure('npm pack --dry-run', dry)
  return {
    tarball: join(destination, result.filename),
    files: result.files,
    dryRunFiles: parsePackJson(dry).files.map((file) => file.path).sort(),
    size: result.size,
    unpackedSize: result.unpackedSize,
    packMs: ran.ms,
    dryRunMs: dry.ms
  }
}

type HostKind = 'current' | 'lowest' | 'client'
interface Host {
  kind: HostKind
  dir: string
  versions: Record<string, string>
  installMs: number
  packages: number
  runs: Record<string, { report: Record<string, unknown>, ran: Ran }>
  typecheck: Ran
  /** The plugin host's database (this test's own connection), dropped at teardown. */
  db?: Db
  /** The current host only: tsc over the README's ```ts blocks. */
  readme?: Ran
  /** Further commands run in the host (generators, type-checks with other settings), by name. */
  extra: Record<string, Ran>
  /** The client host only: what the install cost. */
  cost?: InstallCost
}

async function installHost (kind: HostKind, tarball: string, versions: Record<string, string>): Promise<{ dir: string, installMs: number, packages: number }> {
  const dir = join(work, kind)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    name: `${kind}-host`,
    private: true,
    type: 'module',
    dependencies: { ...versions, [PACKAGE]: `file:${tarball}` }
  }, null, 2))
  const ran = await run('npm', NPM_INSTALL, dir)
  if (ran.code !== 0) throw failure(`npm install (${kind} host)`, ran)
  const installed = JSON.parse(await readFile(join(dir, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, unknown> }
  return { dir, installMs: ran.ms, packages: Object.keys(installed.packages).length }
}

async function runReport (dir: string, script: string, env: Record<string, string> = {}): Promise<{ report: Record<string, unknown>, ran: Ran }> {
  await copyFile(join(fixtures, script), join(dir, script))
  const ran = await run(process.execPath, [script], dir, env)
  const line = ran.stdout.trim().split('\n').pop() ?? ''
  let report: Record<string, unknown>
  try {
    report = JSON.parse(line) as Record<string, unknown>
  } catch {
    throw failure(`node ${script}`, ran)
  }
  return { report, ran }
}

async function typecheck (dir: string, source: string, target: string, tsconfig: string): Promise<Ran> {
  await copyFile(join(fixtures, source), join(dir, target))
  await copyFile(join(fixtures, tsconfig), join(dir, 'tsconfig.json'))
  return await run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir)
}

/** Type-checks `source` (when given) with a tsconfig of its own name, so several checks can run in one host at once. */
async function typecheckWith (dir: string, tsconfig: string, source?: string, target?: string): Promise<Ran> {
  if (source !== undefined && target !== undefined) await copyFile(join(fixtures, source), join(dir, target))
  await copyFile(join(fixtures, tsconfig), join(dir, tsconfig))
  return await run(process.execPath, [tsc, '-p', tsconfig], dir)
}

/** The README's types command, then a client typed by its output (the same `paths` as the package's, or it fails). */
async function readmeTypesClient (dir: string): Promise<Record<string, Ran>> {
  if (readmeTypesCommand === undefined) throw new Error('the README has no `npx openapi-typescript …` command')
  const generate = await run('sh', ['-c', readmeTypesCommand], dir)
  if (generate.code !== 0) return { 'readme types command': generate }
  return { 'readme types command': generate, 'readme types client': await typecheckWith(dir, 'tsconfig.readme-types.json', 'readme-types.ts.tmpl', 'readme-types.ts') }
}

/** Two registrations in one swagger document, that document through openapi-typescript, and its output through tsc. */
async function swaggerTypes (dir: string, env: Record<string, string>): Promise<{ report: Record<string, unknown>, ran: Ran, extra: Record<string, Ran> }> {
  const swagger = await runReport(dir, 'swagger-host.mjs', env)
  const generate = await run(process.execPath, [join(dir, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), 'swagger.json', '-o', 'swagger-types.ts'], dir)
  const extra: Record<string, Ran> = { 'swagger types': generate }
  if (generate.code === 0) extra['swagger types tsc'] = await typecheckWith(dir, 'tsconfig.swagger.json')
  return { ...swagger, extra }
}

/** Type-checks the README's snippets in a host, as files of their own, with strict settings. */
async function typecheckReadme (dir: string): Promise<Ran> {
  const readme = join(dir, 'readme')
  await mkdir(readme, { recursive: true })
  await Promise.all(readmeSnippets.map(async (code, index) => { await writeFile(join(readme, `readme-${index + 1}.ts`), code) }))
  await copyFile(join(fixtures, 'tsconfig.readme.json'), join(readme, 'tsconfig.json'))
  return await run(process.execPath, [tsc, '-p', join(readme, 'tsconfig.json')], dir)
}

async function pluginHost (kind: 'current' | 'lowest', tarball: string, versions: Record<string, string>): Promise<Host> {
  const dbName = uniqueDatabaseName(`tarball_${kind}`)
  const { db } = await createTestDatabase(t, dbName)
  const { dir, installMs, packages } = await installHost(kind, tarball, versions)
  const env = { HOST_MONGODB_URI: uriForDatabase(dbName), HOST_JWT_SECRET: JWT_SECRET }
  const [plugin, client, types, readme, swagger, readmeTypes] = await Promise.all([
    runReport(dir, 'plugin-host.mjs', env),
    runReport(dir, 'client.mjs'),
    typecheck(dir, 'plugin-host.ts.tmpl', 'host.ts', 'tsconfig.host.json'),
    kind === 'current' ? typecheckReadme(dir) : undefined,
    kind === 'current' ? swaggerTypes(dir, env) : undefined,
    kind === 'current' ? readmeTypesClient(dir) : undefined
  ])
  const runs = { plugin, client, ...(swagger === undefined ? {} : { swagger }) }
  const extra = { ...swagger?.extra, ...readmeTypes }
  return { kind, dir, versions, installMs, packages, runs, typecheck: types, db, extra, ...(readme === undefined ? {} : { readme }) }
}

async function clientHost (tarball: string): Promise<Host> {
  const { dir, installMs, packages } = await installHost('client', tarball, CLIENT)
  const [client, types, node10, cost] = await Promise.all([
    runReport(dir, 'client.mjs'),
    typecheck(dir, 'client.ts.tmpl', 'client.ts', 'tsconfig.client.json'),
    typecheckWith(dir, 'tsconfig.node10.json', 'node10.ts.tmpl', 'node10.ts'),
    installCost(dir)
  ])
  return { kind: 'client', dir, versions: CLIENT, installMs, packages, runs: { client }, typecheck: types, extra: { node10 }, cost }
}

interface InstallCost {
  packages: number
  bytes: number
  /** What the plugin's server-side dependencies (and theirs) add: packages and bytes. */
  serverSide: { names: string[], packages: number, bytes: number }
}

/** Bytes of the files under `dir`, not counting nested node_modules (packages of their own). */
async function bytesUnder (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += entry.name === 'node_modules' ? 0 : await bytesUnder(path)
    else if (entry.isFile()) total += (await stat(path)).size
  }
  return total
}

/**
 * A client install's packages and bytes, and the part of it that only the
 * plugin needs: the package's dependencies other than TypeBox, and everything
 * they pull in (found by Node's resolution over npm's lock of node_modules).
 */
async function installCost (dir: string): Promise<InstallCost> {
  const lockFile = JSON.parse(await readFile(join(dir, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, { dependencies?: Record<string, string> }> }
  const locations = Object.keys(lockFile.packages)
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ; base = base.slice(0, Math.max(0, base.lastIndexOf('/node_modules/')))) {
      const candidate = `${base === '' ? '' : `${base}/`}node_modules/${name}`
      if (candidate in lockFile.packages) return candidate
      if (base === '') return undefined
    }
  }
  const own = `node_modules/${PACKAGE}`
  const serverSide = Object.keys(lockFile.packages[own]?.dependencies ?? {}).filter((name) => name !== '@sinclair/typebox')
  const reached = new Set<string>()
  const visit = (location: string | undefined): void => {
    if (location === undefined || reached.has(location)) return
    reached.add(location)
    for (const name of Object.keys(lockFile.packages[location]?.dependencies ?? {})) visit(resolve(location, name))
  }
  for (const name of serverSide) visit(resolve(own, name))
  // Also needed by the client's own packages? Then it is not the plugin's cost.
  const clientNeeds = new Set<string>()
  const visitClient = (location: string | undefined): void => {
    if (location === undefined || clientNeeds.has(location) || location === own) return
    clientNeeds.add(location)
    for (const name of Object.keys(lockFile.packages[location]?.dependencies ?? {})) visitClient(resolve(location, name))
  }
  for (const name of Object.keys(CLIENT)) visitClient(resolve('', name))
  const pluginOnly = [...reached].filter((location) => !clientNeeds.has(location))
  const sizes = new Map(await Promise.all(locations.map(async (location) => [location, await bytesUnder(join(dir, location))] as const)))
  const sum = (list: string[]): number => list.reduce((total, location) => total + (sizes.get(location) ?? 0), 0)
  return { packages: locations.length, bytes: sum(locations), serverSide: { names: serverSide.sort(), packages: pluginOnly.length, bytes: sum(pluginOnly) } }
}

/** Starts now; awaited by its subtest (the no-op catch only keeps an early failure from being "unhandled" meanwhile). */
function started<T> (promise: Promise<T>): Promise<T> {
  promise.catch(() => {})
  return promise
}

const testStarted = performance.now()
const packed = started(pack())
const hosts = {
  current: started(packed.then(async ({ tarball }) => await pluginHost('current', tarball, CURRENT))),
  lowest: started(packed.then(async ({ tarball }) => await pluginHost('lowest', tarball, LOWEST))),
  client: started(packed.then(async ({ tarball }) => await clientHost(tarball)))
}

function exportTargets (value: unknown): string[] {
  if (typeof value === 'string') return [value]
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(exportTargets)
  return []
}

t.test('the tarball ships the plugin, the domain, the integrity check, the schemas and the contract, nothing else', async (t) => {
  const { files, dryRunFiles, size, unpackedSize, packMs, dryRunMs } = await packed
  const paths = files.map((file) => file.path).sort()
  t.comment(`npm pack (prepack build included): ${packMs} ms; npm pack --dry-run: ${dryRunMs} ms; ${paths.length} files, ${size} bytes packed, ${unpackedSize} unpacked`)
  t.same(dryRunFiles, paths, 'npm pack --dry-run lists the same files as the real pack')

  const allowed = /^(dist\/(plugins|src\/domain|tools\/integrity|schemas)\/[\w/-]+\.(js|d\.ts)|schemas\/openapi\.yaml|package\.json|README\.md|LICENSE)$/
  t.same(paths.filter((path) => !allowed.test(path)), [], 'only dist/plugins, dist/src/domain, dist/tools/integrity, dist/schemas, schemas/openapi.yaml, package.json and README')
  const unwanted = /embedded-mongo|dev-database|java|pom\.xml|(^|\/)bench\/|(^|\/)scripts\/|(^|\/)server\/|standalone|tokens|\.map$|(^|\/)test\//i
  t.same(paths.filter((path) => unwanted.test(path)), [], 'no development database, Java, bench, scripts, server, token signer, test or source-map files')

  const targets = [...exportTargets(manifest.exports), manifest.main, manifest.types].map((target) => target.replace(/^\.\//, ''))
  for (const target of new Set(targets)) t.ok(paths.includes(target), `${target} is in the tarball`)
  for (const required of ['dist/plugins/phone-numbers/index.d.ts', 'dist/schemas/index.d.ts', 'dist/src/domain/store.d.ts']) {
    t.ok(paths.includes(required), `${required} is in the tarball`)
  }
})

t.test('package.json: the host provides fastify and mongodb (optional peers), development pins them exactly', async (t) => {
  t.same(Object.keys(manifest.peerDependencies).sort(), ['fastify', 'mongodb'])
  for (const name of ['fastify', 'mongodb']) {
    t.equal(manifest.dependencies[name], undefined, `${name} is not a dependency`)
    t.equal(manifest.peerDependenciesMeta[name]?.optional, true, `${name} is an optional peer (a schemas-only client installs neither)`)
    t.match(manifest.devDependencies[name], /^\d+\.\d+\.\d+$/, `${name} is pinned exactly for development`)
  }
  for (const [name, range] of Object.entries(manifest.dependencies)) t.match(range, /^\^\d/, `${name} is a caret range (${range}), so it dedupes with the host's copy`)
  t.equal(manifest.dependencies['@fastify/mongodb'], undefined, '@fastify/mongodb belongs to the standalone server only')
  for (const [name, floor] of Object.entries(FLOORS)) {
    const range = manifest.peerDependencies[name] ?? manifest.dependencies[name] ?? ''
    t.equal(floorOf(range), floor, `${name} "${range}": its floor is the version the lowest host runs`)
  }
  t.equal(floorOf(manifest.dependencies['@fastify/jwt'] ?? ''), CURRENT['@fastify/jwt'], '@fastify/jwt: its floor is the version the current host runs (the lowest host runs the newest of that major, beside its own 9.x)')
})

interface PackageAt { version: string, dir: string }
interface PluginReport {
  host: Record<string, PackageAt | null>
  plugin: Record<string, PackageAt | null>
  ids?: { organizationId: string, userId: string }
  steps: Array<{ name: string, status: number, body: unknown }>
  holder: { userId: string, isObjectId: boolean } | null
  hostJwtKeys: string[]
  hostVerifies: boolean
  integrity?: { ok: boolean, scannedNumbers: number }
  error?: string
}
interface ClientReport {
  installed: Record<string, boolean>
  typebox: { client: string | null, package: string | null }
  compiled?: { good: boolean, bad: boolean, errors: string[] }
  value?: { good: boolean, bad: boolean }
  operations: string[]
  openapi: string
  error?: string
}

function timings (t: Test, host: Host): void {
  const runs = Object.entries(host.runs).map(([name, { ran }]) => `${name} ${ran.ms} ms`).join(', ')
  t.comment(`${host.kind} host: npm install ${host.installMs} ms (${host.packages} packages), node ${runs}, tsc ${host.typecheck.ms} ms; ${Math.round(performance.now() - testStarted)} ms since start`)
}

function checkTypecheck (t: Test, host: Host): void {
  t.equal(host.typecheck.code, 0, `tsc (strict, exactOptionalPropertyTypes, noUncheckedIndexedAccess, NodeNext) reports no error in the ${host.kind} host${host.typecheck.code === 0 ? '' : `:\n${(host.typecheck.stdout + host.typecheck.stderr).slice(0, 6000)}`}`)
}

function checkClientReport (t: Test, report: ClientReport): void {
  t.equal(report.error, undefined, 'the schemas load and compile with the client\'s TypeBox')
  t.ok(report.typebox.client !== null && report.typebox.client === report.typebox.package, 'one TypeBox: the package uses the client\'s copy (its TypeRegistry knows the contract\'s kinds)')
  t.same(report.compiled && { good: report.compiled.good, bad: report.compiled.bad }, { good: true, bad: false }, 'TypeCompiler accepts a good body and refuses a bad one')
  t.ok(report.compiled?.errors.some((message) => message.includes("Expected one of 'twilio', 'sinch', 'textgrid'")), 'and names the allowed providers')
  t.same(report.value, { good: true, bad: false }, 'Value.Check agrees')
  t.equal(report.openapi, '3.0.3')
  t.ok(report.operations.includes('post_organizations_phone_numbers'), 'operationRoutes lists the operations')
}

async function checkPluginHost (t: Test, host: Host): Promise<void> {
  timings(t, host)
  const report = host.runs['plugin']?.report as unknown as PluginReport
  t.equal(report.error, undefined, 'the host application ran without an error')
  for (const name of ['fastify', 'mongodb', 'bson']) {
    t.ok(report.plugin[name] !== null && report.plugin[name]?.dir === report.host[name]?.dir, `the plugin resolves the host's own ${name} (${report.host[name]?.version ?? 'missing'})`)
  }
  t.equal(report.host['fastify']?.version, host.versions['fastify'], 'host fastify as installed')
  t.equal(report.host['mongodb']?.version, host.versions['mongodb'], 'host mongodb as installed')

  const steps = Object.fromEntries(report.steps.map((step) => [step.name, step]))
  t.match(steps['assign'], { status: 200, body: { success: true, assignment: { provider: 'twilio', phoneNumber: PHONE_NUMBER } } }, 'POST assigns the number (200)')
  t.match(steps['list'], { status: 200, body: { phoneNumbers: [{ userId: report.ids?.userId, provider: 'twilio', phoneNumber: PHONE_NUMBER }] } }, 'GET lists it')
  t.match(steps['no token'], { status: 401 }, 'a request without a token is refused')
  t.match(steps['list (useHostJwt)'], { status: 200, body: { phoneNumbers: [{ phoneNumber: PHONE_NUMBER }] } }, 'auth.useHostJwt verifies with the host\'s @fastify/jwt')
  t.same(report.holder, { userId: report.ids?.userId, isObjectId: true }, 'app.orgPhoneNumbers.findHolder returns the host\'s ObjectId')
  t.ok(report.hostJwtKeys.includes('orgPhoneNumbers') && report.hostVerifies, 'the host\'s app.jwt keeps working and gains the plugin\'s namespace')
  t.same(report.integrity, { ok: true, scannedNumbers: 1 }, 'fastify-org-phone-numbers/integrity resolves in the host, and its check sees the assigned number')

  // Read back through this test's own connection: the write really reached the database.
  const user = report.ids === undefined || host.db === undefined ? null : await host.db.collection('users').findOne({ _id: new ObjectId(report.ids.userId) })
  t.match(user?.['phoneNumbers'], [{ provider: 'twilio', phoneNumber: PHONE_NUMBER, isDefault: true, isInboundEnabled: true }], 'the assignment is stored on the user')

  checkClientReport(t, host.runs['client']?.report as unknown as ClientReport)
  checkTypecheck(t, host)
  checkOverlongParameter(t, host, steps)
}

function output (ran: Ran | undefined): string {
  return ran === undefined ? 'not run' : (ran.stdout + ran.stderr).slice(0, 6000)
}

/** What the README's table says this host's Fastify answers to an over-long path parameter, against what it answered. */
function checkOverlongParameter (t: Test, host: Host, steps: Record<string, { status: number } | undefined>): void {
  const minor = (host.versions['fastify'] ?? '').split('.').slice(0, 2).join('.')
  const row = new RegExp(`^\\| ${minor.replace('.', '\\.')} \\| (\\d{3})[^|]*\\| (\\d{3})`, 'm').exec(readmeText)
  t.ok(row !== null, `the README's table of over-long parameter answers has a row for Fastify ${minor}`)
  t.equal(steps['overlong parameter']?.status, Number(row?.[1]), `Fastify ${minor} alone answers as the README says (${row?.[1] ?? 'no row'})`)
  t.equal(steps['overlong parameter (replyToFrameworkError)']?.status, Number(row?.[2]), `with replyToFrameworkError, as the README says (${row?.[2] ?? 'no row'})`)
}

t.test(`current host: fastify ${CURRENT['fastify'] ?? ''}, mongodb ${CURRENT['mongodb'] ?? ''}, @fastify/jwt ${CURRENT['@fastify/jwt'] ?? ''}`, async (t) => {
  const host = await hosts.current
  await checkPluginHost(t, host)
  const report = host.runs['plugin']?.report as unknown as PluginReport
  t.equal(report.plugin['@fastify/jwt']?.dir, report.host['@fastify/jwt']?.dir, 'one @fastify/jwt, shared with the host')
  t.ok(readmeSnippets.length >= 5, `the README's TypeScript examples were found (${readmeSnippets.length})`)
  t.equal(host.readme?.code, 0, `every \`\`\`ts block of the README type-checks against the installed package (strict, exactOptionalPropertyTypes)${host.readme?.code === 0 ? '' : `:\n${((host.readme?.stdout ?? '') + (host.readme?.stderr ?? '')).slice(0, 6000)}`}`)

  // The README's own types command gives the package's `paths`, defaults optional.
  t.ok(readmeTypesCommand !== undefined, `the README's types command was found: ${readmeTypesCommand ?? 'none'}`)
  t.equal(host.extra['readme types command']?.code, 0, `\`${readmeTypesCommand ?? ''}\` runs in the host${host.extra['readme types command']?.code === 0 ? '' : `:\n${output(host.extra['readme types command'])}`}`)
  t.equal(host.extra['readme types client']?.code, 0, `its paths are the package's and a client leaving out isDefault/isInboundEnabled type-checks${host.extra['readme types client']?.code === 0 ? '' : `:\n${output(host.extra['readme types client'])}`}`)

  // Two registrations (/v1, /v2) in one swagger document, each with its operationIdPrefix.
  const swagger = host.runs['swagger']?.report as { operations?: number, distinct?: number, error?: string } | undefined
  t.same(swagger, { operations: 14, distinct: 14 }, 'the swagger document has 14 operations (7 in each registration) and 14 distinct operationIds')
  t.equal(host.extra['swagger types']?.code, 0, `openapi-typescript reads that document${host.extra['swagger types']?.code === 0 ? '' : `:\n${output(host.extra['swagger types'])}`}`)
  t.equal(host.extra['swagger types tsc']?.code, 0, `and its output type-checks (no TS2300 duplicate identifier)${host.extra['swagger types tsc']?.code === 0 ? '' : `:\n${output(host.extra['swagger types tsc'])}`}`)
})

t.test(`lowest host: ${Object.entries(LOWEST).filter(([name]) => name !== '@types/node').map(([name, version]) => `${name} ${version}`).join(', ')}`, async (t) => {
  const host = await hosts.lowest
  await checkPluginHost(t, host)
  const report = host.runs['plugin']?.report as unknown as PluginReport
  for (const name of ['@fastify/error', 'ajv', '@sinclair/typebox', 'fastify-plugin']) {
    t.equal(report.plugin[name]?.dir, report.host[name]?.dir, `the plugin runs on the host's ${name} ${report.host[name]?.version ?? 'missing'} (our floor)`)
    t.equal(report.plugin[name]?.version, FLOORS[name], `${name} is the claimed floor`)
  }
  t.equal(report.host['@fastify/jwt']?.version, HOST_OLD_JWT, `the host has its own @fastify/jwt ${HOST_OLD_JWT}`)
  t.not(report.plugin['@fastify/jwt']?.dir, report.host['@fastify/jwt']?.dir, 'the plugin has its own @fastify/jwt beside it, and both work (above)')
  t.equal(report.plugin['@fastify/jwt']?.version.split('.')[0], floorOf(manifest.dependencies['@fastify/jwt'] ?? '').split('.')[0], 'of the major package.json asks for')
})

t.test(`client host: only the tarball, @sinclair/typebox ${CLIENT['@sinclair/typebox'] ?? ''} and openapi-fetch ${CLIENT['openapi-fetch'] ?? ''}`, async (t) => {
  const host = await hosts.client
  timings(t, host)
  const report = host.runs['client']?.report as unknown as ClientReport
  t.same(report.installed, { ...report.installed, fastify: false, mongodb: false }, 'npm installed neither fastify nor mongodb (optional peers)')
  const top = (await readdir(join(host.dir, 'node_modules'))).filter((name) => !name.startsWith('.'))
  t.comment(`client node_modules: ${host.packages} packages; top level: ${top.join(' ')}`)
  checkClientReport(t, report)
  checkTypecheck(t, host)
  t.equal(host.extra['node10']?.code, 0, `fastify-org-phone-numbers/schemas type-checks under moduleResolution node10 (typesVersions)${host.extra['node10']?.code === 0 ? '' : `:\n${output(host.extra['node10'])}`}`)

  // What a clients-only install costs, as the README states it (within 25%: the dependencies' own releases move it).
  const cost = host.cost
  const mb = (bytes: number): string => (bytes / 1e6).toFixed(1)
  t.comment(`client install: ${cost?.packages ?? 0} packages, ${mb(cost?.bytes ?? 0)} MB; the plugin's server-side dependencies (${cost?.serverSide.names.join(', ') ?? ''}): ${cost?.serverSide.packages ?? 0} packages, ${mb(cost?.serverSide.bytes ?? 0)} MB`)
  t.same(cost?.serverSide.names, ['@fastify/error', '@fastify/jwt', 'ajv', 'fastify-plugin', 'lru-cache'], 'the server-side dependencies a client install pulls in')
  const stated = /clients-only install is (\d+) packages, ([\d.]+) MB on disk, of which (\d+) packages, ([\d.]+) MB/.exec(readmeText.replace(/\s+/g, ' '))
  t.ok(stated !== null, 'the README states what a clients-only install costs')
  const near = (measured: number, claimed: number): boolean => Math.abs(measured - claimed) <= 0.25 * claimed
  t.ok(near(cost?.packages ?? 0, Number(stated?.[1])), `packages: measured ${cost?.packages ?? 0}, README ${stated?.[1] ?? 'none'}`)
  t.ok(near((cost?.bytes ?? 0) / 1e6, Number(stated?.[2])), `MB: measured ${mb(cost?.bytes ?? 0)}, README ${stated?.[2] ?? 'none'}`)
  t.ok(near(cost?.serverSide.packages ?? 0, Number(stated?.[3])), `server-side packages: measured ${cost?.serverSide.packages ?? 0}, README ${stated?.[3] ?? 'none'}`)
  t.ok(near((cost?.serverSide.bytes ?? 0) / 1e6, Number(stated?.[4])), `server-side MB: measured ${mb(cost?.serverSide.bytes ?? 0)}, README ${stated?.[4] ?? 'none'}`)
})
