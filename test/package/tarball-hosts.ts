/**
 * The packing and the throwaway hosts of tarball.test.ts (its header says what
 * each host is and checks): `npm pack`, then each host installed from the
 * tarball outside the repository, its fixtures run and type-checked. What the
 * test compares against (package.json, the lock, the README and docs) is read
 * here too, once.
 */
import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Db } from 'mongodb'
import type { Test } from 'tap'
import { createTestDatabase, uniqueDatabaseName, uriForDatabase } from '../helper-database.js'

/** When the test began (this module loads first): the timings count from it. */
export const testStarted = performance.now()
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const fixtures = join(root, 'test', 'package', 'fixtures')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const PACKAGE = 'fastify-org-phone-numbers'
const JWT_SECRET = 'tarball-test-secret-at-least-32-characters'
export const PHONE_NUMBER = '+14165550102'

interface Manifest {
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
  devDependencies: Record<string, string>
  exports: Record<string, unknown>
  main: string
  types: string
}
export const manifest: Manifest = { dependencies: {}, peerDependencies: {}, peerDependenciesMeta: {}, devDependencies: {}, exports: {}, main: '', types: '', ...JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) }
const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> }
function locked (name: string): string {
  const version = lock.packages[`node_modules/${name}`]?.version
  if (version === undefined) throw new Error(`${name} is not in package-lock.json`)
  return version
}

/** Lowest version of a `^a.b.c || ^x.y.z` range. */
export function floorOf (range: string): string {
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
export const CURRENT: Record<string, string> = {
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
export const readmeText = (await Promise.all(['README.md', ...docsPages].map(async (page) => await readFile(join(root, page), 'utf8')))).join('\n')
/** Every ```ts block of the README: each is a complete module a user may paste. */
export const readmeSnippets = [...readmeText.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] ?? '')
/** The README's command that generates a client's own types from the shipped openapi.yaml, run as written. */
export const readmeTypesCommand = /^npx openapi-typescript [^\n#]*?(?=\s*(#|$))/m.exec(readmeText)?.[0]
/**
 * The lowest versions package.json claims (the floors of its ranges; a test below
 * holds the two together). The host installs each itself, so npm dedupes the
 * package's copy to it and the plugin runs on exactly that version.
 */
export const FLOORS: Record<string, string> = {
  fastify: '5.0.0',
  mongodb: '6.0.0',
  '@fastify/error': '4.2.0',
  ajv: '8.13.0',
  '@sinclair/typebox': '0.34.0',
  'fastify-plugin': '6.0.0'
}
/** The host's own @fastify/jwt, a major below ours: npm gives the plugin its own copy. */
export const HOST_OLD_JWT = '9.0.0'
export const LOWEST: Record<string, string> = { ...FLOORS, '@fastify/jwt': HOST_OLD_JWT, '@types/node': CURRENT['@types/node'] ?? '' }
export const CLIENT: Record<string, string> = {
  '@sinclair/typebox': locked('@sinclair/typebox'),
  'openapi-fetch': locked('openapi-fetch')
}

export interface Ran { code: number | null, stdout: string, stderr: string, ms: number }

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

// The hosts' projects, outside the repository (removed at the test's teardown).
const work = await mkdtemp(join(tmpdir(), 'org-phone-numbers-package-'))

interface PackedFile { path: string, size: number }
export interface Packed { tarball: string, files: PackedFile[], dryRunFiles: string[], size: number, unpackedSize: number, packMs: number, dryRunMs: number }

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
export interface Host {
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

async function pluginHost (t: Pick<Test, 'teardown'>, kind: 'current' | 'lowest', tarball: string, versions: Record<string, string>): Promise<Host> {
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

/** Packs, then builds the three hosts in parallel; each subtest awaits the one it checks. */
export function startPackageHosts (t: Pick<Test, 'teardown' | 'comment'>): { packed: Promise<Packed>, hosts: Record<HostKind, Promise<Host>> } {
  t.teardown(async () => {
    if (process.env['KEEP_PACKAGE_HOSTS'] === '1') t.comment(`kept ${work}`)
    else await rm(work, { recursive: true, force: true })
  })
  const packed = started(pack())
  const hosts = {
    current: started(packed.then(async ({ tarball }) => await pluginHost(t, 'current', tarball, CURRENT))),
    lowest: started(packed.then(async ({ tarball }) => await pluginHost(t, 'lowest', tarball, LOWEST))),
    client: started(packed.then(async ({ tarball }) => await clientHost(tarball)))
  }
  return { packed, hosts }
}
