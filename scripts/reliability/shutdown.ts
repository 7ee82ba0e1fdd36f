/**
 * Graceful shutdown under load, two cases:
 *  A. MONGODB_URI set (a FerretDB we started): SIGTERM mid-load. Every request
 *     the server accepted (its "incoming request" log line names our
 *     x-request-id) gets a complete HTTP answer; new connections after the
 *     SIGTERM are refused (ECONNREFUSED) or answered 503; the process exits 0
 *     within SHUTDOWN_TIMEOUT_MS (+1 s); its database connections are closed
 *     (counted in /proc/net/tcp before and after).
 *  B. MONGODB_URI unset: server.ts starts the embedded database itself; after
 *     SIGTERM under load the database process is gone, its port closed and
 *     its data folder removed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { exited, isAlive } from './children.js'
import { seed } from './consistency.js'
import { createFerret } from './database-process.js'
import { RequestFailure, call } from './http-client.js'
import { runLoad, type Sample } from './load.js'
import { envNumber, finish, log } from './report.js'
import { JWT_SECRET, startServer, type ServerProcess } from './server-process.js'

const shutdownTimeoutMs = envNumber('SHUTDOWN_TIMEOUT_MS', 10_000)
const connections = envNumber('SHUTDOWN_CONNECTIONS', 40)
const problems: string[] = []

/** Established TCP connections whose remote end is 127.0.0.1:port (IPv4), from /proc/net/tcp. */
function connectionsTo (port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[2] === `0100007F:${hex}` && fields[3] === '01').length
}

interface Outcome { exitCode: number | null, exitMs: number, accepted: number, acceptedWithoutAnswer: number, resetBeforeAccepted: number, afterSigterm: Record<string, number>, inFlightAtSigterm: number }

async function sigtermUnderLoad (server: ServerProcess, organizationId: string, userIds: string[], token: string): Promise<Outcome> {
  let sigtermAt = Infinity
  const state = { exited: false }
  const load = runLoad({ base: server.base, token, organizationId, userIds, connections, durationMs: 60_000, shouldStop: () => state.exited })
  // Fresh connections after the SIGTERM: must be refused, or answered 503.
  const afterSigterm: Record<string, number> = {}
  const resetProbes: string[] = []
  await sleep(3000)
  sigtermAt = performance.now()
  const exit = exited(server.child)
  server.child.kill('SIGTERM')
  const prober = (async () => {
    await sleep(50)
    for (let n = 0; !state.exited; n++) {
      const id = `probe-${n}`
      try {
        const answer = await call(server.base, 'GET', `/api/organizations/${organizationId}/phone-numbers`, { headers: { authorization: `Bearer ${token}`, 'x-request-id': id }, timeoutMs: 5000 })
        afterSigterm[String(answer.status)] = (afterSigterm[String(answer.status)] ?? 0) + 1
      } catch (error) {
        const code = error instanceof RequestFailure ? error.code : String(error)
        afterSigterm[code] = (afterSigterm[code] ?? 0) + 1
        if (code === 'ECONNRESET') resetProbes.push(id)
      }
      await sleep(50)
    }
  })()
  const { code } = await exit
  const exitMs = performance.now() - sigtermAt
  state.exited = true
  const result = await load
  await prober

  const accepted = new Set(server.logs.filter((line) => line['msg'] === 'incoming request').map((line) => String(line['reqId'])))
  const samples: Sample[] = result.samples
  const acceptedSamples = samples.filter((s) => accepted.has(s.id))
  const acceptedWithoutAnswer = acceptedSamples.filter((s) => s.failure !== undefined)
  for (const s of acceptedWithoutAnswer) problems.push(`accepted request ${s.id} (${s.op}) got no answer: ${s.failure ?? ''}`)
  for (const s of acceptedSamples) if (s.status >= 500 && s.status !== 503) problems.push(`accepted request ${s.id} answered ${s.status}`)
  const resetBeforeAccepted = samples.filter((s) => s.failure !== undefined && !accepted.has(s.id) && s.start < sigtermAt).length
  // A brand-new connection racing the listener's close can be reset before the server reads its
  // request (Node closes connections that carry no request yet): allowed only when the server's
  // log proves the request was never accepted, i.e. it was refused, not dropped.
  for (const [key, count] of Object.entries(afterSigterm)) if (!['ECONNREFUSED', '503', 'ECONNRESET'].includes(key)) problems.push(`new connection after SIGTERM: ${key} x ${count}`)
  for (const id of resetProbes) if (accepted.has(id)) problems.push(`new request ${id} was accepted after SIGTERM and then reset`)
  if (code !== 0) problems.push(`exit code ${String(code)}`)
  if (exitMs > shutdownTimeoutMs + 1000) problems.push(`exit took ${Math.round(exitMs)} ms (bound ${shutdownTimeoutMs + 1000} ms)`)
  if (!server.logs.some((line) => line['msg'] === 'stopped')) problems.push('no "stopped" log line: the graceful path did not finish')
  const inFlightAtSigterm = samples.filter((s) => s.start < sigtermAt && s.end > sigtermAt && accepted.has(s.id)).length
  if (inFlightAtSigterm === 0) problems.push('no request was in flight at the SIGTERM: the case proves nothing')
  return { exitCode: code, exitMs: Math.round(exitMs), accepted: acceptedSamples.length, acceptedWithoutAnswer: acceptedWithoutAnswer.length, resetBeforeAccepted, afterSigterm, inFlightAtSigterm }
}

// --- A: external database ------------------------------------------------------
const ferret = await createFerret()
const uriA = ferret.uri('shutdown')
const seededA = await seed(uriA, 80)
const serverA = await startServer({ MONGODB_URI: uriA, JWT_SECRET, REQUEST_LOGGING: 'true', SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) })
await sleep(500)
const dbConnectionsBefore = connectionsTo(ferret.port)
const a = await sigtermUnderLoad(serverA, seededA.organizationId, seededA.userIds, seededA.token)
await sleep(200)
const dbConnectionsAfter = connectionsTo(ferret.port)
if (dbConnectionsAfter !== 0) problems.push(`${dbConnectionsAfter} connections to the database still open after exit`)
await ferret.destroy()
log(`A (MONGODB_URI set): ${JSON.stringify({ ...a, dbConnectionsBefore, dbConnectionsAfter })}`)

// --- B: embedded database started by server.ts -----------------------------------
const serverB = await startServer({ MONGODB_URI: undefined, DEVELOPMENT_MODE: 'true', JWT_SECRET, REQUEST_LOGGING: 'true', SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) }, 180_000)
const embedded = serverB.logs.find((line) => line['msg'] === 'embedded development database')
const embeddedUri = typeof embedded?.['mongodbUri'] === 'string' ? embedded['mongodbUri'] : undefined
if (embeddedUri === undefined) throw new Error('the server did not report its embedded database')
const embeddedPort = Number(/:(\d+)\//.exec(embeddedUri)?.[1])
// The database process: the one whose command line names that port.
const dbPid = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).find((pid) => {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return Number(pid) !== serverB.pid && cmdline.includes(String(embeddedPort))
  } catch { return false }
})
const cmdline = dbPid === undefined ? '' : readFileSync(`/proc/${dbPid}/cmdline`, 'utf8').split('\0').join(' ')
const dataDir = /--state-dir=(\S+)/.exec(cmdline)?.[1]
if (dbPid === undefined) problems.push(`no database process found for port ${embeddedPort}`)
const seededB = await seed(`${embeddedUri.replace(/\/$/, '')}/tether`, 40)
const b = await sigtermUnderLoad(serverB, seededB.organizationId, seededB.userIds, seededB.token)
await sleep(500)
const dbGone = dbPid === undefined ? false : !isAlive(Number(dbPid))
if (!dbGone) problems.push(`embedded database process ${String(dbPid)} still running after the server exited`)
const portClosed = await call(`http://127.0.0.1:${embeddedPort}`, 'GET', '/', { timeoutMs: 2000 }).then(() => false, (error: unknown) => error instanceof RequestFailure && error.code === 'ECONNREFUSED')
if (!portClosed) problems.push(`embedded database port ${embeddedPort} still accepts connections`)
const dataRemoved = dataDir === undefined ? null : !existsSync(dataDir)
if (dataRemoved === false) problems.push(`embedded database data folder ${String(dataDir)} left behind`)
log(`B (embedded database): ${JSON.stringify({ ...b, embeddedUri, dbPid, dbGone, portClosed, dataRemoved })}`)

finish('shutdown', {
  shutdownTimeoutMs,
  connections,
  externalDatabase: { ...a, dbConnectionsBefore, dbConnectionsAfter },
  embeddedDatabase: { ...b, backend: String(serverB.logs.find((line) => line['msg'] === 'embedded development database')?.['backend']), dbProcessGone: dbGone, portClosed, dataFolderRemoved: dataRemoved }
}, problems)
