/**
 * Entry point of a server-under-test child process. The parent (harness.ts)
 * forks it with the settings as JSON in BENCH_SERVER_SETTINGS and talks to it
 * over IPC: it answers `ready` with its port, then `reset`, `stats`, `rss`
 * and `shutdown` requests.
 */
import { isServerKind, startServer, type ServerSettings } from './servers.js'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { IDLE_TIMEOUT_MS, type ChildReply, type ParentRequest } from './protocol.js'

function send (message: ChildReply): void {
  process.send?.(message)
}

const settings = JSON.parse(process.env['BENCH_SERVER_SETTINGS'] ?? '{}') as ServerSettings
if (!isServerKind(settings.kind) || process.send === undefined) {
  console.error('bench/child.ts is started by the benchmark harness (forked, with BENCH_SERVER_SETTINGS)')
  process.exit(2)
}

const server = await startServer(settings)
// The longest turn of the event loop: what one synchronous stretch of a request costs every other request.
const eventLoopDelay = monitorEventLoopDelay({ resolution: 1 })
eventLoopDelay.enable()
let stopping = false
process.on('message', (message: ParentRequest) => {
  switch (message.type) {
    case 'reset':
      server.tracer.reset()
      eventLoopDelay.reset()
      send({ id: message.id, type: 'reset' })
      break
    case 'stats':
      send({ id: message.id, type: 'stats', stats: server.tracer.stats })
      break
    case 'idle': {
      // Requests the load generator gave up on at its deadline are still being worked on: wait for them.
      const started = Date.now()
      const poll = (): void => {
        if (server.tracer.idle() || Date.now() - started >= IDLE_TIMEOUT_MS) {
          send({ id: message.id, type: 'idle', inFlight: server.tracer.inFlight + server.tracer.activeCommands, waitedMs: Date.now() - started })
          return
        }
        setTimeout(poll, 20)
      }
      poll()
      break
    }
    case 'event-loop':
      send({ id: message.id, type: 'event-loop', maxMs: eventLoopDelay.max / 1e6, p99Ms: eventLoopDelay.percentile(99) / 1e6 })
      break
    case 'rss':
      send({ id: message.id, type: 'rss', rss: process.memoryUsage().rss })
      break
    case 'shutdown':
      stopping = true
      // A clean exit, so --cpu-prof writes its profile.
      server.close().finally(() => {
        send({ id: message.id, type: 'shutdown' })
        process.disconnect()
        process.exit(0)
      })
      break
  }
})
// The harness is gone (killed, or its test timed out): don't outlive it holding its output open.
process.once('disconnect', () => {
  if (stopping) return
  server.close().finally(() => process.exit(0))
  setTimeout(() => process.exit(0), 5000).unref()
})
send({ id: 0, type: 'ready', port: server.port })
