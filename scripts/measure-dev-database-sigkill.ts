/**
 * tsx scripts/measure-dev-database-sigkill.ts [rounds=3] [delays=0,250,500,1000,1500,2500] [both|server]
 * What of the development database survives a SIGKILL of the server and of its
 * mongo-java-server: for each delay, start on a fresh data folder, assign a number, wait that
 * long, SIGKILL the database and then the server (`server`: the server only), start again on
 * the folder and list. Prints one line per attempt and a summary per delay (the figures in
 * docs/reliability.md).
 */
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { DEVELOPMENT_DATA_FILE } from '../server/development-database.js'
import { DEMO_ORGANIZATION_ID, DEMO_USER_ID } from '../server/development.js'
import { startStandalone, type StandaloneServer } from '../test/server/helper-server.js'

const rounds = Number(process.argv[2] ?? 3)
const delays = (process.argv[3] ?? '0,250,500,1000,1500,2500').split(',').map(Number)
const killDatabase = (process.argv[4] ?? 'both') === 'both'

async function start (dataDir: string): Promise<{ server: StandaloneServer, token: string }> {
  // No load shedding: the JVM starting beside the server can delay its event loop past the limit (503).
  const server = await startStandalone({ MONGODB_URI: undefined, JWT_SECRET: undefined, DEVELOPMENT_MODE: undefined, DEV_DATABASE_FRESH: undefined, DEV_DATA_DIR: dataDir, LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '0' }, { startTimeoutMs: 180_000 })
  while (!/export TOKEN=\S+/.test(server.stderr.join(''))) await once(server.child.stderr!, 'data')
  return { server, token: /export TOKEN=(\S+)/.exec(server.stderr.join(''))![1]! }
}

async function startWhenUnlocked (dataDir: string): Promise<{ server: StandaloneServer, token: string }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(dataDir)
    } catch (error) {
      if (attempt >= 20 || !String(error).includes('did not start')) throw error
      await sleep(250)
    }
  }
}

function javaPidFor (dataFile: string): number {
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      if (commandLine.includes('EmbeddedMongoJavaServer') && commandLine.includes(dataFile)) return Number(pid)
    } catch { /* gone */ }
  }
  throw new Error(`no database process for ${dataFile}`)
}

const path = `/api/organizations/${DEMO_ORGANIZATION_ID}/phone-numbers`
const summary = new Map<number, { kept: number, lost: number }>()
for (let round = 1; round <= rounds; round++) {
  for (const delay of delays) {
    const dataDir = await mkdtemp(join(tmpdir(), 'dev-database-sigkill-'))
    try {
      const { server, token } = await start(dataDir)
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
      const assigned = await fetch(`${server.base}${path}`, { method: 'POST', headers, body: JSON.stringify({ targetUserId: DEMO_USER_ID, provider: 'twilio', phoneNumber: '+14165550131' }) })
      if (assigned.status !== 200) throw new Error(`assign answered ${assigned.status}: ${await assigned.text()}`)
      await sleep(delay)
      if (killDatabase) process.kill(javaPidFor(join(dataDir, DEVELOPMENT_DATA_FILE)), 'SIGKILL')
      const closed = once(server.child, 'close')
      server.child.kill('SIGKILL')
      await closed
      // With the server killed alone, its database closes the store once it sees the pipe close; H2's file lock says when.
      const again = await startWhenUnlocked(dataDir)
      const listing = await fetch(`${again.server.base}${path}`, { headers: { authorization: `Bearer ${again.token}` } })
      const body = await listing.json() as { phoneNumbers: unknown[] }
      const kept = listing.status === 200 && body.phoneNumbers.length === 1
      const counts = summary.get(delay) ?? { kept: 0, lost: 0 }
      counts[kept ? 'kept' : 'lost']++
      summary.set(delay, counts)
      console.log(`round ${round}, SIGKILL ${killDatabase ? 'database and server' : 'server only'} ${delay} ms after the answer: restart listing ${listing.status}, number ${kept ? 'kept' : 'lost'}`)
      const stopped = once(again.server.child, 'close')
      again.server.child.kill('SIGTERM')
      await stopped
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}
for (const [delay, { kept, lost }] of summary) console.log(`RESULT SIGKILL (${killDatabase ? 'database and server' : 'server only'}) ${delay} ms after the answer: kept ${kept}, lost ${lost}`)
