/** Messages between the harness and a server child, matched by id. */
import type { ServerStats } from './tracing.js'

export type ParentRequest = { id: number, type: 'reset' | 'stats' | 'rss' | 'shutdown' | 'idle' | 'event-loop' }

export type ChildReply =
  | { id: number, type: 'ready', port: number }
  | { id: number, type: 'reset' | 'shutdown' }
  | { id: number, type: 'stats', stats: ServerStats }
  | { id: number, type: 'rss', rss: number }
  /** Answered once the server is at rest (CommandTracer.idle) or after IDLE_TIMEOUT_MS: the requests and commands still open then, and how long it waited. */
  | { id: number, type: 'idle', inFlight: number, waitedMs: number }
  /** The server's event-loop delay since the last `reset` (perf_hooks.monitorEventLoopDelay, 1 ms resolution), in ms. */
  | { id: number, type: 'event-loop', maxMs: number, p99Ms: number }

/** Longest wait of an `idle` request. */
export const IDLE_TIMEOUT_MS = 120_000
