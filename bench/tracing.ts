/**
 * Database command accounting inside a server under test. Every HTTP request
 * gets a trace (AsyncLocalStorage); the driver's command monitoring
 * (`monitorCommands: true`) attributes each `commandStarted` to the request
 * whose async context issued it, with its start and end time. When the
 * response is finished the trace is folded into counters: commands per
 * request by name, and sequential round trips (the number of groups of
 * overlapping commands: two reads sent in parallel count once).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'

/**
 * Connection handshakes, heartbeats and session cleanup: not the work of a
 * request. `killCursors` is not noise: a listing page closes its users cursor
 * before it answers, and that command is part of the page's work.
 */
export const NOISE_COMMANDS: ReadonlySet<string> = new Set([
  'hello', 'isMaster', 'ismaster', 'ping', 'endSessions',
  'saslStart', 'saslContinue', 'buildInfo', 'buildinfo', 'getnonce', 'authenticate'
])

export interface CommandSpan {
  name: string
  start: number
  end: number
}

export interface RequestTrace {
  commands: CommandSpan[]
}

export interface ServerStats {
  /** Responses finished since the last reset. */
  responses: number
  statusCodes: Record<string, number>
  /** Commands attributed to a request, by command name. */
  commands: Record<string, number>
  /** Commands seen outside any request (startup, index builds); not counted per request. */
  unattributedCommands: number
  /** Responses by number of sequential database round trips. */
  roundTrips: Record<string, number>
  /** Responses by number of commands. */
  commandsPerResponse: Record<string, number>
}

export function emptyStats (): ServerStats {
  return { responses: 0, statusCodes: {}, commands: {}, unattributedCommands: 0, roundTrips: {}, commandsPerResponse: {} }
}

function increment (counts: Record<string, number>, key: string | number, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by
}

/** Groups of overlapping spans, in time order: the sequential round trips of one request. */
export function sequentialRoundTrips (spans: readonly CommandSpan[]): number {
  const sorted = [...spans].sort((a, b) => a.start - b.start)
  let groups = 0
  let groupEnd = -Infinity
  for (const span of sorted) {
    if (span.start >= groupEnd) {
      groups++
      groupEnd = span.end
    } else {
      groupEnd = Math.max(groupEnd, span.end)
    }
  }
  return groups
}

/** What `MongoClient.on` offers, narrowed to the three monitoring events (the app's and Mongoose's driver copies both fit). */
export interface CommandEventSource {
  on (event: 'commandStarted', listener: (event: { commandName: string, requestId: number, connectionId?: string | number | undefined }) => void): unknown
  on (event: 'commandSucceeded' | 'commandFailed', listener: (event: { requestId: number, connectionId?: string | number | undefined }) => void): unknown
}

export class CommandTracer {
  readonly storage = new AsyncLocalStorage<RequestTrace>()
  private readonly pending = new Map<string, CommandSpan>()
  private readonly traces = new WeakMap<IncomingMessage, RequestTrace>()
  stats: ServerStats = emptyStats()
  /**
   * Requests received whose response has not closed: kept across resets. A
   * request the client gave up on closes at once, while its handler may
   * still be at work; `activeCommands` and `lastCommandActivity` show that.
   */
  inFlight = 0
  /** Database commands (noise excepted) started and not yet finished, attributed to a request or not. */
  activeCommands = 0
  /** performance.now() of the last start or end of such a command. */
  lastCommandActivity = 0
  private readonly active = new Set<string>()

  reset (): void {
    this.stats = emptyStats()
  }

  watch (client: CommandEventSource): void {
    client.on('commandStarted', (event) => {
      if (NOISE_COMMANDS.has(event.commandName)) return
      this.active.add(`${String(event.connectionId)}:${event.requestId}`)
      this.activeCommands = this.active.size
      this.lastCommandActivity = performance.now()
      const trace = this.storage.getStore()
      if (trace === undefined) {
        this.stats.unattributedCommands++
        return
      }
      const span: CommandSpan = { name: event.commandName, start: performance.now(), end: Infinity }
      trace.commands.push(span)
      this.pending.set(`${String(event.connectionId)}:${event.requestId}`, span)
    })
    const finish = (event: { requestId: number, connectionId?: string | number | undefined }): void => {
      const key = `${String(event.connectionId)}:${event.requestId}`
      if (this.active.delete(key)) {
        this.activeCommands = this.active.size
        this.lastCommandActivity = performance.now()
      }
      const span = this.pending.get(key)
      if (span === undefined) return
      span.end = performance.now()
      this.pending.delete(key)
    }
    client.on('commandSucceeded', finish)
    client.on('commandFailed', finish)
  }

  /**
   * Whether the server is at rest: no response open, no command running, and
   * none started or finished for `quietMs` (a handler between two commands).
   */
  idle (quietMs = 250): boolean {
    return this.inFlight <= 0 && this.activeCommands === 0 && performance.now() - this.lastCommandActivity >= quietMs
  }

  /** The trace of a request, created when it arrived. */
  traceOf (request: IncomingMessage): RequestTrace {
    let trace = this.traces.get(request)
    if (trace === undefined) {
      trace = { commands: [] }
      this.traces.set(request, trace)
    }
    return trace
  }

  /** Runs `next` (the route handler and everything it awaits) inside the request's trace. */
  enter (request: IncomingMessage, next: () => void): void {
    this.storage.run(this.traceOf(request), next)
  }

  private record (request: IncomingMessage, response: ServerResponse): void {
    const trace = this.traceOf(request)
    const stats = this.stats
    stats.responses++
    increment(stats.statusCodes, response.statusCode)
    for (const span of trace.commands) increment(stats.commands, span.name)
    increment(stats.commandsPerResponse, trace.commands.length)
    increment(stats.roundTrips, sequentialRoundTrips(trace.commands))
  }

  /** An HTTP server that opens a trace per request and records it when the response is finished. */
  createServer (handler: (request: IncomingMessage, response: ServerResponse) => void): Server {
    return createServer((request, response) => {
      this.traceOf(request)
      this.inFlight++
      response.once('finish', () => this.record(request, response))
      response.once('close', () => { this.inFlight-- })
      handler(request, response)
    })
  }
}
