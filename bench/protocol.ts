/** Messages between the harness and a server child, matched by id. */
import type { ServerStats } from './tracing.js'

export type ParentRequest = { id: number, type: 'reset' | 'stats' | 'rss' | 'shutdown' }

export type ChildReply =
  | { id: number, type: 'ready', port: number }
  | { id: number, type: 'reset' | 'shutdown' }
  | { id: number, type: 'stats', stats: ServerStats }
  | { id: number, type: 'rss', rss: number }
