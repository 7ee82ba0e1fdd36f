/**
 * `npm start` without MONGODB_URI, as a developer runs it: the server process on a data folder
 * of this test's own (DEV_DATA_DIR), its embedded mongo-java-server keeping the data in H2.
 * A restart finds what was assigned before; --fresh starts empty; after a SIGKILL of the server
 * and of its database the store opens again with what was written before.
 */
import { once } from 'node:events'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MongoClient, ObjectId } from 'mongodb'
import t, { type Test } from 'tap'
import { readConfig } from '../../server/config.js'
import { DEVELOPMENT_DATA_FILE, readServerArguments } from '../../server/development-database.js'
import { DEMO_ORGANIZATION_ID, DEMO_USER_ID } from '../../server/development.js'
import { startStandalone, type StandaloneServer } from './helper-server.js'

interface DevelopmentServer extends StandaloneServer {
  token: string
  /** The embedded database's URI, from the server's log. */
  databaseUri: string
}

async function startDevelopmentServer (dataDir: string, args: readonly string[] = [], env: Record<string, string> = {}): Promise<DevelopmentServer> {
  // No load shedding: a JVM starting beside the server can delay its event loop past the limit (503).
  const server = await startStandalone({ MONGODB_URI: undefined, JWT_SECRET: undefined, DEVELOPMENT_MODE: undefined, DEV_DATABASE_FRESH: undefined, DEV_DATA_DIR: dataDir, LOG_LEVEL: 'info', REQUEST_LOGGING: 'false', MAX_EVENT_LOOP_DELAY_MS: '0', ...env }, { args, startTimeoutMs: 180_000 })
  // The banner follows the listen; the health check can answer before it is printed.
  while (!/export TOKEN=\S+/.test(server.stderr.join(''))) {
    if (server.child.exitCode !== null) throw new Error(`server exited: ${server.output()}`)
    await once(server.child.stderr!, 'data')
  }
  const token = /export TOKEN=(\S+)/.exec(server.stderr.join(''))![1]!
  const logged = server.logs.find((line) => line['msg'] === 'embedded development database')
  return { ...server, token, databaseUri: String(logged?.['mongodbUri']) }
}

async function stopWith (server: StandaloneServer, signal: NodeJS.Signals): Promise<number | null> {
  const closed = once(server.child, 'close')
  server.child.kill(signal)
  const [code] = await closed as [number | null]
  return code
}

async function assign (server: DevelopmentServer, phoneNumber: string): Promise<number> {
  const response = await fetch(`${server.base}/api/organizations/${DEMO_ORGANIZATION_ID}/phone-numbers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ targetUserId: DEMO_USER_ID, provider: 'twilio', phoneNumber, isInboundEnabled: false })
  })
  await response.arrayBuffer()
  return response.status
}

async function listedNumbers (server: DevelopmentServer): Promise<string[]> {
  const response = await fetch(`${server.base}/api/organizations/${DEMO_ORGANIZATION_ID}/phone-numbers?limit=100`, { headers: { authorization: `Bearer ${server.token}` } })
  if (response.status !== 200) throw new Error(`listing answered ${response.status}: ${await response.text()}`)
  const body = await response.json() as { phoneNumbers: Array<{ phoneNumber: string }> }
  return body.phoneNumbers.map((entry) => entry.phoneNumber).sort()
}

/** The demo organization's name as stored, read straight from the embedded database. */
async function demoOrganizationName (server: DevelopmentServer, rename?: string): Promise<unknown> {
  const client = new MongoClient(server.databaseUri, { serverSelectionTimeoutMS: 10_000 })
  try {
    const organizations = client.db('tether').collection<{ _id: ObjectId, name?: string }>('organizations')
    const id = new ObjectId(DEMO_ORGANIZATION_ID)
    if (rename !== undefined) await organizations.updateOne({ _id: id }, { $set: { name: rename } })
    return (await organizations.findOne({ _id: id }))?.name
  } finally {
    await client.close()
  }
}

/** The pid of the mongo-java-server process keeping its data in `dataFile` (Linux /proc). */
function javaPidFor (dataFile: string): number | undefined {
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      if (commandLine.includes('EmbeddedMongoJavaServer') && commandLine.includes(dataFile)) return Number(pid)
    } catch {
      // the process ended while we looked
    }
  }
  return undefined
}

async function freshDataDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dev-database-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

// Four to five server starts per subtest, each starting a JVM.
t.setTimeout(180_000)

t.test('the settings: DEV_DATA_DIR (default .data), DEV_DATABASE_FRESH and --fresh', async (t) => {
  t.equal(readConfig({}).devDataDir, join(process.cwd(), '.data'))
  t.equal(readConfig({ DEV_DATA_DIR: '/tmp/somewhere' }).devDataDir, '/tmp/somewhere')
  t.equal(readConfig({}).devDatabaseFresh, false)
  t.equal(readConfig({ DEV_DATABASE_FRESH: '1' }).devDatabaseFresh, true)
  t.throws(() => readConfig({ DEV_DATABASE_FRESH: 'yes' }), /DEV_DATABASE_FRESH=yes must be true or false/)
  t.same(readServerArguments([]), { fresh: false })
  t.same(readServerArguments(['--fresh']), { fresh: true })
  t.throws(() => readServerArguments(['--frsh']), /the server takes one argument, --fresh/)
})

t.test('a restart after SIGTERM finds the numbers assigned before; --fresh starts empty', async (t) => {
  const dataDir = await freshDataDir(t)
  const first = await startDevelopmentServer(dataDir)
  t.teardown(() => { first.child.kill('SIGKILL') })
  t.match(first.stderr.join(''), `Data kept in ${join(dataDir, DEVELOPMENT_DATA_FILE)}`)
  t.same(await listedNumbers(first), [], 'a new data folder starts empty')
  t.equal(await assign(first, '+14165550111'), 200)
  t.equal(await assign(first, '+14165550112'), 200)
  t.equal(await demoOrganizationName(first, 'Renamed by the developer'), 'Renamed by the developer')
  t.equal(await stopWith(first, 'SIGTERM'), 0, 'clean exit on SIGTERM')
  t.ok(existsSync(join(dataDir, DEVELOPMENT_DATA_FILE)), 'the H2 file is in DEV_DATA_DIR')

  const second = await startDevelopmentServer(dataDir)
  t.teardown(() => { second.child.kill('SIGKILL') })
  t.same(await listedNumbers(second), ['+14165550111', '+14165550112'], 'both numbers are still listed')
  t.equal(await demoOrganizationName(second), 'Renamed by the developer', 'the demo organization is added only when missing: the restart left it as it was')
  t.equal(await assign(second, '+14165550111'), 200, 'the kept number can be updated')
  t.equal(await stopWith(second, 'SIGTERM'), 0)

  const fresh = await startDevelopmentServer(dataDir, ['--fresh'])
  t.teardown(() => { fresh.child.kill('SIGKILL') })
  t.same(await listedNumbers(fresh), [], '--fresh: nothing listed')
  t.equal(await demoOrganizationName(fresh), 'Demo organization', '--fresh: the demo organization is added again')
  t.equal(await assign(fresh, '+14165550113'), 200)
  t.equal(await stopWith(fresh, 'SIGTERM'), 0)

  const byVariable = await startDevelopmentServer(dataDir, [], { DEV_DATABASE_FRESH: '1' })
  t.teardown(() => { byVariable.child.kill('SIGKILL') })
  t.same(await listedNumbers(byVariable), [], 'DEV_DATABASE_FRESH=1: nothing listed')
  t.equal(await stopWith(byVariable, 'SIGTERM'), 0)
})

t.test('a second server on the same data folder is refused (H2 locks its file)', async (t) => {
  const dataDir = await freshDataDir(t)
  const first = await startDevelopmentServer(dataDir)
  t.teardown(() => { first.child.kill('SIGKILL') })
  const second = startStandalone({ MONGODB_URI: undefined, JWT_SECRET: undefined, DEVELOPMENT_MODE: undefined, DEV_DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, { startTimeoutMs: 180_000 })
  await t.rejects(second, /the development database \(mongo-java-server with H2[^)]*\) did not start/)
  t.same(await listedNumbers(first), [], 'the first server still answers')
  t.equal(await stopWith(first, 'SIGTERM'), 0)
})

t.test('after a SIGKILL of the server and of its database, the store opens with what was written before', async (t) => {
  const dataDir = await freshDataDir(t)
  const dataFile = join(dataDir, DEVELOPMENT_DATA_FILE)
  const first = await startDevelopmentServer(dataDir)
  t.teardown(() => { first.child.kill('SIGKILL') })
  t.equal(await assign(first, '+14165550121'), 200)
  t.equal(await stopWith(first, 'SIGTERM'), 0)

  const second = await startDevelopmentServer(dataDir)
  t.teardown(() => { second.child.kill('SIGKILL') })
  t.equal(await assign(second, '+14165550122'), 200)
  const javaPid = javaPidFor(dataFile)
  t.ok(javaPid !== undefined, 'found the database process')
  // The database first, so it gets no chance to close its store when the server's pipe closes.
  process.kill(javaPid!, 'SIGKILL')
  t.equal(await stopWith(second, 'SIGKILL'), null, 'the server was killed')

  const third = await startDevelopmentServer(dataDir)
  t.teardown(() => { third.child.kill('SIGKILL') })
  const listed = await listedNumbers(third)
  t.ok(listed.includes('+14165550121'), 'the number of the run that ended with SIGTERM is listed', { listed })
  // H2 writes its changes about once a second (MVStore's auto-commit): a number assigned just
  // before the SIGKILL may or may not be there. docs/ gives the measured figures.
  t.comment(`the number assigned just before the SIGKILL: ${listed.includes('+14165550122') ? 'kept' : 'lost'}`)
  t.equal(await stopWith(third, 'SIGTERM'), 0)
})
